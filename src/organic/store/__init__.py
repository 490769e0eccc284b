"""The interaction store: every user, conversation, message, trace, rating, annotation and model version.

SQLAlchemy models (``models``), engines and sessions (``db``), Alembic migrations (``migrations``).
SQLite by default, PostgreSQL through ``ORGANIC_DATABASE_URL``. Nothing here knows about HTTP or training.
"""

from organic.store.db import connect, session_scope, upgrade
from organic.store.models import (
    Annotation,
    AuditEntry,
    Base,
    Conversation,
    DeletedUser,
    Feedback,
    Message,
    ModelVersion,
    ServingChange,
    User,
    WatchRound,
)

__all__ = [
    "Annotation", "AuditEntry", "Base", "Conversation", "DeletedUser", "Feedback", "Message", "ModelVersion", "ServingChange", "User", "WatchRound",
    "connect", "session_scope", "upgrade",
]
