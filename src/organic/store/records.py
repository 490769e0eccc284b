"""Conversations in memory: what an import hands the store and what an export reads back.

These dataclasses are the store's rows, joined: a conversation with its user's consent, its messages,
and each message's rating and crowd labels. Formats convert to and from them; only ``organic.store``
turns them into SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

FEEDBACK_REQUEST = "feedback_request"  # traces["module"] of the bot's "what should I have said?" turn
FEEDBACK_THANKS = "feedback_thanks"  # traces["module"] of the bot's thanks for the answer
CLIENT_CONTEXT = "client_context"  # a conversation's extra key: earlier turns an API client sent, the model's context only


def client_turns(extra: dict | None) -> list[dict]:
    """The earlier turns an API client sent with a conversation (its ``extra``), as chat messages; [] if none."""
    return [dict(m) for m in (extra or {}).get(CLIENT_CONTEXT, [])]


@dataclass
class MessageRecord:
    sender: str  # taxonomy.Sender value
    text: str
    external_id: str | None = None
    model_version: str | None = None
    safety: dict[str, Any] | None = None
    reward: str | None = None
    traces: dict[str, Any] | None = None
    is_safety_controlled_response: bool = False
    previous_interaction_failure: str | None = None
    from_model_crash: bool = False
    is_dislike_feedback: bool = False
    generation: dict[str, Any] | None = None
    timings: dict[str, Any] | None = None
    extra: dict[str, Any] | None = None
    created_at: datetime | None = None
    thumb: str | None = None  # "up" / "down", from the conversation's user
    reason: str | None = None  # taxonomy.DislikeReason value for a thumbs down
    free_text: str | None = None
    labels: dict[str, int] = field(default_factory=dict)  # taxonomy.CrowdLabel value -> number of annotators
    id: int | None = None  # the store's id, set when read back


@dataclass
class ConversationRecord:
    external_id: str
    user_pseudo_id: str
    messages: list[MessageRecord] = field(default_factory=list)
    split: str | None = None
    source: str = "live"
    model_version: str | None = None
    extra: dict[str, Any] | None = None
    created_at: datetime | None = None
    age_confirmed: bool = False
    save_conversations: bool = False
    allow_release: bool = False
    id: int | None = None


def dislike_answer(messages: list[MessageRecord], position: int) -> MessageRecord | None:
    """The human message that answers "what should I have said?" for the bot reply at ``position``.

    After a thumbs down the bot may first ask the question in a turn of its own; the answer is the first
    human message after the reply, provided it carries ``is_dislike_feedback``.
    """
    for later in messages[position + 1 : position + 3]:
        if later.sender == "human":
            return later if later.is_dislike_feedback else None
    return None
