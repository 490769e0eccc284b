"""The safety layer: is a user message or a candidate reply offensive or on a sensitive topic, and what
safe canned reply replaces a blocked one.

    from organic.safety import canned_reply, check
    verdict = check(user_text)  # or a piece of the model's reply (then the failure is UNSAFE_BOT)
    if verdict.blocked:
        reply = canned_reply(InteractionFailure.UNSAFE_HUMAN, verdict.sensitive_topic)

``organic.serve.turn`` applies it to every chat turn: the user's message first, then each piece of the reply
before it is shown.

Nothing here generates text with a model or stores anything.
"""

from organic.safety.canned import canned_reply, is_canned
from organic.safety.check import DEFAULT_THRESHOLD, SafetyVerdict, check, check_many
from organic.safety.topics import sensitive_topics

__all__ = [
    "DEFAULT_THRESHOLD",
    "SafetyVerdict",
    "canned_reply",
    "check",
    "check_many",
    "is_canned",
    "sensitive_topics",
]
