"""What an example is: a bot reply the model wrote, in its context, labelled good, bad or unknown.

This is where a message's label is decided, once, for every trainer and export: a thumbs up, a crowd
majority of Good, or a reward verdict of ``__ok__`` make a positive; a thumbs down, a crowd majority of a
Bad label, an unsafe safety verdict or a reward verdict other than ``__ok__`` make a negative. Explicit
human signals win over model verdicts. Canned safety and crash replies are never examples: the model
did not write them. A user's answer to "what should I have said?" becomes a positive only on request and only
when it passes the safety layer. ``select_examples`` is the one copies-cap-and-balance rule of every training set,
``contexts`` the one walk from a conversation to its model-written replies in context, ``held_out`` the one split,
and ``tokenize_example`` the one way an example becomes tokens.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from organic.safety import check_many
from organic.store.records import FEEDBACK_REQUEST, FEEDBACK_THANKS, ConversationRecord, MessageRecord, client_turns, dislike_answer
from organic.taxonomy import BAD, GOOD, SAFE, UNKNOWN, CrowdLabel, Sender, Thumb

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

ROLE = {Sender.HUMAN.value: "user", Sender.BOT.value: "assistant"}
REWARD = re.compile(r"Predicted class:\s*(\S+)\s+with probability:\s*([0-9.]+)")
IGNORE_INDEX = -100  # the label of a token that is not a training target (context, padding)


@dataclass
class Example:
    context: list[dict[str, str]]  # chat messages before the reply, roles user / assistant
    reply: str
    label: int  # GOOD, BAD or UNKNOWN (the CRINGE convention)
    conversation_id: str
    user_pseudo_id: str
    source: str  # what decided the label: thumb, crowd, reward, safety, feedback, none
    split: str | None = None


def parse_reward(value: str | None) -> tuple[bool, float] | None:
    """(is ok, probability) from a BB3x reward string, or None when absent or unreadable."""
    match = REWARD.search(value or "")
    return (match.group(1) == SAFE, float(match.group(2))) if match else None


def unsafe_verdict(safety: dict | None) -> bool:
    """Whether a stored safety verdict (BB3x ``safety`` plus our ``sensitive_topic``) found anything."""
    return bool(safety) and any(v != SAFE for v in safety.values() if isinstance(v, str))


def label_of(message: MessageRecord) -> tuple[int, str]:
    """The label of a bot message and what decided it."""
    if message.thumb:
        return (GOOD if message.thumb == Thumb.UP else BAD), "thumb"
    if message.labels:
        good = message.labels.get(CrowdLabel.GOOD.value, 0)
        bad = sum(message.labels.values()) - good
        if good != bad:
            return (GOOD if good > bad else BAD), "crowd"
    if unsafe_verdict(message.safety):
        return BAD, "safety"
    reward = parse_reward(message.reward)
    if reward is not None:
        return (GOOD if reward[0] else BAD), "reward"
    return UNKNOWN, "none"


def is_canned(message: MessageRecord) -> bool:
    """A reply the model did not write: a canned safety or crash reply, or the bot's side of the feedback exchange."""
    module = (message.traces or {}).get("module")
    return message.is_safety_controlled_response or message.from_model_crash or module in (FEEDBACK_REQUEST, FEEDBACK_THANKS)


class ModelReply(NamedTuple):
    """A bot reply the model wrote, where it stands in its conversation, and the chat before it."""

    position: int  # index in the conversation's messages
    message: MessageRecord
    context: list[dict[str, str]]  # roles user / assistant; an API client's earlier turns first


def contexts(convo: ConversationRecord) -> Iterator[ModelReply]:
    """Every model-written bot reply of a conversation in its context (canned replies are context, not replies)."""
    # turns an API client sent that the server did not write: the model's context, never replies themselves
    history: list[dict[str, str]] = client_turns(convo.extra)
    for position, message in enumerate(convo.messages):
        if message.sender == Sender.BOT.value and not is_canned(message):
            yield ModelReply(position, message, list(history))
        history.append({"role": ROLE[message.sender], "content": message.text})


def last_user_turn(context: Iterable[dict[str, str]]) -> str | None:
    """What the user said last in a context, or None when they said nothing yet."""
    return next((m["content"] for m in reversed(list(context)) if m["role"] == "user"), None)


def context_text(context: Iterable[dict[str, str]], turns: int) -> str:
    """The last ``turns`` messages of a context as plain text, one per line (what a reward model reads)."""
    return "\n".join(m["content"] for m in list(context)[-turns:])


def examples(convos: Iterable[ConversationRecord], *, feedback_as_positive: bool = False) -> Iterator[Example]:
    """One example per bot reply (canned replies left out); with ``feedback_as_positive``, also the user's
    answer to "what should I have said?" as a positive for the disliked reply's context, when it passes the
    safety layer (trolls answer with abuse, and a positive is what the model is taught to say)."""
    for convo in convos:
        yield from _conversation_examples(convo, feedback_as_positive)


