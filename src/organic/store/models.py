"""The schema: one class per table. The shape of a message lives here and nowhere else.

Columns mirror the BB3x release where it has a field (see ``organic.formats.bb3x`` for the mapping);
``extra`` keeps any key a source had that the schema does not name, so an import loses nothing.
Foreign keys cascade on delete, so removing a user removes everything they said and did.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


JSONValue = JSON(none_as_null=True)  # Python None is SQL NULL, not the JSON text 'null'


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONValue, list[Any]: JSONValue, datetime: DateTime(timezone=True)}


class User(Base):
    """A pseudonymous person: no name, no e-mail, only a random id and their consent choices."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pseudo_id: Mapped[str] = mapped_column(String(128), unique=True)
    age_confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    save_conversations: Mapped[bool] = mapped_column(Boolean, default=False)  # "save my conversation"
    allow_release: Mapped[bool] = mapped_column(Boolean, default=False)  # "allow public release", a separate choice
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    conversations: Mapped[list[Conversation]] = relationship(back_populates="user", passive_deletes=True)


class DeletedUser(Base):
    """A tombstone: the hash of a deleted user's pseudo id, so a later import does not bring them back."""

    __tablename__ = "deleted_users"

    pseudo_id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    deleted_at: Mapped[datetime] = mapped_column(default=utcnow)

    @staticmethod
    def hash(pseudo_id: str) -> str:
        return hashlib.sha256(pseudo_id.encode()).hexdigest()


