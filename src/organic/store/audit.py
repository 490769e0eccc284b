"""The audit log: what operators (and ``organic loop --watch``) did to the deployment, by whom and when.
Append-only: rows are added, never changed or removed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.orm import Session

from organic.store.models import AuditEntry


def record(engine: Engine, who: str, action: str, details: dict[str, Any] | None = None) -> int:
    """Add one entry; returns its id."""
    with engine.begin() as conn:
        return add(conn, who, action, details)


def add(conn: Connection | Session, who: str, action: str, details: dict[str, Any] | None = None) -> int:
    """Add one entry inside the caller's transaction, so that it is stored together with the change it records."""
    return conn.execute(insert(AuditEntry).values(who=who, action=action, details=details)
                        .returning(AuditEntry.id)).scalar_one()


def entries(engine: Engine, limit: int = 100) -> list[dict[str, Any]]:
    """The newest ``limit`` entries, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)).all()
    return [{"id": r.id, "who": r.who, "action": r.action, "details": r.details, "at": r.created_at.isoformat()}
            for r in rows]
