"""The audit log: what operators did to the deployment, by whom and when. Append-only: rows are added, never
changed or removed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, insert, select

from organic.store.models import AuditEntry


def record(engine: Engine, who: str, action: str, details: dict[str, Any] | None = None) -> int:
    """Add one entry; returns its id."""
    with engine.begin() as conn:
        return conn.execute(insert(AuditEntry).values(who=who, action=action, details=details)
                            .returning(AuditEntry.id)).scalar_one()


def entries(engine: Engine, limit: int = 100) -> list[dict[str, Any]]:
    """The newest ``limit`` entries, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)).all()
    return [{"id": r.id, "who": r.who, "action": r.action, "details": r.details, "at": r.created_at.isoformat()}
            for r in rows]