class ModelVersion(Base):
    """A chat model that served or may serve replies: the base model, each retrained iteration, each baseline."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    base_model: Mapped[str | None] = mapped_column(String(512))
    path: Mapped[str | None] = mapped_column(String(1024))  # a local folder, or a served model's name
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    method: Mapped[str | None] = mapped_column(String(32))  # cringe, sft, kto, dpo; None for a base model
    status: Mapped[str] = mapped_column(String(16), default="candidate")  # candidate, active, retired
    traffic_share: Mapped[float] = mapped_column(Float, default=0.0)  # live A/B share of new conversations
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)
    notes: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)  # training data, arguments, provenance
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(128), unique=True)  # BB3x convo_id
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"), index=True)
    split: Mapped[str | None] = mapped_column(String(8))  # train, valid, test
    source: Mapped[str] = mapped_column(String(32), default="live")  # live, bb3x, simulated
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    user: Mapped[User] = relationship(back_populates="conversations")
    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", order_by="Message.position", passive_deletes=True
    )


class Message(Base):
    """One utterance. Bot messages carry the model version, the generation settings and the module traces."""

    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("conversation_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)  # 0-based index in the conversation
    sender: Mapped[str] = mapped_column(String(8))  # taxonomy.Sender: human, bot
    text: Mapped[str] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(128))  # BB3x bot_message_id / human_message_id
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id", ondelete="SET NULL"))
    safety: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)  # {"duo_safety": "__ok__", "string_matcher": "__ok__"}
    reward: Mapped[str | None] = mapped_column(Text)  # "Predicted class: __ok__ with probability: 0.93"
    traces: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)  # module outputs: memories, search_*, ...
    is_safety_controlled_response: Mapped[bool] = mapped_column(Boolean, default=False)
    previous_interaction_failure: Mapped[str | None] = mapped_column(String(32))  # taxonomy.InteractionFailure
    from_model_crash: Mapped[bool] = mapped_column(Boolean, default=False)
    is_dislike_feedback: Mapped[bool] = mapped_column(Boolean, default=False)  # answers "what should I have said?"
    generation: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)  # settings the reply was sampled with
    timings: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)  # seconds spent per stage
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class Feedback(Base):
    """A thumbs up or down on a bot message, by the user of its conversation; changing it updates the row."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("message_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    thumb: Mapped[str] = mapped_column(String(4))  # up, down
    reason: Mapped[str | None] = mapped_column(String(32))  # taxonomy.DislikeReason, for thumbs down
    free_text: Mapped[str | None] = mapped_column(Text)
    feedback_message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Annotation(Base):
    """A crowdworker's single-choice label (taxonomy.CrowdLabel) for one utterance in its context."""

    __tablename__ = "annotations"
    __table_args__ = (UniqueConstraint("message_id", "annotator"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    annotator: Mapped[str] = mapped_column(String(128))
    label: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


Index("ix_feedback_message", Feedback.message_id)
Index("ix_annotations_message", Annotation.message_id)


class ServingChange(Base):
    """One change of which model versions serve live traffic, and with what shares; the newest is in force,
    and ``organic rollback`` goes back to the one before."""

    __tablename__ = "serving_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shares: Mapped[dict[str, Any]] = mapped_column(JSONValue)  # model version name -> share of new conversations
    note: Mapped[str | None] = mapped_column(String(256))  # promote, ab, rollback
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Comparison(Base):
    """Two models' replies to one context, to be compared blind on the /compare page (ACUTE-Eval style).

    A rater sees the replies as sides A and B in an order drawn per rater and item; a ``ComparisonVote`` keeps
    the side clicked and whether ``model_a``'s reply was shown as B, so position bias can be measured."""

    __tablename__ = "comparisons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    context: Mapped[list[Any]] = mapped_column(JSONValue)  # chat messages before the replies: [{"role", "content"}]
    model_a: Mapped[str] = mapped_column(String(128))
    model_b: Mapped[str] = mapped_column(String(128))
    reply_a: Mapped[str] = mapped_column(Text)
    reply_b: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(256))  # where the item came from, e.g. an eval.json's created_at
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ComparisonVote(Base):
    """One rater's choice on one comparison; each rater votes on an item once."""

    __tablename__ = "comparison_votes"
    __table_args__ = (UniqueConstraint("comparison_id", "rater"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    comparison_id: Mapped[int] = mapped_column(ForeignKey("comparisons.id", ondelete="CASCADE"))
    rater: Mapped[str] = mapped_column(String(128))
    choice: Mapped[str] = mapped_column(String(3))  # the side picked as shown: A, B, or tie
    flipped: Mapped[bool] = mapped_column(Boolean)  # model_a's reply was shown on side B
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


Index("ix_comparison_votes_rater", ComparisonVote.rater)


class AuditEntry(Base):
    """One action an operator took on the deployment (a change of the serving plan, a link issued): who, when,
    what, and its details. Written by the console at ``/admin`` and by ``organic loop --watch`` (who: "watcher");
    never edited, never deleted with a user."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    who: Mapped[str] = mapped_column(String(128))  # "admin" (the bearer token) or the name given at the console's login
    action: Mapped[str] = mapped_column(String(32))  # ab, promote, rollback, issue_link, watch_<step>
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)  # the plan before and after, the person linked
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class WatchRound(Base):
    """One round of ``organic loop --watch``: the last of its steps that finished, the candidate it trained and
    what each step found, so that a restarted watcher resumes the round where it was and repeats no finished step."""

    __tablename__ = "watch_rounds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running, promoted, rolled_back, rejected, stopped
    step: Mapped[str | None] = mapped_column(String(16))  # the last step finished (organic.watch.STEPS); None: none yet
    mark: Mapped[int] = mapped_column(Integer)  # ratings + feedback answers in the store when the round began
    folder: Mapped[str] = mapped_column(String(1024))  # the round's files: analysis, reward model, candidate, eval
    incumbent: Mapped[str | None] = mapped_column(String(128))  # the serving model version the candidate must beat
    candidate: Mapped[str | None] = mapped_column(String(128))  # the trained candidate's model version, once registered
    reason: Mapped[str | None] = mapped_column(Text)  # why the round ended as it did
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONValue)  # each step's findings; "starts": runs per step
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuthToken(Base):
    """A signed token's id that the store knows of: an annotator or rater token when it was issued (so that they can
    be listed), any token, a user's session too, once it is revoked. A signed token needs no row to be valid; a
    revoked id is refused wherever its role's tokens are checked (``organic.store.tokens``). The row whose id is
    ``*<role>`` refuses every token of that role issued up to its ``revoked_at``."""

    __tablename__ = "auth_tokens"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the token's id ("j" in its payload), or *<role>
    role: Mapped[str | None] = mapped_column(String(16))  # user, annotator, rater; None: revoked by id alone
    subject: Mapped[str | None] = mapped_column(String(128))  # the annotator's or rater's name; never a user's id
    issued_at: Mapped[datetime | None] = mapped_column()  # when issued, for tokens recorded at issue
    revoked_at: Mapped[datetime | None] = mapped_column()  # when revoked; None: in use
