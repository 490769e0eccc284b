"""Streaming reads of whole conversations, for exports, analysis and training-data building.

Conversations come in id order, a batch at a time (keyset pagination), with their messages, ratings and
crowd-label counts fetched in one query each per batch, so memory stays flat however large the store is.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import aliased

from organic.store.models import Annotation, Conversation, Feedback, Message, ModelVersion, User
from organic.store.records import ConversationRecord, MessageRecord
from organic.taxonomy import Thumb


@dataclass
class Filters:
    """Which conversations to read; every field None means all."""

    splits: list[str] | None = None  # train, valid, test
    since: datetime | None = None  # conversations started at or after
    until: datetime | None = None  # conversations started before
    model_version: str | None = None  # conversations served by this model version
    consent: str | None = None  # "release": the user allowed public release; "saved": the user asked to save
    source: str | None = None  # live, bb3x, simulated


def _conversation_query(filters: Filters):
    convo_version = aliased(ModelVersion)
    query = (
        select(Conversation.id, Conversation.external_id, Conversation.split, Conversation.source,
               Conversation.extra, Conversation.created_at, User.pseudo_id, User.age_confirmed,
               User.save_conversations, User.allow_release, convo_version.name.label("version"))
        .join(User, Conversation.user_id == User.id)
        .outerjoin(convo_version, Conversation.model_version_id == convo_version.id)
    )
    if filters.splits:
        query = query.where(Conversation.split.in_(filters.splits))
    if filters.since:
        query = query.where(Conversation.created_at >= filters.since)
    if filters.until:
        query = query.where(Conversation.created_at < filters.until)
    if filters.model_version:
        query = query.where(convo_version.name == filters.model_version)
    if filters.consent == "release":
        query = query.where(User.allow_release.is_(True))
    elif filters.consent == "saved":
        query = query.where(User.save_conversations.is_(True))
    elif filters.consent is not None:
        raise ValueError(f"unknown consent filter {filters.consent!r}; expected 'release' or 'saved'")
    if filters.source:
        query = query.where(Conversation.source == filters.source)
    return query


def totals(engine: Engine) -> dict:
    """Users, conversations, messages and thumbs in the store, and every model version's status and share."""
    with engine.connect() as conn:
        one = lambda q: conn.execute(q).scalar_one()  # noqa: E731
        return {
            "users": one(select(func.count()).select_from(User)),
            "conversations": one(select(func.count()).select_from(Conversation)),
            "messages": one(select(func.count()).select_from(Message)),
            "thumbs_up": one(select(func.count()).where(Feedback.thumb == Thumb.UP.value)),
            "thumbs_down": one(select(func.count()).where(Feedback.thumb == Thumb.DOWN.value)),
            "model_versions": [r._asdict() for r in conn.execute(
                select(ModelVersion.name, ModelVersion.status, ModelVersion.traffic_share))],
        }


def count_conversations(engine: Engine, filters: Filters | None = None) -> int:
    query = _conversation_query(filters or Filters()).with_only_columns(func.count(Conversation.id))
    with engine.connect() as conn:
        return conn.execute(query).scalar_one()


def iter_conversations(engine: Engine, filters: Filters | None = None, *, batch_size: int = 500) -> Iterator[ConversationRecord]:
    """Every conversation that passes ``filters``, with its messages, in id order."""
    base = _conversation_query(filters or Filters()).order_by(Conversation.id).limit(batch_size)
    last_id = 0
    while True:
        with engine.connect() as conn:
            rows = conn.execute(base.where(Conversation.id > last_id)).all()
            if not rows:
                return
            convos = {}
            for r in rows:
                convos[r.id] = ConversationRecord(
                    external_id=r.external_id, user_pseudo_id=r.pseudo_id, split=r.split, source=r.source,
                    model_version=r.version, extra=r.extra, created_at=r.created_at, age_confirmed=r.age_confirmed,
                    save_conversations=r.save_conversations, allow_release=r.allow_release, id=r.id,
                )
            _attach_messages(conn, convos)
        last_id = rows[-1].id
        yield from convos.values()


def _attach_messages(conn, convos: dict[int, ConversationRecord]) -> None:
    ids = list(convos)
    in_batch = Message.conversation_id.in_(ids)
    labels: dict[int, dict[str, int]] = defaultdict(dict)
    for message_id, label, n in conn.execute(
        select(Annotation.message_id, Annotation.label, func.count())
        .join(Message, Annotation.message_id == Message.id).where(in_batch)
        .group_by(Annotation.message_id, Annotation.label).order_by(Annotation.message_id, func.min(Annotation.id))
    ):
        labels[message_id][label] = n
    ratings = {
        row.message_id: row
        for row in conn.execute(
            select(Feedback.message_id, Feedback.thumb, Feedback.reason, Feedback.free_text)
            .join(Message, Feedback.message_id == Message.id)
            .join(Conversation, Message.conversation_id == Conversation.id)
            .where(in_batch, Feedback.user_id == Conversation.user_id)  # the conversation's own user's rating
        )
    }
    columns = [c for c in Message.__table__.c if c.name != "position"]
    for m in conn.execute(
        select(*columns, ModelVersion.name.label("version"))
        .outerjoin(ModelVersion, Message.model_version_id == ModelVersion.id)
        .where(in_batch).order_by(Message.conversation_id, Message.position)
    ):
        rating = ratings.get(m.id)
        convos[m.conversation_id].messages.append(MessageRecord(
            sender=m.sender, text=m.text, external_id=m.external_id, model_version=m.version, safety=m.safety,
            reward=m.reward, traces=m.traces, is_safety_controlled_response=m.is_safety_controlled_response,
            previous_interaction_failure=m.previous_interaction_failure, from_model_crash=m.from_model_crash,
            is_dislike_feedback=m.is_dislike_feedback, generation=m.generation, timings=m.timings, extra=m.extra,
            created_at=m.created_at, thumb=rating.thumb if rating else None, reason=rating.reason if rating else None,
            free_text=rating.free_text if rating else None, labels=labels.get(m.id, {}), id=m.id,
        ))
