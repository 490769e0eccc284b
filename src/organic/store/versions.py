"""Model versions: registering a trained model, and the live-serving status of each."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from organic.store.db import session_scope
from organic.store.models import ModelVersion, ServingChange


def register_version(engine: Engine, name: str, *, path: str | None = None, parent: str | None = None,
                     method: str | None = None, base_model: str | None = None, metrics: dict[str, Any] | None = None,
                     notes: dict[str, Any] | None = None) -> int:
    """Create or update the model version ``name`` (a candidate until promoted); returns its id."""
    with session_scope(engine) as s:
        version = s.scalar(select(ModelVersion).where(ModelVersion.name == name))
        if version is None:
            version = ModelVersion(name=name, status="candidate", traffic_share=0.0)
            s.add(version)
        parent_id = s.scalar(select(ModelVersion.id).where(ModelVersion.name == parent)) if parent else None
        version.path, version.parent_id, version.method = path, parent_id, method
        version.base_model, version.metrics, version.notes = base_model, metrics, notes
        s.flush()
        return version.id


def serving(engine: Engine) -> dict[str, float]:
    """The shares in force (model version name -> share of new conversations); empty when never set."""
    with session_scope(engine) as s:
        latest = s.scalar(select(ServingChange).order_by(ServingChange.id.desc()).limit(1))
        return dict(latest.shares) if latest else {}


def set_serving(engine: Engine, shares: dict[str, float], note: str) -> dict[str, float]:
    """Make ``shares`` the serving plan. Every named version must be registered with a path (or be the one
    the server already serves); the plan is recorded so that ``rollback`` can return to the previous one."""
    if not shares or any(v < 0 for v in shares.values()) or sum(shares.values()) <= 0:
        raise ValueError("shares must be non-negative and add up to more than zero")
    total = sum(shares.values())
    shares = {name: share / total for name, share in shares.items()}
    with session_scope(engine) as s:
        known = {v.name: v for v in s.scalars(select(ModelVersion).where(ModelVersion.name.in_(shares)))}
        missing = sorted(set(shares) - set(known))
        if missing:
            raise ValueError(f"unknown model version(s): {', '.join(missing)}; see `organic versions`")
        for version in s.scalars(select(ModelVersion)):
            share = shares.get(version.name, 0.0)
            version.traffic_share = share
            version.status = "active" if share > 0 else ("retired" if version.status == "active" else version.status)
        s.add(ServingChange(shares=shares, note=note))
    return shares


def same_plan(a: dict[str, float] | None, b: dict[str, float] | None) -> bool:
    """Whether two serving plans serve the same versions with the same shares (versions at 0 ignored)."""
    a = {k: v for k, v in (a or {}).items() if v > 0}
    b = {k: v for k, v in (b or {}).items() if v > 0}
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-9 for k in a)


def rollback_target(engine: Engine) -> tuple[dict[str, float], int]:
    """The serving plan ``rollback`` returns to, and the id of the change it undoes."""
    with session_scope(engine) as s:
        changes = s.scalars(select(ServingChange).order_by(ServingChange.id.desc()).limit(2)).all()
    if len(changes) < 2:
        raise ValueError("nothing to roll back to: fewer than two serving plans were ever set")
    return dict(changes[1].shares), changes[0].id


def rollback(engine: Engine) -> dict[str, float]:
    """Return to the serving plan before the newest one."""
    shares, undone = rollback_target(engine)
    return set_serving(engine, shares, note=f"rollback of change {undone}")


def versions(engine: Engine) -> list[ModelVersion]:
    with session_scope(engine) as s:
        return list(s.scalars(select(ModelVersion).order_by(ModelVersion.id)))
