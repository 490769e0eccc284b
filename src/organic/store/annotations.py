"""Crowd labels of utterances: which utterance an annotator gets next, and storing their label (``Annotation``).

What is eligible: an utterance the annotator has not labelled, never a canned reply (a safety-controlled or crash
reply) nor the bot's side of the feedback exchange, since the model did not write them. Sampling is ``uniform``,
``disliked`` (bot replies with a thumbs down first, then uniform) or ``version`` (bot replies of one model version).
The ``/annotate`` routes (``serve.routes.annotate``) scrub what they show; this module only reads and writes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sqlalchemy import Engine, and_, exists, func, select
from sqlalchemy.exc import IntegrityError

from organic.store.models import Annotation, Conversation, Feedback, Message, ModelVersion
from organic.store.records import FEEDBACK_REQUEST, FEEDBACK_THANKS
from organic.taxonomy import CrowdLabel, Sender, Thumb

CONTEXT_MESSAGES = 30  # the most recent messages given before the utterance to label
SAMPLINGS = ("uniform", "disliked", "version")


@dataclass(frozen=True)
class Utterance:
    """One utterance to label, with the conversation before it (oldest first, as ``(sender, text)``)."""

    message_id: int
    conversation_id: str  # the conversation's external id
    position: int
    sender: str
    text: str
    model_version: str | None
    context: list[tuple[str, str]]
    sampling: str  # the sampling that found it: "uniform" when "disliked" found nothing


def labelled(engine: Engine, annotator: str) -> int:
    """How many utterances ``annotator`` labelled."""
    with engine.connect() as conn:
        return conn.execute(select(func.count()).where(Annotation.annotator == annotator)).scalar_one()


def next_utterance(engine: Engine, annotator: str, sampling: str = "uniform", *, model_version: str | None = None,
                   sender: str | None = None) -> Utterance | None:
    """An utterance ``annotator`` has not labelled, chosen by ``sampling`` (only ``sender``'s when given), or None
    when none is left. Raises ValueError for sampling=version without ``model_version``, LookupError for an
    unknown model version."""
    if sampling not in SAMPLINGS:
        raise ValueError(f"unknown sampling {sampling!r}: {', '.join(SAMPLINGS)}")
    with engine.connect() as conn:
        eligible = [~exists().where(Annotation.message_id == Message.id, Annotation.annotator == annotator),
                    ~Message.is_safety_controlled_response, ~Message.from_model_crash,
                    func.coalesce(Message.traces["module"].as_string(), "").not_in([FEEDBACK_REQUEST, FEEDBACK_THANKS])]
        if sender:
            eligible.append(Message.sender == sender)
        used = sampling
        if sampling == "version":
            if not model_version:
                raise ValueError("sampling=version needs model_version=<name>")
            version_id = conn.execute(select(ModelVersion.id).where(ModelVersion.name == model_version)).scalar()
            if version_id is None:
                raise LookupError(f"no model version named {model_version!r}")
            found = _pick(conn, eligible + [Message.model_version_id == version_id, Message.sender == Sender.BOT.value])
        elif sampling == "disliked":
            disliked = exists().where(Feedback.message_id == Message.id, Feedback.thumb == Thumb.DOWN.value)
            found = _pick(conn, eligible + [disliked])
            if found is None:
                used, found = "uniform", _pick(conn, eligible)
        else:
            found = _pick(conn, eligible)
        return None if found is None else _utterance(conn, found, used)


def add_label(engine: Engine, message_id: int, annotator: str, label: CrowdLabel) -> bool:
    """Store ``annotator``'s label of one utterance; False when they had labelled it already (each annotator labels
    an utterance once). Raises LookupError for an unknown message, ValueError for ``other`` on a human utterance."""
    with engine.connect() as conn:
        sender = conn.execute(select(Message.sender).where(Message.id == message_id)).scalar()
    if sender is None:
        raise LookupError(f"no message {message_id}")
    if label is CrowdLabel.OTHER and sender != Sender.BOT.value:
        raise ValueError("'other' is for bot replies only; pick the closest label for a human utterance")
    try:
        with engine.begin() as conn:
            conn.execute(Annotation.__table__.insert().values(message_id=message_id, annotator=annotator, label=label.value))
    except IntegrityError:
        return False
    return True


def _pick(conn, conditions: list) -> int | None:
    """An eligible message id chosen at random: a random point in the id range, then the next eligible id after it
    (or before it). Two index lookups, however large the store; ids after long gaps are a little more likely."""
    where = and_(*conditions)
    low, high = conn.execute(select(func.min(Message.id), func.max(Message.id))).one()
    if low is None:
        return None
    pivot = random.randint(low, high)
    after = conn.execute(select(Message.id).where(where, Message.id >= pivot).order_by(Message.id).limit(1)).scalar()
    if after is not None:
        return after
    return conn.execute(select(Message.id).where(where, Message.id < pivot).order_by(Message.id.desc()).limit(1)).scalar()


def _utterance(conn, message_id: int, sampling: str) -> Utterance:
    target = conn.execute(
        select(Message.id, Message.conversation_id, Message.position, Message.sender, Message.text,
               ModelVersion.name.label("version"), Conversation.external_id)
        .join(Conversation, Message.conversation_id == Conversation.id)
        .outerjoin(ModelVersion, Message.model_version_id == ModelVersion.id)
        .where(Message.id == message_id)).one()
    before = conn.execute(
        select(Message.sender, Message.text).where(Message.conversation_id == target.conversation_id,
                                                   Message.position < target.position)
        .order_by(Message.position.desc()).limit(CONTEXT_MESSAGES)).all()
    return Utterance(message_id=target.id, conversation_id=target.external_id, position=target.position,
                     sender=target.sender, text=target.text, model_version=target.version,
                     context=[(s, t) for s, t in reversed(before)], sampling=sampling)
