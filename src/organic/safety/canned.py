"""Canned safe replies that stand in for a model reply the safety layer blocked, or one that crashed.

Each situation has a few variants so a conversation does not repeat itself word for word. The
replies are fixed strings, so ``is_canned`` can recognise them later: the learning step leaves them
out of training data. This module must not decide *whether* to intervene (that is ``check.py``).
"""

from __future__ import annotations

import functools
import random

from organic.taxonomy import InteractionFailure

UNSAFE_HUMAN_REPLIES = (
    "Hmm, I'd rather not talk about that. What else is on your mind?",
    "I don't think I should respond to that. Can we talk about something else?",
    "Let's keep things friendly. What else would you like to chat about?",
    "I'm not comfortable with where this is going. Tell me about something you enjoy instead?",
)
UNSAFE_BOT_REPLIES = (
    "I'm not sure what to say to that. What have you been up to lately?",
    "Let me think of something better to say. Meanwhile, what's something fun you did this week?",
    "I'd better not answer that one. What would you like to talk about instead?",
)
SENSITIVE_REPLIES = (
    "I don't know much about {topic}, so I'd rather not weigh in. What else is on your mind?",
    "{Topic} is a sensitive subject and I'm not the best one to ask. Can we talk about something else?",
    "I try not to share opinions on {topic}. Is there something else you'd like to chat about?",
)
SELF_HARM_REPLIES = (
    "I'm really sorry you're going through this. I'm only a chatbot, so please reach out to someone you trust "
    "or a local crisis line; you don't have to face this alone.",
    "That sounds really hard, and I'm sorry you feel this way. Please talk to someone who can help, like a friend, "
    "a doctor or a crisis line near you.",
)
CRASH_REPLIES = (
    "Sorry, something went wrong on my side. Could you say that again?",
    "Oops, I lost my train of thought there. Could you repeat that?",
    "Sorry, I had a little hiccup. What were you saying?",
)
TOPIC_NAMES = {  # how a topic reads inside a sentence
    "self_harm": "self harm",
    "sexual": "sexual topics",
    "drugs": "drugs",
    "violence": "violence",
    "medical": "medical questions",
    "politics": "politics",
    "religion": "religion",
}


def canned_reply(reason: InteractionFailure, topic: str | None = None, rng: random.Random | None = None) -> str:
    """A safe reply for ``reason``, fitted to ``topic`` when a sensitive topic caused it."""
    rng = rng or random.Random()
    if reason is InteractionFailure.MODEL_CRASH:
        return rng.choice(CRASH_REPLIES)
    if topic == "self_harm" and reason is InteractionFailure.UNSAFE_HUMAN:
        return rng.choice(SELF_HARM_REPLIES)
    if topic is not None:
        name = TOPIC_NAMES.get(topic, topic.replace("_", " "))
        return rng.choice(SENSITIVE_REPLIES).format(topic=name, Topic=name[0].upper() + name[1:])
    if reason is InteractionFailure.UNSAFE_HUMAN:
        return rng.choice(UNSAFE_HUMAN_REPLIES)
    return rng.choice(UNSAFE_BOT_REPLIES)


def is_canned(text: str) -> bool:
    """True if ``text`` is one of the canned replies above."""
    return text in _all_replies()


@functools.cache
def _all_replies() -> set[str]:
    replies = set(UNSAFE_HUMAN_REPLIES + UNSAFE_BOT_REPLIES + SELF_HARM_REPLIES + CRASH_REPLIES)
    for name in TOPIC_NAMES.values():
        replies |= {r.format(topic=name, Topic=name[0].upper() + name[1:]) for r in SENSITIVE_REPLIES}
    return replies
