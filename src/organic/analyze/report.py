"""``organic analyze``: the organic-data report, ``report.json`` (every figure) and ``report.html`` (plots inside).

    figures = build_report(None, Path("report"), engine)            # the store
    figures = build_report(Path("release_data_00.jsonl"), Path("report"))  # a BB3x file, or a flat export

What it holds, after Xu et al. 2023: Table 1 style statistics (users, conversations, utterances, feedback,
rating rate per bot message, up / down split, thumbs-down reasons, conversation lengths, activity per user,
per model version and over time), Table 2 style quality of human and bot utterances in standard and
adversarial conversations (crowd labels where present, classifier verdicts otherwise; every figure with its
count and a 95% Wilson interval), agreement between annotators, and users by their share of unsafe messages.

Every source becomes the flat message table of ``organic.formats.rows`` as Parquet (the store through
``organic.formats.export``; a BB3x or JSONL file row by row), and DuckDB does the counting over it, so memory
stays bounded however large the data is. Counts come from that table: a conversation without messages has
no rows and is not counted, nor is a user whose conversations are all empty.
"""

from __future__ import annotations

import base64
import html
import io
import json
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Engine

from organic.stats import Proportion, agreement, cohen_kappa, summary
from organic.formats.bb3x import parse_conversation
from organic.formats.rows import SCHEMA, to_rows
from organic.taxonomy import SAFE, CrowdLabel, DislikeReason

LABELS = [label.value for label in CrowdLabel]  # Good first: ties of a crowd vote go to the earlier label
KINDS = ("all", "standard", "adversarial")

ADVERSARIAL = ("a conversation is adversarial when one of its human messages was judged inappropriate (crowd "
               "majority, or a stored safety verdict other than __ok__) or a canned reply replaced the bot's because "
               "of the human's message (previous_interaction_failure = unsafe_Human); the others are standard")
CLASSIFIER = ("classifier verdicts: a stored safety verdict (duo_safety or string_matcher) other than __ok__ is "
              "Inappropriate; otherwise a reward verdict other than __ok__ is Other (not good, kind unknown); a safe "
              "verdict or an __ok__ reward is Good; messages with neither are not counted")


# sources ------------------------------------------------------------------------------------------------
def build_report(source: Path | None, out_dir: Path, engine: Engine | None = None, *, plots: bool = True,
                 check_safety: bool = False, memory_limit: str = "3GB", threads: int | None = None) -> dict[str, Any]:
    """Write ``out_dir/report.json`` and ``out_dir/report.html`` and return the figures.

    ``source``: a Parquet file (or a folder of them) of the flat message table, a JSONL file of that table,
    or a BB3x release file; None reads the store through ``engine``. With ``check_safety``, messages that
    carry no safety verdict are checked now with ``organic.safety`` (about a thousand messages a second).
    """
    if source is None and engine is None:
        raise ValueError("nothing to analyse: give a file (--from PATH) or a store")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="organic-report-") as tmp:
        parquet, skipped = _as_parquet(source, Path(tmp), engine)
        con = duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": str(Path(tmp) / "spill"),
                                     **({"threads": threads} if threads else {})})
        try:
            figures = compute(con, parquet, check_safety=check_safety)
        finally:
            con.close()
    figures["source"] = "store" if source is None else str(source)
    if skipped:
        figures["skipped_lines"] = skipped
    if source is None:
        figures["agreement"]["annotator_pairs"] = annotator_pairs(engine)
    (out_dir / "report.json").write_text(json.dumps(figures, indent=2, ensure_ascii=False), encoding="utf-8")
    images = render_plots(figures) if plots else {}
    (out_dir / "report.html").write_text(render_html(figures, images), encoding="utf-8")
    return figures


def _as_parquet(source: Path | None, tmp: Path, engine: Engine | None) -> tuple[str, int]:
    """A ``read_parquet`` path for the source, converting it when it is not Parquet; and the lines skipped."""
    if source is None:
        from organic.formats.export import export

        out = tmp / "messages.parquet"
        export(engine, "parquet", out)
        return str(out), 0
    if source.is_dir():
        if not any(source.glob("*.parquet")):
            raise FileNotFoundError(f"folder {source} has no .parquet files")
        return str(source / "*.parquet"), 0
    if not source.is_file():
        raise FileNotFoundError(f"no such file: {source}")
    if source.suffix == ".parquet":
        return str(source), 0
    out = tmp / "messages.parquet"
    return str(out), _jsonl_to_parquet(source, out)


