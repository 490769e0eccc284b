"""The live chat's reads and writes: users, conversations, messages, ratings, on one store engine.

The server keeps two of these: one on the store, for users who chose "save my conversation", and one on
a throwaway private store (``store.db.private_store``) for users who did not, so that they can chat through the same code
while nothing of theirs reaches the store. Every method commits before it returns, so whatever the
server acknowledges to a client is already durable. Methods are synchronous: the server calls them in
worker threads.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, event, exists, func, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from organic.store.bulk import ensure_model_versions
from organic.store.models import Conversation, Feedback, Message, ModelVersion, User, utcnow
from organic.store.records import CLIENT_CONTEXT, FEEDBACK_REQUEST, FEEDBACK_THANKS, client_turns
from organic.taxonomy import DislikeReason, Sender, Thumb



class NotFound(LookupError):
    """No such conversation or message (or not one the caller may see)."""


class Forbidden(PermissionError):
    """The conversation or message belongs to another user."""


class Invalid(ValueError):
    """The request is well-formed but not allowed (a rating on a human message, a wrong reason)."""


def new_id(prefix: str = "") -> str:
    return prefix + uuid.uuid4().hex


@dataclass(frozen=True)
class Consent:
    age_confirmed: bool
    save_conversations: bool
    allow_release: bool


def message_json(m: Message, rating: Feedback | None = None, version: str | None = None) -> dict[str, Any]:
    """A message as the API shows it to its owner."""
    return {
        "id": m.external_id,
        "sender": m.sender,
        "text": m.text,
        "position": m.position,
        "created_at": m.created_at.isoformat() if m.created_at else None,
        "model_version": version,
        "is_safety_controlled_response": m.is_safety_controlled_response,
        "previous_interaction_failure": m.previous_interaction_failure,
        "from_model_crash": m.from_model_crash,
        "is_dislike_feedback": m.is_dislike_feedback,
        "module": (m.traces or {}).get("module"),
        "rating": None if rating is None else {"thumb": rating.thumb, "reason": rating.reason, "free_text": rating.free_text},
    }


@dataclass(frozen=True)
class TurnState:
    awaiting_feedback: bool  # the last bot turn asked "what should I have said?"
    model_version: str | None
    history: list[dict[str, str]]
    memories: dict[str, list[str]] | None


class ChatStore:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)
        self._versions: dict[str, int] = {}

    # users --------------------------------------------------------------------------------------------
    def create_user(self, consent: Consent) -> str:
        pseudo_id = new_id("u-")
        with self._session.begin() as s:
            s.add(User(pseudo_id=pseudo_id, age_confirmed=consent.age_confirmed,
                       save_conversations=consent.save_conversations, allow_release=consent.allow_release))
        return pseudo_id

    def prune_users(self, created_before: datetime) -> int:
        """Delete the users created before ``created_before`` with everything of theirs; returns how many. The
        server prunes its throwaway store of unsaved users this way once their sessions have expired."""
        with self._session.begin() as s:
            return s.execute(delete(User).where(User.created_at < created_before)).rowcount

    def me(self, pseudo_id: str) -> dict[str, Any]:
        """What the user agreed to, as the store holds it."""
        with self._session() as s:
            user = self._user(s, pseudo_id)
            return {"user_id": user.pseudo_id, "save_conversations": user.save_conversations, "allow_release": user.allow_release}

    def set_release(self, pseudo_id: str, allow: bool) -> dict[str, Any]:
        """Give or withdraw consent to public release (it needs "save"); later release exports follow it."""
        with self._session.begin() as s:
            user = self._user(s, pseudo_id)
            if allow and not user.save_conversations:
                raise Invalid("public release needs 'save my conversation': nothing unsaved can be released")
            user.allow_release = allow
        return self.me(pseudo_id)

    def delete_user(self, pseudo_id: str) -> int:
        """Delete the user and everything of theirs (``store.users.delete_user``); returns the conversations removed."""
        from organic.store.users import delete_user

        removed = delete_user(self.engine, pseudo_id)
        if removed is None:
            raise Forbidden("your session is no longer valid (the user was deleted); accept the terms again")
        return removed

    def _user(self, s: Session, pseudo_id: str) -> User:
        user = s.scalar(select(User).where(User.pseudo_id == pseudo_id))
        if user is None:
            raise Forbidden("your session is no longer valid (the user was deleted); accept the terms again")
        return user

    # conversations ------------------------------------------------------------------------------------
    def start_conversation(self, pseudo_id: str, model_version: str, source: str = "live",
                           client_context: list[dict] | None = None) -> str:
        """A new conversation. ``client_context``: earlier turns a client sent (the OpenAI API's history) that this
        server did not write; they are the model's context only, never stored as messages, so they can be
        neither rated nor trained on as if this model had said them."""
        external_id = new_id("c-")
        with self._session.begin() as s:
            user = self._user(s, pseudo_id)
            version_id = self._version_id(s, model_version)
            s.add(Conversation(external_id=external_id, user_id=user.id, model_version_id=version_id, source=source,
                               extra={CLIENT_CONTEXT: client_context} if client_context else None))
        return external_id

    def _owned_conversation(self, s: Session, pseudo_id: str | None, conversation_id: str) -> Conversation:
        row = s.execute(select(Conversation, User.pseudo_id).join(User, Conversation.user_id == User.id)
                        .where(Conversation.external_id == conversation_id)).first()
        if row is None:
            raise NotFound(f"no conversation {conversation_id!r}")
        if pseudo_id is not None and row.pseudo_id != pseudo_id:
            raise Forbidden(f"conversation {conversation_id!r} belongs to another user")
        return row.Conversation

    def _version_id(self, s: Session, name: str) -> int:
        if name in self._versions:  # model versions are few and never renamed: remember their ids, once committed
            return self._versions[name]
        version_id = ensure_model_versions(s.connection(), [name])[name]
        event.listen(s, "after_commit", lambda _s: self._versions.setdefault(name, version_id), once=True)
        return version_id

    def conversation(self, pseudo_id: str | None, conversation_id: str) -> dict[str, Any]:
        """A conversation with its messages and their ratings; ``pseudo_id`` None reads any (admin)."""
        with self._session() as s:
            convo = self._owned_conversation(s, pseudo_id, conversation_id)
            rows = s.execute(
                select(Message, Feedback, ModelVersion.name)
                .outerjoin(Feedback, (Feedback.message_id == Message.id) & (Feedback.user_id == convo.user_id))
                .outerjoin(ModelVersion, Message.model_version_id == ModelVersion.id)
                .where(Message.conversation_id == convo.id).order_by(Message.position)
            ).all()
            version = s.get(ModelVersion, convo.model_version_id) if convo.model_version_id else None
            return {
                "id": convo.external_id,
                "created_at": convo.created_at.isoformat(),
                "model_version": version.name if version else None,
                "client_context": client_turns(convo.extra),
                "messages": [message_json(m, f, v) for m, f, v in rows],
            }

    def conversations(self, pseudo_id: str) -> list[dict[str, Any]]:
        with self._session() as s:
            user = self._user(s, pseudo_id)
            rows = s.execute(
                select(Conversation.external_id, Conversation.created_at, func.count(Message.id))
                .outerjoin(Message, Message.conversation_id == Conversation.id)
                .where(Conversation.user_id == user.id).group_by(Conversation.id).order_by(Conversation.id)
            ).all()
        return [{"id": cid, "created_at": created.isoformat(), "messages": n} for cid, created, n in rows]

    def continued(self, pseudo_id: str, history: list[dict[str, str]]) -> str | None:
        """The user's conversation whose turns (the context its client sent, then its messages) are ``history``, the
        latest when several are: an OpenAI client re-sends the whole conversation each turn. Only the conversations
        whose last message is ``history``'s last turn are read, found in one query however many the user has."""
        if not history:
            return None
        wanted = [(m["role"], m["content"]) for m in history]
        later = aliased(Message)
        with self._session() as s:
            user = self._user(s, pseudo_id)
            candidates = s.scalars(
                select(Conversation.external_id).join(Message, Message.conversation_id == Conversation.id)
                .where(Conversation.user_id == user.id, Message.text == history[-1]["content"],
                       Message.sender == (Sender.BOT if history[-1]["role"] == "assistant" else Sender.HUMAN).value,
                       ~exists().where(later.conversation_id == Message.conversation_id, later.position > Message.position))
                .order_by(Conversation.id.desc())
            ).all()
        for cid in candidates:
            convo = self.conversation(pseudo_id, cid)
            have = [(m["role"], m["content"]) for m in convo["client_context"]]
            have += [("user" if m["sender"] == Sender.HUMAN.value else "assistant", m["text"]) for m in convo["messages"]]
            if have == wanted:
                return cid
        return None

    def turn_state(self, pseudo_id: str, conversation_id: str) -> TurnState:
        """What a new turn needs, in one read: whether the last bot turn asked "what should I have said?" (then
        the user's message answers it), the conversation's model version, the conversation as chat messages
        for the model (the feedback exchange left out), and the long-term memory the last bot message kept."""
        with self._session() as s:
            convo = self._owned_conversation(s, pseudo_id, conversation_id)
            version = s.scalar(select(ModelVersion.name).where(ModelVersion.id == convo.model_version_id))
            messages = s.scalars(select(Message).where(Message.conversation_id == convo.id).order_by(Message.position)).all()
        awaiting = bool(messages) and (messages[-1].traces or {}).get("module") == FEEDBACK_REQUEST
        history = client_turns(convo.extra) + [
            {"role": "user" if m.sender == Sender.HUMAN.value else "assistant", "content": m.text}
            for m in messages
            if not m.is_dislike_feedback and (m.traces or {}).get("module") not in (FEEDBACK_REQUEST, FEEDBACK_THANKS)
        ]
        memories = next((m.traces["memories"] for m in reversed(messages) if (m.traces or {}).get("memories")), None)
        return TurnState(awaiting, version, history, memories)

    def add_message(self, pseudo_id: str, conversation_id: str, sender: Sender, text: str, *,
                    model_version: str | None = None, external_id: str | None = None, after: str | None = None,
                    **fields: Any) -> dict[str, Any] | None:
        """Append a message (committed before this returns) and, for the answer to "what should I have
        said?", link it to the disliked reply's rating.

        ``after``: append only right after that message. If the same text already follows it (a request sent
        twice), that message is returned and nothing is added; if something else does, None."""
        with self._session.begin() as s:
            convo = self._owned_conversation(s, pseudo_id, conversation_id)
            # lock the conversation so concurrent appends get distinct positions (SQLite: the write lock already does)
            s.execute(select(Conversation.id).where(Conversation.id == convo.id).with_for_update())
            if after is not None:
                last = s.scalars(select(Message).where(Message.conversation_id == convo.id)
                                 .order_by(Message.position.desc()).limit(2)).all()
                if len(last) == 2 and last[1].external_id == after and last[0].text == text and last[0].sender == sender.value:
                    return message_json(last[0], version=model_version)
                if not last or last[0].external_id != after:
                    return None
            position = s.scalar(select(func.coalesce(func.max(Message.position) + 1, 0)).where(Message.conversation_id == convo.id))
            version_id = self._version_id(s, model_version) if model_version else None
            message = Message(conversation_id=convo.id, position=position, sender=sender.value, text=text,
                              external_id=external_id or new_id("h-" if sender is Sender.HUMAN else "b-"),
                              model_version_id=version_id, **fields)
            s.add(message)
            s.flush()
            if message.is_dislike_feedback:
                rating = s.scalar(select(Feedback).join(Message, Feedback.message_id == Message.id)
                                  .where(Message.conversation_id == convo.id, Feedback.thumb == Thumb.DOWN.value)
                                  .order_by(Message.position.desc()).limit(1))
                if rating is not None:
                    rating.feedback_message_id = message.id
            return message_json(message, version=model_version)

    # ratings ------------------------------------------------------------------------------------------
    def _owned_message(self, s: Session, pseudo_id: str, message_id: str) -> tuple[Message, Conversation]:
        row = s.execute(select(Message, Conversation, User.pseudo_id)
                        .join(Conversation, Message.conversation_id == Conversation.id)
                        .join(User, Conversation.user_id == User.id).where(Message.external_id == message_id)).first()
        if row is None:
            raise NotFound(f"no message {message_id!r}")
        if row.pseudo_id != pseudo_id:
            raise Forbidden(f"message {message_id!r} belongs to another user's conversation")
        return row.Message, row.Conversation

    def rate(self, pseudo_id: str, message_id: str, thumb: str | None, reason: str | None = None,
             free_text: str | None = None) -> dict[str, Any] | None:
        """Set, change (``thumb`` up/down) or withdraw (``thumb`` None) the user's rating of a bot message."""
        with self._session.begin() as s:
            message, convo = self._owned_message(s, pseudo_id, message_id)
            # one rating of a message at a time (a double click; SQLite: the write lock already does)
            s.execute(select(Message.id).where(Message.id == message.id).with_for_update())
            if message.sender != Sender.BOT.value:
                raise Invalid("only bot messages can be rated")
            if (message.traces or {}).get("module") in (FEEDBACK_REQUEST, FEEDBACK_THANKS):
                raise Invalid("this message is part of the feedback exchange and cannot be rated")
            parsed = validate_rating(thumb, reason, canned=message.is_safety_controlled_response)
            existing = s.scalar(select(Feedback).where(Feedback.message_id == message.id, Feedback.user_id == convo.user_id))
            if thumb is None:
                if existing is not None:
                    s.delete(existing)
                return None
            if existing is None:
                existing = Feedback(message_id=message.id, user_id=convo.user_id, thumb=thumb)
                s.add(existing)
            existing.thumb, existing.reason, existing.free_text, existing.updated_at = thumb, parsed, free_text, utcnow()
            return {"thumb": thumb, "reason": parsed, "free_text": free_text}

    def rated_reply(self, pseudo_id: str, message_id: str) -> tuple[str, bool]:
        """The conversation of the user's message ``message_id``, and whether it is a canned safety reply."""
        with self._session() as s:
            message, convo = self._owned_message(s, pseudo_id, message_id)
            return convo.external_id, message.is_safety_controlled_response

    def trace(self, pseudo_id: str, message_id: str) -> dict[str, Any]:
        """Why the bot said this: model version, safety verdicts, generation settings, timings, module traces."""
        with self._session() as s:
            message, _ = self._owned_message(s, pseudo_id, message_id)
            version = s.get(ModelVersion, message.model_version_id) if message.model_version_id else None
            return {
                "id": message.external_id,
                "sender": message.sender,
                "model_version": version.name if version else None,
                "safety": message.safety,
                "is_safety_controlled_response": message.is_safety_controlled_response,
                "previous_interaction_failure": message.previous_interaction_failure,
                "from_model_crash": message.from_model_crash,
                "generation": message.generation,
                "timings": message.timings,
                "traces": message.traces,
                "reward": message.reward,
            }


def validate_rating(thumb: str | None, reason: str | None, *, canned: bool) -> str | None:
    """The canonical reason for a rating, or ``Invalid`` saying what is allowed."""
    if thumb not in (Thumb.UP, Thumb.DOWN, None):
        raise Invalid(f"thumb must be 'up', 'down' or null (to withdraw), not {thumb!r}")
    if thumb != Thumb.DOWN:
        if reason is not None:
            raise Invalid("a reason goes with a thumbs down only")
        return None
    if reason is None:
        return None
    allowed = [r for r in DislikeReason if r.for_safety_reply == canned]
    try:
        parsed = DislikeReason.parse(reason)
    except ValueError:
        parsed = None
    if parsed not in allowed:
        kind = "a canned safety reply" if canned else "a model reply"
        raise Invalid(f"reason {reason!r} does not apply to {kind}; choose one of: {', '.join(r.value for r in allowed)}")
    return parsed.value
