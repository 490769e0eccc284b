"""Model versions: registering a trained model, and the live-serving status of each.

The serving plan is the newest ``ServingChange``; its id numbers the plans. A change of plan can be made on the
condition that the plan in force is still the one it was based on (``based_on``, compare-and-set): one that another
change overtook is refused with ``PlanChanged`` and nothing is stored. ``change_serving`` makes the check and the
change inside the caller's transaction, so that the audit log entry that records it is stored with it or not at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from organic.store import audit
from organic.store.db import session_scope
from organic.store.models import ModelVersion, ServingChange


class PlanChanged(ValueError):
    """The serving plan a change was based on is no longer the one in force: someone else changed it meanwhile."""


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


def register_trained(engine: Engine, folder: Path, name: str, **fields: Any) -> int:
    """Register the model trained into ``folder`` as version ``name`` (``fields`` as for ``register_version``): its
    ``VERSION`` file, the name a server stores the model's replies under (``generate.transformers_backend.model_version``
    reads it), and its row. Returns the row's id."""
    (folder / "VERSION").write_text(name + "\n")
    return register_version(engine, name, path=str(folder.resolve()), **fields)


def record_metrics(engine: Engine, name: str, **metrics: Any) -> None:
    """Set ``metrics`` (key -> JSON-ready value) in model version ``name``'s metrics, keeping its other keys."""
    with session_scope(engine) as s:
        version = s.scalar(select(ModelVersion).where(ModelVersion.name == name))
        if version is None:
            raise ValueError(f"unknown model version {name!r}; see `organic versions`")
        version.metrics = {**(version.metrics or {}), **metrics}  # a new dict: JSON columns do not see changes in place


def current_plan(engine: Engine) -> tuple[int, dict[str, float]]:
    """The id of the plan in force (0 when none was ever set), the one to pass as ``based_on``, and its shares."""
    with session_scope(engine) as s:
        latest = _latest(s)
        return (latest.id, dict(latest.shares)) if latest else (0, {})


def serving(engine: Engine) -> dict[str, float]:
    """The shares in force (model version name -> share of new conversations); empty when never set."""
    return current_plan(engine)[1]


def set_serving(engine: Engine, shares: dict[str, float], note: str, *, based_on: int | None = None) -> dict[str, float]:
    """Make ``shares`` the serving plan (normalised to add up to 1; returned). Every named version must be registered;
    the plan is recorded so that ``rollback`` can return to the previous one. With ``based_on`` (an id from
    ``current_plan``), only if that plan is still in force: ``PlanChanged`` otherwise."""
    with session_scope(engine) as s:
        return change_serving(s, shares, note, based_on)[1]


def set_serving_audited(engine: Engine, shares: dict[str, float], note: str, *, who: str, action: str,
                        based_on: int | None = None, serving_now: dict[str, float] | None = None) -> tuple[dict[str, float], int]:
    """``set_serving`` by an operator: the plan and its audit log entry (``who`` did ``action``, with the plans before
    and after; ``serving_now`` stands for the plan before when none was ever stored) are stored together, or neither.
    The plan and the entry's id."""
    with session_scope(engine) as s:
        before, plan = change_serving(s, shares, note, based_on)
        entry = audit.add(s, who, action, {"before": before or dict(serving_now or {}), "after": plan})
    return plan, entry


def change_serving(s: Session, shares: dict[str, float], note: str, based_on: int | None = None) -> tuple[dict, dict]:
    """``set_serving`` inside the caller's transaction ``s``, so that the change is stored together with its audit log
    entry (and whatever else the caller writes); the plans before (empty when none was set) and after."""
    if not shares or any(v < 0 for v in shares.values()) or sum(shares.values()) <= 0:
        raise ValueError("shares must be non-negative and add up to more than zero")
    total = sum(shares.values())
    shares = {name: share / total for name, share in shares.items()}
    if s.get_bind().dialect.name == "postgresql":  # one change at a time, each seeing the one before (SQLite: BEGIN IMMEDIATE)
        s.execute(text(f"LOCK TABLE {ServingChange.__tablename__} IN SHARE ROW EXCLUSIVE MODE"))
    latest = _latest(s)
    in_force = latest.id if latest else 0
    if based_on is not None and based_on != in_force:
        raise PlanChanged(f"the serving plan changed meanwhile: it is now {_described(latest)}, not the plan this change "
                          "was based on")
    known = {v.name: v for v in s.scalars(select(ModelVersion).where(ModelVersion.name.in_(shares)))}
    missing = sorted(set(shares) - set(known))
    if missing:
        raise ValueError(f"unknown model version(s): {', '.join(missing)}; see `organic versions`")
    for version in s.scalars(select(ModelVersion)):
        share = shares.get(version.name, 0.0)
        version.traffic_share = share
        version.status = "active" if share > 0 else ("retired" if version.status == "active" else version.status)
    s.add(ServingChange(shares=shares, note=note))
    s.flush()
    return (dict(latest.shares) if latest else {}), shares


def _latest(s: Session) -> ServingChange | None:
    return s.scalar(select(ServingChange).order_by(ServingChange.id.desc()).limit(1))


def _described(change: ServingChange | None) -> str:
    if change is None:
        return "no plan"
    plan = ", ".join(f"{name} {share:.0%}" for name, share in change.shares.items() if share > 0)
    return f"{plan} (change {change.id}{f': {change.note}' if change.note else ''})"


def same_plan(a: dict[str, float] | None, b: dict[str, float] | None) -> bool:
    """Whether two serving plans serve the same versions with the same shares (versions at 0 ignored)."""
    a = {k: v for k, v in (a or {}).items() if v > 0}
    b = {k: v for k, v in (b or {}).items() if v > 0}
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-9 for k in a)


def rollback_target(engine: Engine) -> tuple[dict[str, float], int]:
    """The serving plan ``rollback`` returns to, and the id of the change it undoes (the plan it is based on)."""
    with session_scope(engine) as s:
        changes = s.scalars(select(ServingChange).order_by(ServingChange.id.desc()).limit(2)).all()
    if len(changes) < 2:
        raise ValueError("nothing to roll back to: fewer than two serving plans were ever set")
    return dict(changes[1].shares), changes[0].id


def rollback(engine: Engine, who: str) -> dict[str, float]:
    """Return to the serving plan before the newest one, entered in the audit log as ``who``'s rollback."""
    shares, undone = rollback_target(engine)
    return set_serving_audited(engine, shares, f"rollback of change {undone}", who=who, action="rollback", based_on=undone)[0]


def versions(engine: Engine) -> list[ModelVersion]:
    with session_scope(engine) as s:
        return list(s.scalars(select(ModelVersion).order_by(ModelVersion.id)))
