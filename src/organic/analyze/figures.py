"""Every figure of the report, counted by DuckDB over the flat message table of ``organic.formats.rows``.

What it holds, after Xu et al. 2023: Table 1 style statistics (users, conversations, utterances, feedback,
rating rate per bot message, up / down split, thumbs-down reasons, conversation lengths, activity per user,
per model version and over time), Table 2 style quality of human and bot utterances in standard and
adversarial conversations (crowd labels where present, classifier verdicts otherwise; every figure with its
count and a 95% Wilson interval), agreement between annotators, and users by their share of unsafe messages.

Counts come from the message table: a conversation without messages has no rows and is not counted, nor is
a user whose conversations are all empty.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import duckdb
from sqlalchemy import Engine

from organic.analyze.trolls import TrustConfig
from organic.stats import Proportion, agreement, cohen_kappa, summary
from organic.taxonomy import SAFE, CrowdLabel, DislikeReason

LABELS = [label.value for label in CrowdLabel]
KINDS = ("all", "standard", "adversarial")

ADVERSARIAL = ("a conversation is adversarial when one of its human messages was judged inappropriate (crowd "
               "majority, or a stored safety verdict other than __ok__) or a canned reply replaced the bot's because "
               "of the human's message (previous_interaction_failure = unsafe_Human); the others are standard")
CLASSIFIER = ("classifier verdicts: a stored safety verdict (duo_safety or string_matcher) other than __ok__ is "
              "Inappropriate; otherwise a reward verdict other than __ok__ is Other (not good, kind unknown); a safe "
              "verdict or an __ok__ reward is Good; messages with neither are not counted")


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
       CASE WHEN list_sort(crowd, 'DESC')[1] > list_sort(crowd, 'DESC')[2]  -- taxonomy.crowd_majority: no tie at the top
            THEN ({[*LABELS]!r})[list_position(crowd, list_max(crowd))] END AS crowd_label
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
    figures["reasons"] = reason_table(rows("SELECT dislike_type, count(*) FROM msg WHERE down GROUP BY 1"), down)
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


def reason_table(counts: list[tuple], down: int) -> list[dict]:
    """Thumbs-down reasons with their labels, each with its share of the ``down`` thumbs down, most given first."""
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
    """Users by the share of their messages that failed the safety check (those with a verdict on at least one), and
    how many of them ``organic trolls`` flags for it (``TrustConfig``: enough messages, over its share unsafe)."""
    flag = TrustConfig()
    buckets = con.execute("""
        WITH per_user AS (
            SELECT user_pseudo_id, count_if(unsafe) AS unsafe, count(unsafe) AS judged
            FROM msg WHERE NOT bot GROUP BY 1 HAVING count(unsafe) > 0)
        SELECT CASE WHEN unsafe = 0 THEN '0%' WHEN unsafe <= 0.1 * judged THEN '0-10%'
                    WHEN unsafe <= 0.3 * judged THEN '10-30%' WHEN unsafe <= 0.5 * judged THEN '30-50%'
                    ELSE 'over 50%' END AS bucket,
               count(*), count_if(judged >= ? AND unsafe > ? * judged)
        FROM per_user GROUP BY 1""", [flag.min_messages, flag.unsafe_threshold]).fetchall()
    order = ["0%", "0-10%", "10-30%", "30-50%", "over 50%"]
    found = {b: (n, flagged) for b, n, flagged in buckets}
    users = sum(n for n, _ in found.values())
    return {
        "buckets": [{"unsafe_share": b, "users": found.get(b, (0, 0))[0]} for b in order],
        "users_with_a_verdict": users,
        "mostly_adversarial": Proportion(sum(f for _, f in found.values()), users).to_json(),
        "mostly_adversarial_means": {"min_messages": flag.min_messages, "unsafe_share_over": flag.unsafe_threshold},
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
