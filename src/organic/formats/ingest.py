"""``organic import bb3x``: stream BB3x JSONL files into the store.

Lines are read one at a time and written in batches, so memory does not grow with the file. A bad line
(malformed JSON, a wrong type, an unknown sender) is reported with its file and line number and skipped,
or stops the import when ``stop_on_error``; every batch written before it stays written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from organic.formats.bb3x import parse_conversation, split_of
from organic.store.bulk import WriteCounts, write_conversations
from organic.store.records import ConversationRecord


@dataclass
class LineError:
    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class ImportReport:
    counts: WriteCounts = field(default_factory=WriteCounts)
    errors: list[LineError] = field(default_factory=list)
    stopped: bool = False  # stopped at the first bad line

    @property
    def skipped_lines(self) -> int:
        return len(self.errors)


def expand(paths: list[Path]) -> list[Path]:
    """Files to import: each file as given, each folder's ``*.jsonl`` files in name order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.jsonl"))
            if not found:
                raise FileNotFoundError(f"folder {path} has no .jsonl files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return files


def read_lines(path: Path, *, split: str | None, model_version: str | None, allow_release: bool,
               ) -> Iterator[tuple[int, ConversationRecord | LineError]]:
    """(bytes read, record or error) for every non-blank line of a BB3x file."""
    split = split or split_of(path)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                yield len(raw), LineError(path, number, f"malformed JSON: {error}")
                continue
            try:
                yield len(raw), parse_conversation(data, split=split, model_version=model_version,
                                                   allow_release=allow_release)
            except ValueError as error:
                yield len(raw), LineError(path, number, str(error))


def import_bb3x(engine: Engine, paths: list[Path], *, split: str | None = None, model_version: str | None = None,
                allow_release: bool = False, stop_on_error: bool = False, batch_size: int = 1000,
                progress: Callable[[int], None] | None = None) -> ImportReport:
    """Import BB3x files; ``progress`` is called with the number of bytes read since its last call."""
    report = ImportReport()
    batch: list[ConversationRecord] = []
    done = 0
    for path in expand(paths):
        for size, item in read_lines(path, split=split, model_version=model_version, allow_release=allow_release):
            done += size
            if isinstance(item, LineError):
                report.errors.append(item)
                if stop_on_error:
                    report.stopped = True
                    break
                continue
            batch.append(item)
            if len(batch) >= batch_size:
                report.counts += write_conversations(engine, batch)
                batch = []
                if progress:
                    progress(done)
                    done = 0
        if report.stopped:
            break
    if batch:  # what came before a bad line is kept, also when the import stops there
        report.counts += write_conversations(engine, batch)
    if progress:
        progress(done)
    return report
