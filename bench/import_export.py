"""Import and export throughput of the store on a generated BB3x-format file.

    python bench/import_export.py                      # 1M messages, SQLite and PostgreSQL (ORGANIC_TEST_POSTGRES_URL)
    python bench/import_export.py --messages 100000    # a quicker look

Prints messages/s for import and export (BB3x JSONL and Parquet), and the process's resident memory at
10%, 50% and 100% of the import: flat figures mean memory does not grow with the file. Target: the whole
BB3x release (5.9M utterances) in under 5 minutes here, i.e. >= 20k messages/s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from organic.formats.export import export
from organic.formats.ingest import import_bb3x
from organic.store import connect

WORDS = ("the a to of and i you it is that what do like my have so but are in be for not with this "
         "music movie hiking dog cat pizza weather book travel game work school coffee friend family").split()


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 20))).capitalize() + rng.choice(".?!")


def generate(path: Path, messages: int, seed: int = 0) -> int:
    """A BB3x file of about ``messages`` messages (conversations of 2-30 turns, ~5% rated). Returns conversations."""
    rng = random.Random(seed)
    ok = {"duo_safety": "__ok__", "string_matcher": "__ok__"}
    written = convos = 0
    with path.open("w") as handle:
        while written < messages:
            n = min(rng.randint(1, 15) * 2, messages - written) or 1
            history = []
            for i in range(n):
                if i % 2 == 0:
                    history.append({"text": sentence(rng), "sender": "human", "safety": ok,
                                    "human_message_id": uuid.UUID(int=rng.getrandbits(128)).hex, "isDislikeFeedback": False})
                else:
                    liked, disliked = rng.random() < 0.03, rng.random() < 0.02
                    history.append({
                        "text": sentence(rng), "sender": "bot", "safety": ok,
                        "reward": f"Predicted class: __ok__ with probability: {rng.random():.2f}",
                        "bot_message_id": uuid.UUID(int=rng.getrandbits(128)).hex,
                        "isLiked": liked, "isDisliked": disliked and not liked,
                        "dislike_type": "off_topic" if disliked and not liked else None,
                        "memories": {"partner's persona": [sentence(rng)]}, "memory_decision": "access_memory",
                        "search_decision": "do_not_search", "search_query": None,
                        "isSafetyControlledResponse": False, "previous_interaction_failure": None, "from_model_crash": False,
                    })
            handle.write(json.dumps({"user_pseudo_id": f"user{rng.randint(0, messages // 200)}",
                                     "convo_id": f"convo{convos}", "message_history": history}) + "\n")
            written += n
            convos += 1
    return convos


def rss_mib() -> float:
    return psutil.Process().memory_info().rss / 2**20


def run(label: str, url: str, source: Path, messages: int, workdir: Path) -> None:
    engine = connect(url)
    size = source.stat().st_size
    marks, done = {}, 0

    def progress(n: int) -> None:
        nonlocal done
        done += n
        for share in (0.1, 0.5):
            if share not in marks and done >= share * size:
                marks[share] = rss_mib()

    start = time.perf_counter()
    report = import_bb3x(engine, [source], progress=progress)
    took = time.perf_counter() - start
    marks[1.0] = rss_mib()
    assert report.counts.messages == messages and not report.errors, report.counts
    print(f"{label}: import {messages:,} messages in {took:.1f} s = {messages / took:,.0f} messages/s "
          f"(5.9M would take {5.9e6 / (messages / took) / 60:.1f} min); "
          f"RSS at 10/50/100%: {marks[0.1]:.0f} / {marks[0.5]:.0f} / {marks[1.0]:.0f} MiB")
    start = time.perf_counter()
    report = import_bb3x(engine, [source])
    print(f"{label}: re-import (all skipped as existing) {time.perf_counter() - start:.1f} s, "
          f"{report.counts.existing:,} conversations already present, {report.counts.conversations} added")
    for fmt, name in (("bb3x", "out.jsonl"), ("parquet", "out.parquet")):
        start = time.perf_counter()
        summary = export(engine, fmt, workdir / name)
        took = time.perf_counter() - start
        print(f"{label}: export {fmt} {summary.messages:,} messages in {took:.1f} s = {summary.messages / took:,.0f} messages/s; "
              f"RSS {rss_mib():.0f} MiB")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--postgres-url", default=os.environ.get("ORGANIC_TEST_POSTGRES_URL"),
                        help="admin URL of a PostgreSQL server; a scratch database is created and dropped")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        source = workdir / "bb3x.jsonl"
        start = time.perf_counter()
        convos = generate(source, args.messages)
        print(f"generated {args.messages:,} messages in {convos:,} conversations "
              f"({source.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - start:.1f} s; RSS {rss_mib():.0f} MiB")
        run("sqlite", f"sqlite:///{workdir / 'bench.db'}", source, args.messages, workdir)
        if not args.postgres_url:
            print("postgresql: skipped (no --postgres-url / ORGANIC_TEST_POSTGRES_URL)", file=sys.stderr)
            return
        admin_url = make_url(args.postgres_url)
        name = f"organic_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            run("postgresql", admin_url.set(database=name).render_as_string(hide_password=False), source, args.messages, workdir)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
