"""Token ids in the store: the annotator and rater tokens issued (so that they can be listed) and the tokens revoked,
of any role, which every server process on the store refuses from then on, restarts included.

The server signs its tokens itself (``organic.serve.auth``): a token is valid without a row here, and this module
never sees a token, only the id it carries. Checking one is a single query on the primary key
(``revoked``); the row ``*<role>`` (``every``) revokes every token of a role issued up to its time at once.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from organic.store.models import AuthToken, utcnow

ROLES = ("user", "annotator", "rater")
TOKEN_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
"""What a token id looks like (hex now; ids made with ``secrets.token_urlsafe`` before may hold - and _): the ids of ``every`` cannot be typed as one."""


def every(role: str) -> str:
    """The id of the row that revokes every token of ``role`` issued up to its ``revoked_at``."""
    return f"*{role}"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)  # SQLite gives back naive UTC times


def record_issued(engine: Engine, token_id: str, role: str, subject: str) -> None:
    """Record a token issued to ``subject`` for ``role`` (annotators and raters: people an admin named)."""
    with engine.begin() as conn:
        conn.execute(insert(AuthToken).values(id=token_id, role=role, subject=subject, issued_at=utcnow()))


def _revoke(engine: Engine, token_id: str, role: str | None, subject: str | None, *, again: bool) -> bool:
    for _ in range(3):  # a concurrent revocation may insert the row between our look and our insert
        try:
            with engine.begin() as conn:
                row = conn.execute(select(AuthToken.role, AuthToken.subject, AuthToken.revoked_at)
                                   .where(AuthToken.id == token_id)).first()
                if row is None:
                    conn.execute(insert(AuthToken).values(id=token_id, role=role, subject=subject, revoked_at=utcnow()))
                    return True
                if row.revoked_at is not None and not again:
                    return False
                conn.execute(update(AuthToken).where(AuthToken.id == token_id).values(
                    revoked_at=utcnow(), role=row.role or role, subject=row.subject or subject))
                return True
        except IntegrityError:
            continue
    return False


def revoke(engine: Engine, token_id: str, role: str | None = None, subject: str | None = None) -> bool:
    """Refuse the token whose id is ``token_id`` from now on. Returns False when it was revoked already."""
    if not TOKEN_ID.match(token_id):
        raise ValueError(f"{token_id!r} is not a token id (8-64 letters, digits, _ and -)")
    if role is not None and role not in ROLES:
        raise ValueError(f"unknown role {role!r}: {', '.join(ROLES)}")
    return _revoke(engine, token_id, role, subject, again=False)


def revoke_all(engine: Engine, role: str) -> None:
    """Refuse every token of ``role`` issued until now (tokens issued in the same second included); tokens issued
    later are valid."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: {', '.join(ROLES)}")
    _revoke(engine, every(role), role, None, again=True)


def revoked(engine: Engine, token_id: str, role: str, issued_at: datetime) -> bool:
    """Whether the token ``token_id`` of ``role``, signed at ``issued_at`` (whole seconds, as the token carries it),
    was revoked: one query on the primary key."""
    with engine.connect() as conn:
        rows = conn.execute(select(AuthToken.id, AuthToken.revoked_at).where(
            AuthToken.id.in_((token_id, every(role))), AuthToken.revoked_at.is_not(None))).all()
    return any(row.id == token_id or _aware(issued_at) <= _aware(row.revoked_at) for row in rows)


def tokens(engine: Engine, role: str | None = None, limit: int = 100) -> list:
    """The tokens the store knows of, newest first (rows with ``id``, ``role``, ``subject``, ``issued_at``,
    ``revoked_at``): annotator and rater tokens issued, tokens revoked (a user's session is known only once
    revoked) and the ``every`` rows."""
    query = (select(AuthToken.id, AuthToken.role, AuthToken.subject, AuthToken.issued_at, AuthToken.revoked_at)
             .order_by(func.coalesce(AuthToken.issued_at, AuthToken.revoked_at).desc(), AuthToken.id).limit(limit))
    if role is not None:
        query = query.where(AuthToken.role == role)
    with engine.connect() as conn:
        return conn.execute(query).all()
