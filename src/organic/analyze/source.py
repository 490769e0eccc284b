"""The report's source as Parquet: the store (through ``organic.formats.export``), a Parquet file or a folder
of them as they are, a BB3x file (one conversation per line) or a JSONL file of the flat message table of
``organic.formats.rows`` (one message per line) converted row by row, so memory stays bounded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from organic.formats.bb3x import parse_conversation
from organic.formats.rows import SCHEMA, to_rows, write_parquet


def as_parquet(source: Path | None, tmp: Path, engine: Engine | None) -> tuple[str, int]:
    """A ``read_parquet`` path for the source, converting it into ``tmp`` when it is not Parquet; and the lines skipped."""
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


def _jsonl_to_parquet(source: Path, out: Path) -> int:
    """A BB3x file (one conversation per line) or a flat-table JSONL file (one message per line) as Parquet;
    returns the lines skipped."""
    skipped = 0

    def rows() -> Iterator[dict]:
        nonlocal skipped
        with source.open("rb") as handle:
            for raw in handle:
                if not raw.strip():
                    continue
                try:
                    parsed = _rows_of_line(json.loads(raw))
                except (ValueError, TypeError):  # malformed JSON, a bad field: the importer reports these in detail
                    skipped += 1
                    continue
                yield from parsed

    write_parquet(out, rows())
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

