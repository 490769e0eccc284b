"""The rounds of ``organic loop --watch`` (``organic.watch``): where each stands, so that a watcher killed mid-round
resumes it after a restart, and how much new feedback starts the next one.

A round's row changes together with the audit log entry that records the change (one transaction), and with the
serving plan when the step changes it, so the log the console shows never claims a step the store does not, nor the
other way round.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from organic.store import audit, versions
from organic.store.db import session_scope
from organic.store.models import Feedback, Message, WatchRound

RUNNING = "running"


def feedback_count(engine: Engine) -> int:
    """Ratings (thumbs up or down) plus answers to "what should I have said?" in the store."""
    with engine.connect() as conn:
        ratings = conn.execute(select(func.count()).select_from(Feedback)).scalar_one()
        answers = conn.execute(select(func.count()).select_from(Message).where(Message.is_dislike_feedback)).scalar_one()
    return ratings + answers


def latest(engine: Engine) -> WatchRound | None:
    """The newest round, finished or not; None before the first."""
    with session_scope(engine) as s:
        return s.scalar(select(WatchRound).order_by(WatchRound.id.desc()).limit(1))


def get(engine: Engine, round_id: int) -> WatchRound:
    with session_scope(engine) as s:
        found = s.get(WatchRound, round_id)
        if found is None:
            raise ValueError(f"no watch round {round_id}")
        return found


def start(engine: Engine, mark: int, out: Path, audit_entry: tuple[str, str, dict[str, Any]], **columns: Any) -> WatchRound:
    """A new running round that keeps its files in ``out/round-<id>``; ``mark`` is ``feedback_count`` now. The audit
    entry (who, action, details) is stored with it, its details given the round's id."""
    with session_scope(engine) as s:
        row = WatchRound(status=RUNNING, mark=mark, folder="", **{"details": {}, **columns})
        s.add(row)
        s.flush()
        row.folder = str(out / f"round-{row.id}")
        who, action, details = audit_entry
        audit.add(s, who, action, {"round": row.id, **details})
        s.flush()
        return row


def save(engine: Engine, round_id: int, *, details: dict[str, Any] | None = None,
         audit_entry: tuple[str, str, dict[str, Any]] | None = None,
         serve: tuple[dict[str, float], str, int] | None = None, **columns: Any) -> WatchRound:
    """Change round ``round_id``: ``columns`` (step, status, reason, incumbent, candidate) set, ``details`` merged key
    by key into its details, ``audit_entry`` (who, action, details) added to the audit log and, with ``serve`` (shares,
    note, based_on), the serving plan changed as ``versions.set_serving`` does (``PlanChanged`` when the plan in force
    is not ``based_on`` any more; the audit details then get the plan ``before`` and ``after``), all in one
    transaction. Returns the round as stored."""
    with session_scope(engine) as s:
        plan = {}
        if serve:  # first: a plan someone else changed refuses the whole change
            before, after = versions.change_serving(s, *serve)
            plan = {"before": before, "after": after}
        row = s.get(WatchRound, round_id)
        if row is None:
            raise ValueError(f"no watch round {round_id}")
        for name, value in columns.items():
            setattr(row, name, value)
        if details:
            row.details = {**(row.details or {}), **details}  # a new dict: JSON columns do not see changes in place
        if audit_entry:
            who, action, entry = audit_entry
            audit.add(s, who, action, {"round": round_id, **entry, **plan})
        s.flush()
        return row
