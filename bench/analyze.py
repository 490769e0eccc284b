"""The full organic-data report on generated data of BB3x size: time and peak memory.

    python bench/analyze.py                  # 10% and 100% of BB3x size (353k conversations, 6.2M utterances)
    python bench/analyze.py --scales 0.1     # a quicker look

A Parquet file of the flat message table (``organic.formats.rows``) is generated directly, not through the
store, with BB3-like shares (about 3% thumbs up and 2.5% down per bot message, 1.5% canned replies, 4% unsafe
human messages, 0.3% crowd-annotated utterances, 200 days of traffic, three model versions, heavy-tailed
users and conversation lengths). Then ``organic.analyze.report.build_report`` runs on it in a fresh process,
plots and HTML included, and the script prints its wall time and peak resident memory (the child's
``ru_maxrss``), so generation does not count. Target: 100% in under 60 s and 4 GiB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from organic.formats.rows import SCHEMA

CONVERSATIONS, UTTERANCES = 353_000, 6_200_000  # the BB3 deployment (Xu et al. 2023)
WORDS = ("the a to of and i you it is that what do like my have so but are in be for not with this music movie "
         "hiking dog cat pizza weather book travel game work school coffee friend family").split()
VERSIONS = ["blenderbot3-175b", "blenderbot3-30b", "blenderbot3-3b"]
REASONS = ["off_topic", "nonsensical", "rude", "spam", "other"]
SAFETY = ['{"duo_safety": "__ok__", "string_matcher": "__ok__"}', '{"duo_safety": "__notok__", "string_matcher": "__ok__"}',
          '{"duo_safety": "__notok__", "string_matcher": "__notok__:idiot"}']
REWARDS = [f"Predicted class: {c} with probability: {p:.2f}" for c in ("__ok__", "__notok__") for p in (0.55, 0.71, 0.93)]
CROWD = ['{"good": 3}', '{"good": 2, "off_topic": 1}', '{"good": 1, "nonsensical": 2}', '{"inappropriate": 3}',
         '{"good": 2, "repeating": 1}', '{"ignoring_last_turn": 2, "good": 1}', '{"good": 1, "other": 1, "off_topic": 1}']


def _strings(rng, pool: list[str], n: int, p=None, mask=None) -> pa.Array:
    """n strings drawn from ``pool`` (a dictionary array decoded: fast, no Python string per row)."""
    indices = pa.array(rng.choice(len(pool), size=n, p=p).astype(np.int32), mask=mask)
    return pa.DictionaryArray.from_arrays(indices, pa.array(pool)).dictionary_decode()


def generate(path: Path, conversations: int, seed: int = 0, chunk: int = 50_000) -> int:
    """Write the flat message table of ``conversations`` generated conversations; returns the number of rows."""
    rng = np.random.default_rng(seed)
    mean_length = UTTERANCES / CONVERSATIONS
    users = max(1, conversations // 3)
    texts = [" ".join(rng.choice(WORDS, size=k)) for k in rng.integers(3, 25, size=5000)]
    start_day = np.datetime64("2022-08-05T00:00:00", "s")
    rows = 0
    with pq.ParquetWriter(path, SCHEMA) as writer:
        for first in range(0, conversations, chunk):
            n_conv = min(chunk, conversations - first)
            lengths = 1 + rng.negative_binomial(2, 2 / (2 + mean_length - 1), size=n_conv)
            n = int(lengths.sum())
            conv = np.repeat(np.arange(n_conv), lengths)
            position = np.arange(n) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            bot = position % 2 == 1
            user = (users * rng.random(n_conv) ** 3).astype(np.int64)  # a few very active users, many one-offs
            started = start_day + (rng.random(n_conv) * 200 * 86400).astype("timedelta64[s]")
            draw = rng.random(n)
            up, down = bot & (draw < 0.03), bot & (draw >= 0.03) & (draw < 0.055)
            canned = bot & (rng.random(n) < 0.015)
            conversation_ids = pa.array([f"c{first + i:08d}" for i in range(n_conv)])
            user_ids = pa.array([f"u{u:08d}" for u in user])
            version = rng.choice(3, size=n_conv, p=[0.6, 0.25, 0.15])[conv]
            human_safety = rng.choice(3, size=n, p=[0.96, 0.025, 0.015])
            safety = np.where(bot, np.where(rng.random(n) < 0.995, 0, 1), human_safety)
            table = pa.table({
                "conversation_id": conversation_ids.take(pa.array(conv)),
                "user_pseudo_id": user_ids.take(pa.array(conv)),
                "split": pa.nulls(n, pa.string()),
                "source": pa.array(["bb3x"] * n),
                "position": pa.array(position.astype(np.int32)),
                "sender": pa.array(np.where(bot, "bot", "human")),
                "text": _strings(rng, texts, n),
                "message_id": pa.nulls(n, pa.string()),
                "model_version": pa.DictionaryArray.from_arrays(pa.array(version.astype(np.int32), mask=~bot),
                                                                pa.array(VERSIONS)).dictionary_decode(),
                "is_liked": pa.array(up), "is_disliked": pa.array(down),
                "dislike_type": _strings(rng, REASONS, n, mask=~down),
                "feedback_text": pa.nulls(n, pa.string()),
                "is_dislike_feedback": pa.array(~bot & (rng.random(n) < 0.004)),
                "is_safety_controlled_response": pa.array(canned),
                "previous_interaction_failure": _strings(rng, ["unsafe_Human", "unsafe_BlenderBot3"], n, p=[0.7, 0.3], mask=~canned),
                "from_model_crash": pa.array(bot & (rng.random(n) < 0.001)),
                "safety": pa.DictionaryArray.from_arrays(pa.array(safety.astype(np.int32)), pa.array(SAFETY)).dictionary_decode(),
                "reward": _strings(rng, REWARDS, n, p=[0.1, 0.3, 0.5, 0.05, 0.03, 0.02], mask=~bot),
                "crowd_labels": _strings(rng, CROWD, n, mask=rng.random(n) >= 0.003),
                "traces": pa.nulls(n, pa.string()),
                "generation": pa.nulls(n, pa.string()),
                "created_at": pa.array((started[conv] + (position * 20).astype("timedelta64[s]")).astype("datetime64[us]"),
                                       pa.timestamp("us", tz="UTC")),
            }, schema=SCHEMA)
            writer.write_table(table, row_group_size=500_000)
            rows += n
    return rows


RUN = """
import json, sys, time
from pathlib import Path
from organic.analyze.report import build_report
start = time.perf_counter()
figures = build_report(Path(sys.argv[1]), Path(sys.argv[2]))
print(json.dumps({"seconds": time.perf_counter() - start, "messages": figures["messages"],
                  "conversations": figures["conversations"], "users": figures["users"]}))