def _conversation_examples(convo: ConversationRecord, feedback_as_positive: bool) -> list[Example]:
    out: list[Example] = []
    for position, message, context in contexts(convo):
        label, source = label_of(message)
        out.append(Example(context, message.text, label, convo.external_id, convo.user_pseudo_id, source, convo.split))
        answer = dislike_answer(convo.messages, position) if feedback_as_positive and message.thumb == Thumb.DOWN else None
        if answer is not None and not unsafe_verdict(answer.safety):
            out.append(Example(list(context), answer.text, GOOD, convo.external_id, convo.user_pseudo_id, "feedback",
                               convo.split))
    return _drop_unsafe_feedback(out)


def _drop_unsafe_feedback(out: list[Example]) -> list[Example]:
    """The examples less the feedback answers the safety layer blocks (checked now: a stored verdict may be
    missing, or come from another deployment's classifier)."""
    feedback = [e for e in out if e.source == "feedback"]
    if not feedback:
        return out
    blocked = {id(e) for e, verdict in zip(feedback, check_many([e.reply for e in feedback])) if verdict.blocked}
    return [e for e in out if id(e) not in blocked]


def held_out(conversation_id: str, share: float, seed: int = 0) -> bool:
    """Whether a conversation falls in the held-out part: a stable hash, so every run splits the same way and
    no conversation is split across train and held-out."""
    digest = hashlib.sha256(f"{seed}:{conversation_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def build_training_set(convos: Iterable[ConversationRecord], *, sources: tuple[str, ...] | None = None,
                       feedback_as_positive: bool = False, exclude_users: set[str] | frozenset = frozenset(),
                       max_copies: int | None = 2, balance: bool = False, seed: int = 0) -> list[Example]:
    """Labelled examples for training: every example of an excluded (troll) user left out (their conversations,
    so their replies' labels and their feedback answers alike), labels only from ``sources`` when given (e.g.
    thumb and crowd for a reward model; feedback answers always count), then ``select_examples`` (the copies
    cap, and with ``balance`` as many positives as negatives)."""
    kept = [ex for ex in examples((c for c in convos if c.user_pseudo_id not in exclude_users),
                                  feedback_as_positive=feedback_as_positive)
            if ex.label in (GOOD, BAD) and (sources is None or ex.source in sources or ex.source == "feedback")]
    return select_examples(kept, max_copies=max_copies, balance=balance, seed=seed)


def select_examples(labelled: Iterable[Example], *, max_copies: int | None = 2, balance: bool = False,
                    seed: int = 0) -> list[Example]:
    """The one "copies cap, then balance" rule, for stored data and generated candidates alike (as BB3x did).

    Only examples labelled GOOD or BAD are kept. Of positives with identical reply text, only the first
    ``max_copies`` stay, counted over the whole set and not per context: a stock reply ("That's great!") given
    to many contexts would otherwise teach the model to say it everywhere (``None``: no cap). Negatives are not
    capped. With ``balance`` the larger side is then subsampled (deterministically, by ``seed``) to the size of
    the smaller. The order of the input is kept.
    """
    kept: list[Example] = []
    copies: dict[str, int] = {}
    for ex in labelled:
        if ex.label == GOOD:
            copies[ex.reply] = copies.get(ex.reply, 0) + 1
            if max_copies is not None and copies[ex.reply] > max_copies:
                continue
        if ex.label in (GOOD, BAD):
            kept.append(ex)
    if balance:
        rng = random.Random(seed)
        good = [e for e in kept if e.label == GOOD]
        bad = [e for e in kept if e.label == BAD]
        n = min(len(good), len(bad))
        chosen = {id(e) for e in rng.sample(good, n) + rng.sample(bad, n)}
        kept = [e for e in kept if id(e) in chosen]
    return kept


def tokenize_example(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], reply: str, label: int,
                     max_length: int | None = None) -> dict[str, Any]:
    """One training row: the chat-templated context, then the reply and EOS; only the reply is a target.

    `messages` are the context turns (`{"role", "content"}`), `reply` the bot reply being judged and `label` its
    example label. Past `max_length` the oldest context tokens go first, since the reply is what is learnt; a reply
    longer than `max_length` on its own is cut from the right.
    """
    context = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    context_ids = list(context["input_ids"])
    reply_ids = tokenizer(reply, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    if max_length is not None:
        reply_ids = reply_ids[:max_length]
        room = max_length - len(reply_ids)
        context_ids = context_ids[-room:] if room > 0 else []
    return {
        "input_ids": context_ids + reply_ids,
        "labels": [IGNORE_INDEX] * len(context_ids) + reply_ids,
        "example_label": label,
    }
