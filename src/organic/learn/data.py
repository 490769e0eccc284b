"""Training examples from stored conversations: a bot reply in its context, labelled good, bad or unknown.

This is where a message's label is decided, once, for every trainer and export: a thumbs up, a crowd
majority of Good, or a reward verdict of ``__ok__`` make a positive; a thumbs down, a crowd majority of a
Bad label, an unsafe safety verdict or a reward verdict other than ``__ok__`` make a negative. Explicit
human signals win over model verdicts. Canned safety and crash replies are never examples: the model
did not write them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from organic.store.records import ConversationRecord, MessageRecord, dislike_answer
from organic.taxonomy import SAFE, CrowdLabel, Sender

ROLE = {Sender.HUMAN.value: "user", Sender.BOT.value: "assistant"}
REWARD = re.compile(r"Predicted class:\s*(\S+)\s+with probability:\s*([0-9.]+)")


@dataclass
class Example:
    context: list[dict[str, str]]  # chat messages before the reply, roles user / assistant
    reply: str
    label: int  # 1 good, 0 bad, -1 unknown (the CRINGE convention)
    conversation_id: str
    user_pseudo_id: str
    source: str  # what decided the label: thumb, crowd, reward, safety, feedback, none
    split: str | None = None


def parse_reward(value: str | None) -> tuple[bool, float] | None:
    """(is ok, probability) from a BB3x reward string, or None when absent or unreadable."""
    match = REWARD.search(value or "")
    return (match.group(1) == SAFE, float(match.group(2))) if match else None


def label_of(message: MessageRecord) -> tuple[int, str]:
    """The label of a bot message and what decided it."""
    if message.thumb:
        return (1 if message.thumb == "up" else 0), "thumb"
    if message.labels:
        good = message.labels.get(CrowdLabel.GOOD.value, 0)
        bad = sum(message.labels.values()) - good
        if good != bad:
            return (1 if good > bad else 0), "crowd"
    if message.safety and any(v != SAFE for v in message.safety.values() if isinstance(v, str)):
        return 0, "safety"
    reward = parse_reward(message.reward)
    if reward is not None:
        return (1 if reward[0] else 0), "reward"
    return -1, "none"


def is_canned(message: MessageRecord) -> bool:
    return message.is_safety_controlled_response or message.from_model_crash


def examples(convos: Iterable[ConversationRecord], *, feedback_as_positive: bool = False) -> Iterator[Example]:
    """One example per bot reply (canned replies left out); with ``feedback_as_positive``, also the user's
    answer to "what should I have said?" as a positive for the disliked reply's context."""
    for convo in convos:
        history: list[dict[str, str]] = []
        for position, message in enumerate(convo.messages):
            if message.sender == Sender.BOT.value and not is_canned(message):
                label, source = label_of(message)
                yield Example(list(history), message.text, label, convo.external_id, convo.user_pseudo_id, source,
                              convo.split)
                answer = dislike_answer(convo.messages, position)
                if feedback_as_positive and message.thumb == "down" and answer is not None:
                    yield Example(list(history), answer.text, 1, convo.external_id, convo.user_pseudo_id,
                                  "feedback", convo.split)
            history.append({"role": ROLE[message.sender], "content": message.text})