def _jsonl_to_parquet(source: Path, out: Path, batch_rows: int = 50_000) -> int:
    """A BB3x file (one conversation per line) or a flat-table JSONL file (one message per line) as Parquet."""
    skipped, pending = 0, []
    with pq.ParquetWriter(out, SCHEMA) as writer, source.open("rb") as handle:
        for raw in handle:
            if not raw.strip():
                continue
            try:
                rows = _rows_of_line(json.loads(raw))
            except (ValueError, TypeError):  # malformed JSON, a bad field: the importer reports these in detail
                skipped += 1
                continue
            pending.extend(rows)
            if len(pending) >= batch_rows:
                writer.write_table(pa.Table.from_pylist(pending, schema=SCHEMA))
                pending = []
        writer.write_table(pa.Table.from_pylist(pending, schema=SCHEMA))
    return skipped


def _rows_of_line(data: Any) -> list[dict]:
    if isinstance(data, dict) and ("message_history" in data or "messageHistory" in data):
        return to_rows(parse_conversation(data))
    if not isinstance(data, dict) or "conversation_id" not in data:
        raise ValueError("neither a BB3x conversation nor a row of the flat message table")
    row = {name: data.get(name) for name in SCHEMA.names}
    if isinstance(row["created_at"], str):
        row["created_at"] = datetime.fromisoformat(row["created_at"])
    return [row]


# the DuckDB core ----------------------------------------------------------------------------------------
def _crowd_counts() -> str:
    paths = ", ".join(f"'$.{label}'" for label in LABELS)
    return f"list_transform(json_extract(crowd_labels, [{paths}]), lambda x: coalesce(try_cast(x AS INTEGER), 0))"


MESSAGES = f"""
CREATE TEMP TABLE msg AS
SELECT conversation_id, position, user_pseudo_id, split, source, sender = 'bot' AS bot, model_version,
       coalesce(is_liked, false) AS up, coalesce(is_disliked, false) AS down, dislike_type,
       coalesce(is_dislike_feedback, false) AS dislike_feedback,
       coalesce(is_safety_controlled_response, false) AS canned, coalesce(from_model_crash, false) AS crash,
       previous_interaction_failure AS failure, created_at::TIMESTAMP AS created_at,
       CASE WHEN duo IS NULL AND matcher IS NULL THEN NULL
            ELSE coalesce(duo <> '{SAFE}', false) OR coalesce(matcher <> '{SAFE}', false) END AS unsafe,
       regexp_extract(reward, 'Predicted class:\\s*(\\S+)', 1) AS reward_class,
       crowd, list_sum(crowd) AS crowd_n,
       CASE WHEN list_sum(crowd) > 0 THEN ({[*LABELS]!r})[list_position(crowd, list_max(crowd))] END AS crowd_label
FROM (
    SELECT *, json_extract_string(safety, '$.duo_safety') AS duo, json_extract_string(safety, '$.string_matcher') AS matcher,
           CASE WHEN crowd_labels IS NOT NULL THEN {_crowd_counts()} END AS crowd
    FROM read_parquet(?)
)
"""

CONVERSATIONS = """
CREATE TEMP TABLE convo AS
SELECT conversation_id, any_value(user_pseudo_id) AS user_pseudo_id, any_value(split) AS split,
       any_value(source) AS source, count(*) AS messages, count_if(NOT bot) AS human_messages,
       min(created_at) AS started,
       coalesce(bool_or((NOT bot AND (unsafe OR crowd_label = 'inappropriate')) OR failure = 'unsafe_Human'), false)
           AS adversarial
FROM msg GROUP BY conversation_id
"""


