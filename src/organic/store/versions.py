"""Model versions: registering a trained model, and the live-serving status of each."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from organic.store.db import session_scope
from organic.store.models import ModelVersion


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
