"""The safety layer: is a user message or a candidate reply offensive or on a sensitive topic, and what
safe canned reply replaces a blocked one.

    from organic.safety import check_turn, canned_reply
    turn = check_turn(user_text, candidate)
    reply = candidate if turn.ok else canned_reply(turn.failure, turn.topic)

Nothing here generates text with a model or stores anything.
"""

from organic.safety.canned import canned_reply, is_canned
from organic.safety.check import DEFAULT_THRESHOLD, SafetyVerdict, TurnSafety, check, check_many, check_turn
from organic.safety.topics import sensitive_topics

__all__ = [
    "DEFAULT_THRESHOLD",
    "SafetyVerdict",
    "TurnSafety",
    "canned_reply",
    "check",
    "check_many",
    "check_turn",
    "is_canned",
    "sensitive_topics",
]