def compute(con: duckdb.DuckDBPyConnection, parquet: str, *, check_safety: bool = False) -> dict[str, Any]:
    """Every figure of the report from the flat message table at ``parquet`` (a path or a glob)."""
    con.execute("SET TimeZone = 'UTC'")
    con.execute(MESSAGES, [parquet])
    checked = _check_missing(con, parquet) if check_safety else 0
    con.execute(CONVERSATIONS)
    one = lambda sql: [v or 0 for v in con.execute(sql).fetchone()]  # noqa: E731  (aggregates of no rows are NULL)
    rows = lambda sql: con.execute(sql).fetchall()  # noqa: E731

    (messages, bot, human, up, down, feedback_answers, canned, crash, annotated, annotations,
     human_judged, human_unsafe, bot_judged, bot_unsafe) = one("""
        SELECT count(*), count_if(bot), count_if(NOT bot), count_if(up), count_if(down), count_if(dislike_feedback),
               count_if(canned), count_if(crash), count_if(crowd_n > 0), coalesce(sum(crowd_n), 0),
               count_if(NOT bot AND unsafe IS NOT NULL), count_if(NOT bot AND unsafe),
               count_if(bot AND unsafe IS NOT NULL), count_if(bot AND unsafe)
        FROM msg""")
    users, conversations, adversarial = one(
        "SELECT count(DISTINCT user_pseudo_id), count(*), count_if(adversarial) FROM convo")
    figures: dict[str, Any] = {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "users": users, "conversations": conversations, "messages": messages,
        "bot_messages": bot, "human_messages": human, "thumbs_up": up, "thumbs_down": down,
        "feedback_items": up + down + feedback_answers,  # thumbs plus answers to "what should I have said?"
        "dislike_feedback_messages": feedback_answers,
        "canned_safety_replies": canned, "model_crash_replies": crash,
        "annotated_messages": annotated, "annotations": int(annotations),
        "rating": {
            "rated": Proportion(up + down, bot).to_json(),
            "thumbs_up": Proportion(up, bot).to_json(),
            "thumbs_down": Proportion(down, bot).to_json(),
            "up_share_of_thumbs": Proportion(up, up + down).to_json(),
        },
        "safety": {
            "unsafe_human_messages": Proportion(human_unsafe, human_judged).to_json(),
            "unsafe_bot_messages": Proportion(bot_unsafe, bot_judged).to_json(),
            "messages_without_verdict": messages - human_judged - bot_judged,
            "checked_now": checked,  # verdicts computed by this report (check_safety) rather than stored
        },
        "conversation_kinds": {"definition": ADVERSARIAL, "standard": conversations - adversarial,
                               "adversarial": Proportion(adversarial, conversations).to_json()},
    }
    figures["reasons"] = _reasons(rows("SELECT dislike_type, count(*) FROM msg WHERE down GROUP BY 1"), down)
    figures["conversation_length"] = {
        "messages": summary(dict(rows("SELECT messages, count(*) FROM convo GROUP BY 1"))),
        "human_messages": summary(dict(rows("SELECT human_messages, count(*) FROM convo GROUP BY 1"))),
        "histogram": _capped(dict(rows("SELECT messages, count(*) FROM convo GROUP BY 1")), 60),
    }
    figures["activity_per_user"] = _activity(con, users)
    figures["model_versions"] = [
        {"model_version": version, "bot_messages": n, "thumbs_up": Proportion(u, n).to_json(),
         "thumbs_down": Proportion(d, n).to_json(), "canned_safety_replies": c}
        for version, n, u, d, c in rows("""
            SELECT coalesce(model_version, '(unknown)'), count(*), count_if(up), count_if(down), count_if(canned)
            FROM msg WHERE bot GROUP BY 1 ORDER BY 2 DESC""")
    ]
    figures["over_time"] = _over_time(con)
    figures["splits"] = dict(rows("SELECT coalesce(split, '(none)'), count(*) FROM convo GROUP BY 1 ORDER BY 1"))
    figures["sources"] = dict(rows("SELECT coalesce(source, '(none)'), count(*) FROM convo GROUP BY 1 ORDER BY 1"))
    figures["table2"] = _table2(con)
    crowd = [r[0] for r in rows("SELECT crowd FROM msg WHERE crowd_n >= 2")]
    figures["agreement"] = {"from": "crowd label counts per utterance (Fleiss' kappa, Krippendorff's alpha, nominal)",
                            **agreement(crowd if crowd else [[0] * len(LABELS)])}
    figures["users_by_unsafe_rate"] = _unsafe_users(con)
    return figures


