"""The flat message table: one row per message, the shape of the JSONL, Parquet and HF exports.

Nested values (safety verdicts, module traces, crowd-label counts, generation settings) are JSON strings,
so the table has one fixed Arrow schema and DuckDB reads it with ``json_extract``. ``write_parquet`` writes
rows of it to a Parquet file a batch at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from organic.store.records import ConversationRecord
from organic.taxonomy import Thumb

SCHEMA = pa.schema([
    ("conversation_id", pa.string()),
    ("user_pseudo_id", pa.string()),
    ("split", pa.string()),
    ("source", pa.string()),
    ("position", pa.int32()),
    ("sender", pa.string()),
    ("text", pa.string()),
    ("message_id", pa.string()),
    ("model_version", pa.string()),
    ("is_liked", pa.bool_()),
    ("is_disliked", pa.bool_()),
    ("dislike_type", pa.string()),
    ("feedback_text", pa.string()),
    ("is_dislike_feedback", pa.bool_()),
    ("is_safety_controlled_response", pa.bool_()),
    ("previous_interaction_failure", pa.string()),
    ("from_model_crash", pa.bool_()),
    ("safety", pa.string()),
    ("reward", pa.string()),
    ("crowd_labels", pa.string()),
    ("traces", pa.string()),
    ("generation", pa.string()),
    ("created_at", pa.timestamp("us", tz="UTC")),
])


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def to_rows(convo: ConversationRecord) -> list[dict[str, Any]]:
    return [
        {
            "conversation_id": convo.external_id,
            "user_pseudo_id": convo.user_pseudo_id,
            "split": convo.split,
            "source": convo.source,
            "position": position,
            "sender": m.sender,
            "text": m.text,
            "message_id": m.external_id,
            "model_version": m.model_version,
            "is_liked": m.thumb == Thumb.UP,
            "is_disliked": m.thumb == Thumb.DOWN,
            "dislike_type": m.reason,
            "feedback_text": m.free_text,
            "is_dislike_feedback": m.is_dislike_feedback,
            "is_safety_controlled_response": m.is_safety_controlled_response,
            "previous_interaction_failure": m.previous_interaction_failure,
            "from_model_crash": m.from_model_crash,
            "safety": _json(m.safety),
            "reward": m.reward,
            "crowd_labels": _json(m.labels or None),
            "traces": _json(m.traces),
            "generation": _json(m.generation),
            "created_at": m.created_at,
        }
        for position, m in enumerate(convo.messages)
    ]


def write_parquet(out: Path, rows: Iterable[dict[str, Any]], batch_rows: int = 50_000) -> int:
    """Write rows of ``SCHEMA`` to the Parquet file ``out``, ``batch_rows`` at a time, and return how many.

    No rows still make a file: an empty table with the schema, which DuckDB and ``datasets`` read as such.
    """
    n, pending = 0, []
    with pq.ParquetWriter(out, SCHEMA) as writer:
        for row in rows:
            pending.append(row)
            if len(pending) >= batch_rows:
                writer.write_table(pa.Table.from_pylist(pending, schema=SCHEMA))
                n, pending = n + len(pending), []
        if pending or n == 0:
            writer.write_table(pa.Table.from_pylist(pending, schema=SCHEMA))
            n += len(pending)
    return n
