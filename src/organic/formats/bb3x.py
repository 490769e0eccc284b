"""The BB3x release format (Xu et al. 2023): one conversation per JSONL line.

``parse_conversation`` validates one decoded line and turns it into a ``ConversationRecord``;
``to_bb3x`` turns a record back into the release's dict. Both spellings of the keys are accepted
(camelCase as in the files, snake_case as in the data card; ``convo_id`` or ``chat_id``; sender
``human``/``bot`` or ``Human``/``Chatbot``). Anything a line carries that the store has no column for
goes into ``extra`` verbatim, and so does any value the store would normalise (an integer message id,
an empty ``mturk``), so that import then export gives back every field with the same JSON value.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from organic.store.records import ConversationRecord, MessageRecord
from organic.taxonomy import CrowdLabel, DislikeReason, InteractionFailure, Sender, Thumb

TRACE_KEYS = (
    "memories",
    "memory_decision",
    "memory_knowledge",
    "search_decision",
    "search_query",
    "search_knowledge",
    "search_knowledge_doc_titles",
    "search_knowledge_doc_content",
    "search_knowledge_doc_urls",
)
"""Module outputs BB3 recorded with each bot message; the store keeps them in ``Message.traces``."""

SPLIT_OF_CHUNK = {**{i: "test" for i in range(0, 3)}, **{i: "valid" for i in range(3, 6)}, **{i: "train" for i in range(6, 100)}}
CHUNK_NAME = re.compile(r"release_data_(\d{2})\.jsonl$")


def split_of(path: Path) -> str | None:
    """The split a released chunk belongs to (chunks 00-02 test, 03-05 valid, 06-99 train), else None."""
    match = CHUNK_NAME.search(path.name)
    return SPLIT_OF_CHUNK.get(int(match.group(1))) if match else None


def _alias(*names: str) -> Any:
    return Field(default=None, validation_alias=AliasChoices(*names))


class _Message(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    text: str
    sender: str
    safety: dict[str, Any] | None = None
    reward: str | None = None
    mturk: dict[str, int] | None = None
    bot_message_id: str | int | None = None
    human_message_id: str | int | None = None
    is_liked: bool | None = _alias("isLiked", "is_liked")
    is_disliked: bool | None = _alias("isDisliked", "is_disliked")
    dislike_type: str | None = _alias("dislike_type", "dislikeType")
    is_safety_controlled_response: bool | None = _alias("isSafetyControlledResponse", "is_safety_controlled_response")
    previous_interaction_failure: str | None = _alias("previous_interaction_failure", "previousInteractionFailure")
    from_model_crash: bool | None = _alias("from_model_crash", "fromModelCrash")
    is_dislike_feedback: bool | None = _alias("isDislikeFeedback", "is_dislike_feedback")

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        return Sender.parse(value).value

    @field_validator("previous_interaction_failure")
    @classmethod
    def _failure(cls, value: str | None) -> str | None:
        if value is not None and value not in {f.value for f in InteractionFailure}:
            raise ValueError(f"unknown previous_interaction_failure {value!r}; expected one of: "
                             + ", ".join(f.value for f in InteractionFailure))
        return value

    @field_validator("mturk")
    @classmethod
    def _mturk(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        for label, count in (value or {}).items():
            CrowdLabel.parse(label)
            if count < 0:
                raise ValueError(f"mturk count for {label!r} is negative")
        return value


class _Conversation(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")

    user_pseudo_id: str | int = Field(validation_alias=AliasChoices("user_pseudo_id", "userPseudoId"))
    convo_id: str | int = Field(validation_alias=AliasChoices("convo_id", "chat_id", "convoId", "chatId"))
    message_history: list[_Message] = Field(validation_alias=AliasChoices("message_history", "messageHistory"))


def describe(error: ValidationError) -> str:
    """A one-line account of what is wrong with a line, naming each bad field by its path."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "line"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


CONSENT_KEY = "organic_consent"  # what the user agreed to, carried in a BB3x line's extra fields (the format has none)