def _check_missing(con, parquet: str, batch: int = 5000) -> int:
    """Fill in ``unsafe`` for messages without a stored verdict by running the safety check on their text."""
    from organic.safety import check_many

    cursor = con.cursor()  # a second cursor streams texts while the first writes verdicts
    cursor.execute("""SELECT conversation_id, position, text FROM read_parquet(?)
                      WHERE json_extract_string(safety, '$.duo_safety') IS NULL
                        AND json_extract_string(safety, '$.string_matcher') IS NULL""", [parquet])
    con.execute("CREATE TEMP TABLE checked (conversation_id VARCHAR, position INTEGER, unsafe BOOLEAN)")
    done = 0
    while rows := cursor.fetchmany(batch):
        verdicts = check_many([text or "" for _, _, text in rows])
        con.executemany("INSERT INTO checked VALUES (?, ?, ?)",
                        [(c, p, not v.ok) for (c, p, _), v in zip(rows, verdicts)])
        done += len(rows)
    con.execute("""UPDATE msg SET unsafe = checked.unsafe FROM checked
                   WHERE msg.conversation_id = checked.conversation_id AND msg.position = checked.position""")
    return done


def _reasons(counts: list[tuple], down: int) -> list[dict]:
    labels = {r.value: r.label for r in DislikeReason}
    out = [{"reason": reason or "(none given)", "label": labels.get(reason, reason or "(none given)"),
            **Proportion(n, down).to_json()} for reason, n in counts]
    return sorted(out, key=lambda r: -r["count"])


def _capped(histogram: dict[int, int], cap: int) -> list[list]:
    """[[value, count], ...] with every value at or above ``cap`` folded into one ``"cap+"`` bucket."""
    out = [[value, n] for value, n in sorted(histogram.items()) if value < cap]
    over = sum(n for value, n in histogram.items() if value >= cap)
    return out + ([[f"{cap}+", over]] if over else [])


def _activity(con, users: int) -> dict:
    rows = lambda sql: dict(con.execute(sql).fetchall())  # noqa: E731
    per_user = "SELECT user_pseudo_id, count(*) AS convos, sum(messages) AS msgs FROM convo GROUP BY 1"
    raters = con.execute("SELECT count(*) FROM (SELECT user_pseudo_id FROM msg GROUP BY 1 HAVING bool_or(up OR down))").fetchone()[0]
    conversations = rows(f"SELECT convos, count(*) FROM ({per_user}) GROUP BY 1")
    return {
        "conversations_per_user": summary(conversations),
        "messages_per_user": summary(rows(f"SELECT msgs, count(*) FROM ({per_user}) GROUP BY 1")),
        "users_who_rated": Proportion(raters, users).to_json(),
        "histogram": _capped(conversations, 20),
    }


def _over_time(con) -> dict:
    first, last = con.execute("SELECT min(created_at), max(created_at) FROM msg").fetchone()
    if first is None:
        return {"unit": None, "rows": []}
    unit = "day" if (last - first).days <= 180 else "week"
    messages = con.execute(f"""
        SELECT date_trunc('{unit}', created_at)::DATE AS t, count(*), count_if(bot), count_if(up), count_if(down),
               count(DISTINCT user_pseudo_id)
        FROM msg WHERE created_at IS NOT NULL GROUP BY 1 ORDER BY 1""").fetchall()
    started = dict(con.execute(f"""SELECT date_trunc('{unit}', started)::DATE, count(*) FROM convo
                                   WHERE started IS NOT NULL GROUP BY 1""").fetchall())
    return {"unit": unit, "rows": [
        {unit: t.isoformat(), "conversations": started.get(t, 0), "messages": m, "bot_messages": b,
         "thumbs_up": u, "thumbs_down": d, "users": n}
        for t, m, b, u, d, n in messages
    ]}