"""


def measure(parquet: Path, out: Path) -> dict:
    """Run the report in a fresh process; its wall time and peak resident memory."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    wall = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUN, str(parquet), str(out)], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - wall
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # ru_maxrss of children is the largest of any child so far: run the scales from small to large
    return result | {"wall_seconds": wall, "peak_rss_gib": max(peak_kib, before) / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=float, nargs="+", default=[0.1, 1.0], help="fractions of BB3x size, small to large")
    parser.add_argument("--keep", type=Path, help="keep the generated Parquet files and reports in this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="organic-bench-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"{'scale':>6} {'conversations':>14} {'messages':>10} {'generate s':>11} {'report s':>9} {'wall s':>7} {'peak GiB':>9}")
        for scale in sorted(args.scales):
            parquet = folder / f"messages_{scale:g}.parquet"
            start = time.perf_counter()
            generate(parquet, round(CONVERSATIONS * scale))
            generated = time.perf_counter() - start
            r = measure(parquet, folder / f"report_{scale:g}")
            print(f"{scale:>6g} {r['conversations']:>14,} {r['messages']:>10,} {generated:>11.1f} {r['seconds']:>9.1f} "
                  f"{r['wall_seconds']:>7.1f} {r['peak_rss_gib']:>9.2f}", flush=True)


if __name__ == "__main__":
    main()
