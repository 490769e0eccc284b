"""Users: listing them, and deleting one with everything they said and did."""

from __future__ import annotations

from sqlalchemy import Engine, delete, func, insert, select

from organic.store.models import Conversation, DeletedUser, User


def delete_user(engine: Engine, pseudo_id: str) -> int | None:
    """Delete the user and (by cascade) their conversations, messages, ratings and annotations; record a
    tombstone so that a later import of the same data does not bring them back. Returns the number of
    conversations removed, or None if the store had no such user (the tombstone is recorded anyway)."""
    digest = DeletedUser.hash(pseudo_id)
    with engine.begin() as conn:
        if conn.execute(select(DeletedUser.pseudo_id_hash).where(DeletedUser.pseudo_id_hash == digest)).first() is None:
            conn.execute(insert(DeletedUser).values(pseudo_id_hash=digest))
        user_id = conn.execute(select(User.id).where(User.pseudo_id == pseudo_id)).scalar()
        if user_id is None:
            return None
        removed = conn.execute(select(func.count()).where(Conversation.user_id == user_id)).scalar_one()
        conn.execute(delete(User).where(User.id == user_id))
    return removed


def list_users(engine: Engine, limit: int = 20):
    query = (
        select(User.pseudo_id, User.age_confirmed, User.save_conversations, User.allow_release,
               func.count(Conversation.id).label("conversations"))
        .outerjoin(Conversation, Conversation.user_id == User.id)
        .group_by(User.id).order_by(User.id).limit(limit)
    )
    with engine.connect() as conn:
        return conn.execute(query).all()