def _table2(con) -> dict:
    """Share of each crowd label among human and bot utterances, for all, standard and adversarial conversations.

    Three tables: ``crowd`` (utterances with crowd labels, each by its majority label), ``classifier`` (utterances
    with a safety or reward verdict) and ``combined`` (the crowd's label where there is one, else the classifier's),
    which is the report's Table 2.
    """
    counts = con.execute(f"""
        SELECT c.adversarial, m.bot, m.crowd_label,
               CASE WHEN m.unsafe THEN 'inappropriate'
                    WHEN m.reward_class <> '' AND m.reward_class <> '{SAFE}' THEN 'other'
                    WHEN m.unsafe = false OR m.reward_class = '{SAFE}' THEN 'good' END AS verdict,
               count(*)
        FROM msg m JOIN convo c USING (conversation_id)
        GROUP BY ALL""").fetchall()
    tables: dict[str, Any] = {"definition": ADVERSARIAL, "classifier_definition": CLASSIFIER}
    for name in ("combined", "crowd", "classifier"):
        tally: dict[tuple, dict[str, int]] = {}
        for adversarial, bot, crowd_label, verdict, n in counts:
            label = {"crowd": crowd_label, "classifier": verdict, "combined": crowd_label or verdict}[name]
            if label is None:
                continue
            for kind in ("all", "adversarial" if adversarial else "standard"):
                cell = tally.setdefault((kind, "bot" if bot else "human"), {})
                cell[label] = cell.get(label, 0) + n
        tables[name] = {
            kind: {sender: _shares(tally.get((kind, sender), {})) for sender in ("human", "bot")} for kind in KINDS
        }
    return tables


def _shares(cell: dict[str, int]) -> dict:
    n = sum(cell.values())
    return {"n": n, **{label: Proportion(cell.get(label, 0), n).to_json() for label in LABELS}}


def _unsafe_users(con) -> dict:
    """Users by the share of their messages that failed the safety check (those with a verdict on at least one)."""
    buckets = con.execute("""
        WITH per_user AS (
            SELECT user_pseudo_id, count_if(unsafe) AS unsafe, count(unsafe) AS judged
            FROM msg WHERE NOT bot GROUP BY 1 HAVING count(unsafe) > 0)
        SELECT CASE WHEN unsafe = 0 THEN '0%' WHEN unsafe <= 0.1 * judged THEN '0-10%'
                    WHEN unsafe <= 0.3 * judged THEN '10-30%' WHEN unsafe <= 0.5 * judged THEN '30-50%'
                    ELSE 'over 50%' END AS bucket,
               count(*), count_if(judged >= 5 AND unsafe > 0.3 * judged)
        FROM per_user GROUP BY 1""").fetchall()
    order = ["0%", "0-10%", "10-30%", "30-50%", "over 50%"]
    found = {b: (n, flagged) for b, n, flagged in buckets}
    users = sum(n for n, _ in found.values())
    return {
        "buckets": [{"unsafe_share": b, "users": found.get(b, (0, 0))[0]} for b in order],
        "users_with_a_verdict": users,
        # a user with 5+ judged messages of which more than 30% were unsafe: what `organic trolls` looks at first
        "mostly_adversarial": Proportion(sum(f for _, f in found.values()), users).to_json(),
    }


def annotator_pairs(engine: Engine, min_shared: int = 5) -> list[dict]:
    """Cohen's kappa for each pair of named annotators who labelled at least ``min_shared`` of the same utterances.

    Imported crowd counts (annotator ``import:...``) carry no identity and are left out.
    """
    from sqlalchemy import select

    from organic.store.models import Annotation

    by_annotator: dict[str, dict[int, str]] = {}
    with engine.connect() as conn:
        for message_id, annotator, label in conn.execute(
                select(Annotation.message_id, Annotation.annotator, Annotation.label)
                .where(Annotation.annotator.not_like("import:%"))):
            by_annotator.setdefault(annotator, {})[message_id] = label
    names = sorted(by_annotator)
    pairs = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = sorted(by_annotator[a].keys() & by_annotator[b].keys())
            if len(shared) >= min_shared:
                kappa = cohen_kappa([by_annotator[a][m] for m in shared], [by_annotator[b][m] for m in shared])
                pairs.append({"annotators": [a, b], "shared": len(shared), "cohen_kappa": round(kappa, 4)})
    return pairs


