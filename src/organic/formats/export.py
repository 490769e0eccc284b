"""``organic export``: the store (or a filtered part of it) to files.

Formats: ``bb3x`` (the release format, one conversation per line), ``jsonl`` / ``parquet`` / ``hf`` (the flat
message table of ``organic.formats.rows``; ``hf`` is a ``datasets.DatasetDict`` by split, saved with
``save_to_disk``) and TRL training sets ``sft`` / ``kto`` / ``dpo``. Everything streams a batch at a time.
With ``release``, only conversations whose user allowed public release are taken, PII is scrubbed,
user, conversation and message ids are re-hashed (keyed by the release's secret salt, so a released id can be
linked neither back to the store nor to another release), and a data card is written beside the export.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Engine

from organic.examples import examples
from organic.formats.bb3x import to_bb3x
from organic.formats.rows import SCHEMA, to_rows, write_parquet
from organic.formats.trl import ROWS as TRL_ROWS
from organic.store.read import Filters, iter_conversations
from organic.store.records import ConversationRecord

FORMATS = ("bb3x", "jsonl", "parquet", "hf", "sft", "kto", "dpo")


@dataclass
class ExportSummary:
    format: str
    path: Path
    conversations: int = 0
    messages: int = 0
    rows: int = 0  # lines or table rows written
    splits: Counter = field(default_factory=Counter)
    senders: Counter = field(default_factory=Counter)
    thumbs: Counter = field(default_factory=Counter)
    pii: Counter = field(default_factory=Counter)  # spans scrubbed, by kind


# Where an import kept an id the store has no column for (an integer id, an id under the other sender's
# name), by the kind of id it is: re-hashed like the record's own id, so the two still agree.
_CONVERSATION_ID_KEYS = {"user_pseudo_id": "user", "userPseudoId": "user", "convo_id": "conversation",
                         "convoId": "conversation", "chat_id": "conversation", "chatId": "conversation"}
_MESSAGE_ID_KEYS = {"bot_message_id": "message", "human_message_id": "message", "botMessageId": "message",
                    "humanMessageId": "message", "message_id": "message"}


class _Release:
    """Scrubs a conversation for public release: PII in every text and trace, ids re-hashed under a secret salt."""

    def __init__(self, salt: bytes | None):
        from organic.formats.pii import Scrubber

        self.salt = salt or os.urandom(32)  # never written anywhere: the hashes cannot be reversed
        self.scrubber = Scrubber(self.salt)
        self.found: Counter = Counter()

    def _hash(self, kind: str, value: Any) -> str | None:
        """HMAC of an id under the release's salt; the kind keeps a user id and an equal message id apart."""
        if value is None:
            return None
        return hmac.new(self.salt, f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()[:16]

    def _extra(self, extra: dict | None, id_keys: dict[str, str]) -> dict | None:
        if extra is None:
            return None
        return {k: self._hash(id_keys[k], v) if k in id_keys else self._deep(v) for k, v in extra.items()}

    def _text(self, text: str) -> str:
        spans = self.scrubber.find(text)
        self.found.update(span.kind for span in spans)
        return self.scrubber.scrub(text, spans)

    def _deep(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, list):
            return [self._deep(v) for v in value]
        if isinstance(value, dict):
            return {k: self._deep(v) for k, v in value.items()}
        return value

    def __call__(self, convo: ConversationRecord) -> ConversationRecord:
        messages = [
            replace(m, external_id=self._hash("message", m.external_id), text=self._text(m.text),
                    traces=self._deep(m.traces), extra=self._extra(m.extra, _MESSAGE_ID_KEYS),
                    free_text=self._deep(m.free_text), id=None)
            for m in convo.messages
        ]
        return replace(convo, external_id=self._hash("conversation", convo.external_id),
                       user_pseudo_id=self._hash("user", convo.user_pseudo_id), messages=messages,
                       extra=self._extra(convo.extra, _CONVERSATION_ID_KEYS), id=None)


def export(engine: Engine, fmt: str, out: Path, filters: Filters | None = None, *, release: bool = False,
           salt: bytes | None = None, feedback_as_positive: bool = True,
           progress: Callable[[int], None] | None = None) -> ExportSummary:
    """Write the conversations that pass ``filters`` to ``out`` in format ``fmt``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    filters = filters or Filters()
    if release:
        if filters.consent not in (None, "release"):
            raise ValueError("a release export takes only conversations whose user allowed release; drop --consent")
        filters = replace(filters, consent="release")
    summary = ExportSummary(fmt, out)
    scrub = _Release(salt) if release else None

    def conversations() -> Iterator[ConversationRecord]:
        for convo in iter_conversations(engine, filters):
            convo = scrub(convo) if scrub else convo
            summary.conversations += 1
            summary.messages += len(convo.messages)
            summary.splits[convo.split or "none"] += 1
            for m in convo.messages:
                summary.senders[m.sender] += 1
                if m.thumb:
                    summary.thumbs[m.thumb] += 1
            if progress:
                progress(1)
            yield convo

    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "bb3x":
        summary.rows = _write_jsonl(out, (to_bb3x(c) for c in conversations()))
    elif fmt in ("jsonl", "parquet"):
        rows = (row for c in conversations() for row in to_rows(c))
        summary.rows = (_write_jsonl if fmt == "jsonl" else write_parquet)(out, rows)
    elif fmt == "hf":
        summary.rows = _write_hf(out, conversations(), summary)
    else:
        rows = TRL_ROWS[fmt](examples(conversations(), feedback_as_positive=feedback_as_positive))
        summary.rows = _write_jsonl(out, rows)
    if scrub:
        summary.pii = scrub.found
        write_data_card(out, summary, filters)
    return summary


def _write_jsonl(out: Path, rows) -> int:
    n = 0
    with out.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
            n += 1
    return n


def _write_hf(out: Path, convos: Iterator[ConversationRecord], summary: ExportSummary) -> int:
    """A DatasetDict by split: rows go through a Parquet file per split, then ``datasets`` loads and saves it."""
    from datasets import Dataset, DatasetDict

    out.parent.mkdir(parents=True, exist_ok=True)  # staged in a folder of its own: nothing of the user's is touched
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.parts-", dir=out.parent))
    writers: dict[str, pq.ParquetWriter] = {}
    n = 0
    try:
        for convo in convos:
            split = convo.split or "train"
            if split not in writers:
                writers[split] = pq.ParquetWriter(staging / f"{split}.parquet", SCHEMA)
            writers[split].write_table(pa.Table.from_pylist(to_rows(convo), schema=SCHEMA))
            n += len(convo.messages)
        for writer in writers.values():
            writer.close()
        if not writers:
            pq.write_table(SCHEMA.empty_table(), staging / "train.parquet")
        parts = {p.stem: Dataset.from_parquet(str(p), keep_in_memory=False) for p in sorted(staging.glob("*.parquet"))}
        DatasetDict(parts).save_to_disk(str(out))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return n


def write_data_card(out: Path, summary: ExportSummary, filters: Filters) -> Path:
    """A data card beside the export: what is in it, how it was made safe to share, and its licence."""
    card = out.with_name(out.name + ".DATA_CARD.md") if not out.is_dir() else out / "DATA_CARD.md"
    splits = "\n".join(f"| {k} | {v} |" for k, v in sorted(summary.splits.items())) or "| - | 0 |"
    pii = ", ".join(f"{k}: {v}" for k, v in sorted(summary.pii.items())) or "none found"
    card.write_text(f"""# Data card: organic conversation release

Made by `organic export --release --format {summary.format}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.

## What is in it
Organic conversations between people and a chat model served by organic, with the people's thumbs up /
down, their reasons, their answers to "what should I have said?", crowd annotations, safety verdicts and
module traces. {summary.conversations} conversations, {summary.messages} messages
({summary.senders.get('human', 0)} human, {summary.senders.get('bot', 0)} bot), {summary.thumbs.get('up', 0)} thumbs up,
{summary.thumbs.get('down', 0)} thumbs down.

| split | conversations |
|---|---|
{splits}

Filters: {json.dumps({k: str(v) for k, v in vars(filters).items() if v is not None})}.

## Consent
Only conversations of people who confirmed they are 18 or older, accepted the terms, and chose both
"save my conversation" and, separately, "allow public release". Users who later asked for deletion are
removed from the store and from every export made after their request.

## Personal information
Personal names, e-mail addresses, phone numbers, street addresses and PO boxes, dates of birth, UK postcodes
and US ZIP codes, social security, card, IBAN, passport and licence plate numbers, social-media handles
(also in profile URLs) and IP addresses were detected in every text and trace and replaced: text by a keyed
hash (HMAC-SHA256 under a random key that was never stored, so it cannot be decoded; the same text maps to
the same token within this release), digits of numeric PII (SSNs, card, phone, ZIP and street numbers) by
random digits in the same format, and the letters and digits of codes (postcodes, IBANs, passport and plate
numbers) by random ones in the same format. Well-known entities (public figures, places, organisations)
were kept. User, conversation and message ids were re-hashed the same way, so no released id matches an id
in the store or in another release. Spans replaced: {pii}.
Detection is automatic (patterns and name lists), so some PII may remain: report any you find.

## Format
{"BB3x release format: one conversation per JSONL line (user_pseudo_id, convo_id, message_history)." if summary.format == "bb3x" else "See the organic README for the columns of format " + summary.format + "."}

## Licence
CC BY 4.0.
""", encoding="utf-8")
    return card