def parse_conversation(data: Any, *, split: str | None = None, model_version: str | None = None,
                       allow_release: bool = False) -> ConversationRecord:
    """Validate one decoded BB3x line. Raises ``ValueError`` with a readable message on bad input.

    Consent: a line organic exported carries its user's choices under ``organic_consent`` and they are kept
    as they were; a line without them (the public BB3x release, another tool's export) is saved but not released
    unless ``allow_release`` asserts that its users agreed to a public release."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object (one conversation per line), got {type(data).__name__}")
    try:
        convo = _Conversation.model_validate(data)
    except ValidationError as error:
        raise ValueError(describe(error)) from None
    extra = dict(convo.model_extra or {})
    consent = _consent(extra.pop(CONSENT_KEY, None), allow_release)
    for key in ("user_pseudo_id", "convo_id"):  # keep non-string ids exactly as they were
        value = getattr(convo, key)
        if not isinstance(value, str):
            extra[key] = value
    return ConversationRecord(
        external_id=str(convo.convo_id),
        user_pseudo_id=str(convo.user_pseudo_id),
        messages=[_message_record(m, model_version) for m in convo.message_history],
        split=split,
        source="bb3x",
        model_version=model_version,
        extra=extra or None,
        **consent,
    )


def _consent(carried: Any, allow_release: bool) -> dict[str, bool]:
    if carried is None:
        return {"age_confirmed": True, "save_conversations": True, "allow_release": allow_release}
    keys = ("age_confirmed", "save_conversations", "allow_release")
    if not isinstance(carried, dict) or not all(isinstance(carried.get(k), bool) for k in keys):
        raise ValueError(f"{CONSENT_KEY}: expected an object with true/false {', '.join(keys)}; got {carried!r}")
    if not carried["save_conversations"]:
        raise ValueError(f"{CONSENT_KEY}: its user chose not to save their conversation, so it is not imported")
    return {k: carried[k] for k in keys}


def _message_record(msg: _Message, model_version: str | None) -> MessageRecord:
    extra: dict[str, Any] = dict(msg.model_extra or {})
    fields = msg.model_fields_set
    bot = msg.sender == Sender.BOT.value
    traces = {k: extra.pop(k) for k in TRACE_KEYS if k in extra}
    raw_id = msg.bot_message_id if bot else msg.human_message_id
    other_id = "human_message_id" if bot else "bot_message_id"
    if other_id in fields:  # an id under the other sender's name: keep it as it was
        extra[other_id] = getattr(msg, other_id)
    if raw_id is not None and not isinstance(raw_id, str):
        extra["bot_message_id" if bot else "human_message_id"] = raw_id

    for name in _BOT_ONLY if not bot else _HUMAN_ONLY:  # a field the other sender carries: keep it verbatim
        if name in fields:
            extra[_CAMEL.get(name, name)] = getattr(msg, name)
            setattr(msg, name, None)
    if msg.is_liked and msg.is_disliked:
        raise ValueError("a message cannot be both liked and disliked (isLiked and isDisliked are both true)")
    thumb = Thumb.UP.value if msg.is_liked else Thumb.DOWN.value if msg.is_disliked else None
    reason = None
    if msg.dislike_type is not None:
        reason = DislikeReason.parse(msg.dislike_type).value
        if thumb != Thumb.DOWN or reason != msg.dislike_type:  # a reason without a thumbs down, or another spelling
            extra["dislike_type"] = msg.dislike_type
            reason = reason if thumb == Thumb.DOWN else None
    labels: dict[str, int] = {}
    for label, count in (msg.mturk or {}).items():
        key = CrowdLabel.parse(label).value
        labels[key] = labels.get(key, 0) + count
    if msg.mturk is not None and (not msg.mturk or list(labels) != list(msg.mturk) or 0 in labels.values()):
        extra["mturk"] = msg.mturk  # spelling or zero counts the store would not reproduce
    for flag in ("is_liked", "is_disliked", "is_safety_controlled_response", "from_model_crash", "is_dislike_feedback"):
        if flag in fields and getattr(msg, flag) is None and _CAMEL.get(flag, flag) not in extra:  # an explicit null is not the same as false
            extra[_CAMEL.get(flag, flag)] = None
    return MessageRecord(
        sender=msg.sender,
        text=msg.text,
        external_id=None if raw_id is None else str(raw_id),
        model_version=model_version if bot else None,
        safety=msg.safety,
        reward=msg.reward,
        traces=traces or None,
        is_safety_controlled_response=bool(msg.is_safety_controlled_response),
        previous_interaction_failure=msg.previous_interaction_failure,
        from_model_crash=bool(msg.from_model_crash),
        is_dislike_feedback=bool(msg.is_dislike_feedback),
        extra=extra or None,
        thumb=thumb,
        reason=reason,
        labels={k: v for k, v in labels.items() if v > 0},
    )


_BOT_ONLY = ("is_liked", "is_disliked", "dislike_type", "is_safety_controlled_response",
             "previous_interaction_failure", "from_model_crash")
_HUMAN_ONLY = ("is_dislike_feedback",)
_CAMEL = {
    "is_liked": "isLiked",
    "is_disliked": "isDisliked",
    "is_safety_controlled_response": "isSafetyControlledResponse",
    "is_dislike_feedback": "isDislikeFeedback",
}


def to_bb3x(convo: ConversationRecord) -> dict[str, Any]:
    """The release's dict for a conversation: camelCase keys, every field present."""
    out: dict[str, Any] = {
        "user_pseudo_id": convo.user_pseudo_id,
        "convo_id": convo.external_id,
        "message_history": [_message_dict(m) for m in convo.messages],
    }
    out.update(convo.extra or {})
    out[CONSENT_KEY] = {"age_confirmed": convo.age_confirmed, "save_conversations": convo.save_conversations,
                        "allow_release": convo.allow_release}
    return out


def _message_dict(msg: MessageRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "text": msg.text,
        "sender": msg.sender,
        "safety": msg.safety,
        "reward": msg.reward,
        "mturk": dict(msg.labels) or None,
    }
    if msg.sender == Sender.BOT.value:
        traces = msg.traces or {}
        out |= {
            "bot_message_id": msg.external_id,
            "isLiked": msg.thumb == Thumb.UP,
            "isDisliked": msg.thumb == Thumb.DOWN,
            "dislike_type": msg.reason if msg.thumb == Thumb.DOWN else None,
            **{key: traces.get(key) for key in TRACE_KEYS},
            **{k: v for k, v in traces.items() if k not in TRACE_KEYS},
            "isSafetyControlledResponse": msg.is_safety_controlled_response,
            "previous_interaction_failure": msg.previous_interaction_failure,
            "from_model_crash": msg.from_model_crash,
        }
    else:
        out |= {"human_message_id": msg.external_id, "isDislikeFeedback": msg.is_dislike_feedback}
    out.update(msg.extra or {})
    return out