# plots and HTML -----------------------------------------------------------------------------------------
def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float = 7.0, height: float = 3.2, columns: int = 1):
    from matplotlib.figure import Figure  # the object API: no global pyplot state, safe in any thread

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots(1, columns, sharey=columns > 1)


def render_plots(figures: dict) -> dict[str, str]:
    """Base64 PNGs, by name, of the figures a person would rather look at than read."""
    images: dict[str, str] = {}

    histogram = figures["conversation_length"]["histogram"]
    if histogram:
        fig, ax = _figure()
        ax.bar([str(v) for v, _ in histogram], [n for _, n in histogram], color="#4c72b0")
        ax.set(xlabel="messages per conversation", ylabel="conversations", title="Conversation length")
        ax.set_yscale("log")
        ax.tick_params(axis="x", labelsize=7, rotation=90)
        images["conversation_length"] = _png(fig)

    activity = figures["activity_per_user"]["histogram"]
    if activity:
        fig, ax = _figure()
        ax.bar([str(v) for v, _ in activity], [n for _, n in activity], color="#55a868")
        ax.set(xlabel="conversations per user", ylabel="users", title="Activity per user")
        ax.set_yscale("log")
        images["activity_per_user"] = _png(fig)

    versions = figures["model_versions"][:12]
    if versions:
        fig, ax = _figure()
        x = range(len(versions))
        for offset, key, color in ((-0.2, "thumbs_up", "#55a868"), (0.2, "thumbs_down", "#c44e52")):
            values = [v[key]["percent"] for v in versions]
            errors = [[p - v[key]["ci95"][0] for p, v in zip(values, versions)],
                      [v[key]["ci95"][1] - p for p, v in zip(values, versions)]]
            ax.bar([i + offset for i in x], values, 0.4, yerr=errors, capsize=3, color=color, label=key.replace("_", " "))
        ax.set_xticks(list(x), [v["model_version"] for v in versions], rotation=20, ha="right", fontsize=8)
        ax.set(ylabel="% of bot messages", title="Thumbs per model version (95% CI)")
        ax.legend()
        images["model_versions"] = _png(fig)

    over_time = figures["over_time"]
    if len(over_time["rows"]) > 1:
        unit = over_time["unit"]
        fig, ax = _figure()
        t = [datetime.fromisoformat(r[unit]) for r in over_time["rows"]]
        ax.plot(t, [r["messages"] for r in over_time["rows"]], label="messages", color="#4c72b0")
        ax.set(ylabel=f"messages per {unit}", title="Activity over time")
        right = ax.twinx()
        right.plot(t, [r["thumbs_up"] for r in over_time["rows"]], color="#55a868", label="thumbs up")
        right.plot(t, [r["thumbs_down"] for r in over_time["rows"]], color="#c44e52", label="thumbs down")
        right.set_ylabel(f"thumbs per {unit}")
        handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
        right.legend(handles, [h.get_label() for h in handles], loc="lower center", fontsize=8)
        fig.autofmt_xdate()
        images["over_time"] = _png(fig)

    reasons = figures["reasons"]
    if reasons:
        fig, ax = _figure(7, 0.5 + 0.4 * len(reasons))
        ax.barh([r["label"] for r in reasons][::-1], [r["percent"] for r in reasons][::-1], color="#c44e52")
        ax.set(xlabel="% of thumbs down", title="Thumbs-down reasons")
        images["reasons"] = _png(fig)

    table = figures["table2"]["combined"]
    if any(table[kind][sender]["n"] for kind in KINDS for sender in ("human", "bot")):
        fig, axes = _figure(10, 3.4, columns=2)
        for ax, sender in zip(axes, ("human", "bot")):
            width = 0.27
            for i, (kind, color) in enumerate(zip(KINDS, ("#8c8c8c", "#4c72b0", "#c44e52"))):
                cell = table[kind][sender]
                values = [cell[label]["percent"] for label in LABELS]
                errors = [[v - cell[label]["ci95"][0] for v, label in zip(values, LABELS)],
                          [cell[label]["ci95"][1] - v for v, label in zip(values, LABELS)]]
                ax.bar([j + (i - 1) * width for j in range(len(LABELS))], values, width, yerr=errors, capsize=2,
                       color=color, label=f"{kind} (n={cell['n']})")
            ax.set_xticks(range(len(LABELS)), [CrowdLabel(label).label for label in LABELS], rotation=30, ha="right", fontsize=8)
            ax.set_title(f"{sender} utterances")
            ax.legend(fontsize=7)
        axes[0].set_ylabel("% of utterances (95% CI)")
        images["table2"] = _png(fig)

    buckets = figures["users_by_unsafe_rate"]["buckets"]
    if figures["users_by_unsafe_rate"]["users_with_a_verdict"]:
        fig, ax = _figure(6, 3)
        ax.bar([b["unsafe_share"] for b in buckets], [b["users"] for b in buckets], color="#8172b2")
        ax.set(xlabel="share of the user's messages that failed the safety check", ylabel="users",
               title="Users by unsafe messages")
        images["unsafe_users"] = _png(fig)
    return images


def _cell(p: dict) -> str:
    digits = 2 if p["ci95"][1] < 1 else 1  # rare events (a 0.04% share) keep their digits
    return (f"{p['percent']:.{digits}f}% <small>({p['ci95'][0]:.{digits}f}&ndash;{p['ci95'][1]:.{digits}f}; "
            f"{p['count']:,}/{p['n']:,})</small>")


def _img(images: dict[str, str], name: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{images[name]}">' if name in images else ""


def render_html(figures: dict, images: dict[str, str]) -> str:
    """One self-contained page: every value is escaped; plots are inline PNGs."""
    e = lambda value: html.escape(str(value))  # noqa: E731
    rating = figures["rating"]
    counts = [("Users", figures["users"]), ("Conversations", figures["conversations"]),
              ("Utterances", figures["messages"]), ("Human utterances", figures["human_messages"]),
              ("Bot utterances", figures["bot_messages"]), ("Thumbs up", figures["thumbs_up"]),
              ("Thumbs down", figures["thumbs_down"]), ("Feedback items (thumbs + answers)", figures["feedback_items"]),
              ("Canned safety replies", figures["canned_safety_replies"]), ("Annotated utterances", figures["annotated_messages"])]
    parts = [f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>organic report</title>
<style>body{{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:.5em 0 1.5em}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
th:first-child,td:first-child{{text-align:left}}small{{color:#666}}img{{max-width:100%;display:block;margin:1em 0}}
.note{{color:#555;font-size:13px}}</style></head><body>
<h1>organic report</h1><p class="note">Source: {e(figures['source'])}; generated {e(figures['generated_at'])}.
Percentages come with their 95% Wilson interval and count.</p>
<h2>Data (Table 1)</h2><table>{''.join(f'<tr><td>{e(k)}</td><td>{v:,}</td></tr>' for k, v in counts)}</table>
<h3>Ratings per bot message</h3><table><tr><th></th><th>share of bot messages</th></tr>
<tr><td>Rated</td><td>{_cell(rating['rated'])}</td></tr><tr><td>Thumbs up</td><td>{_cell(rating['thumbs_up'])}</td></tr>
<tr><td>Thumbs down</td><td>{_cell(rating['thumbs_down'])}</td></tr>
<tr><td>Up among thumbs</td><td>{_cell(rating['up_share_of_thumbs'])}</td></tr></table>"""]
    if figures["reasons"]:
        parts.append("<h3>Thumbs-down reasons</h3><table><tr><th>reason</th><th>share of thumbs down</th></tr>"
                     + "".join(f"<tr><td>{e(r['label'])}</td><td>{_cell(r)}</td></tr>" for r in figures["reasons"])
                     + "</table>" + _img(images, "reasons", "thumbs-down reasons"))
    length = figures["conversation_length"]["messages"]
    activity = figures["activity_per_user"]
    parts.append(f"""<h3>Conversations and users</h3><p>Messages per conversation: mean {e(length['mean'])},
median {e(length['median'])}, 90th percentile {e(length['p90'])}, max {e(length['max'])}. Conversations per user:
mean {e(activity['conversations_per_user']['mean'])}, max {e(activity['conversations_per_user']['max'])}.
Users who rated at least once: {_cell(activity['users_who_rated'])}.</p>
{_img(images, 'conversation_length', 'conversation length')}{_img(images, 'activity_per_user', 'activity per user')}""")
    if figures["model_versions"]:
        parts.append("<h3>Per model version</h3><table><tr><th>model version</th><th>bot messages</th><th>thumbs up</th>"
                     "<th>thumbs down</th><th>canned</th></tr>"
                     + "".join(f"<tr><td>{e(v['model_version'])}</td><td>{v['bot_messages']:,}</td><td>{_cell(v['thumbs_up'])}</td>"
                               f"<td>{_cell(v['thumbs_down'])}</td><td>{v['canned_safety_replies']:,}</td></tr>"
                               for v in figures["model_versions"])
                     + "</table>" + _img(images, "model_versions", "thumbs per model version"))
    parts.append(_img(images, "over_time", "activity over time"))
    parts.append(_table2_html(figures["table2"]["combined"], "Quality of utterances (Table 2)",
                              "Crowd majority label where present, classifier verdict otherwise. "
                              + figures["table2"]["definition"].capitalize() + "."))
    parts.append(_img(images, "table2", "Table 2 as bars"))
    for name, title in (("crowd", "Crowd labels only"), ("classifier", "Classifier verdicts only")):
        note = figures["table2"]["classifier_definition"] if name == "classifier" else "Majority label of each annotated utterance."
        parts.append(_table2_html(figures["table2"][name], title, note, level="h3"))
    agree = figures["agreement"]
    parts.append(f"""<h2>Annotator agreement</h2><p>{agree['items']:,} utterances with two or more labels
({agree['labels']:,} labels): Fleiss' kappa {e(agree['fleiss_kappa'])}, Krippendorff's alpha {e(agree['krippendorff_alpha'])};
Good vs not Good: {e(agree['good_vs_bad'])}.</p>""")
    if agree.get("annotator_pairs"):
        parts.append("<table><tr><th>annotators</th><th>shared</th><th>Cohen's kappa</th></tr>"
                     + "".join(f"<tr><td>{e(' / '.join(p['annotators']))}</td><td>{p['shared']}</td><td>{p['cohen_kappa']}</td></tr>"
                               for p in agree["annotator_pairs"]) + "</table>")
    unsafe = figures["users_by_unsafe_rate"]
    parts.append(f"""<h2>Helpers and trolls</h2><p>Unsafe human messages: {_cell(figures['safety']['unsafe_human_messages'])};
adversarial conversations: {_cell(figures['conversation_kinds']['adversarial'])}. Users with 5 or more judged messages of
which over 30% failed the safety check: {_cell(unsafe['mostly_adversarial'])} (<code>organic trolls</code> scores every
user's labels as well).</p>{_img(images, 'unsafe_users', 'users by unsafe messages')}</body></html>""")
    return "\n".join(parts)


def _table2_html(table: dict, title: str, note: str, level: str = "h2") -> str:
    head = "".join(f"<th>{kind}: {sender}<br><small>n={table[kind][sender]['n']:,}</small></th>"
                   for kind in KINDS for sender in ("human", "bot"))
    body = "".join(
        f"<tr><td>{html.escape(CrowdLabel(label).label)}</td>"
        + "".join(f"<td>{_cell(table[kind][sender][label])}</td>" for kind in KINDS for sender in ("human", "bot"))
        + "</tr>"
        for label in LABELS)
    return f"<{level}>{html.escape(title)}</{level}><p class='note'>{html.escape(note)}</p><table><tr><th></th>{head}</tr>{body}</table>"


def iter_figures(figures: dict) -> Iterator[tuple[str, Any]]:
    """The top-level counts, for a one-screen summary on the command line."""
    for key in ("users", "conversations", "messages", "human_messages", "bot_messages", "thumbs_up", "thumbs_down",
                "feedback_items", "annotated_messages"):
        yield key, figures[key]
