"""Safety verdicts for one text and for one turn (user message + candidate reply).

A verdict combines three checks, recorded the way the BB3x release records them:
- ``duo_safety``: the classifier (``classifier.py``), ``"__ok__"`` or ``"__notok__"``;
- ``string_matcher``: the word list (``string_matcher.py``), ``"__ok__"`` or ``"__notok__:<word>"``;
- ``sensitive_topic``: the topic found by ``topics.py``, or None.
The text is *offensive* when either of the first two is not ``"__ok__"``; a turn is blocked when
either side is offensive or on a sensitive topic. This module decides; it must not write replies
(``canned.py``) nor store anything (the server stores ``to_json()``).

Known edges, by design: the classifier is conservative about mild swearing ("this damn printer" is
flagged) and about despair ("I want to die" is flagged, and the self-harm topic picks a supportive
reply); ordinary idioms with violent words ("I killed it at my exam") pass, and whole-word matching
keeps "Scunthorpe" and "assassin" safe.
"""

from __future__ import annotations

from dataclasses import dataclass

from organic.safety.classifier import offensive_probability
from organic.safety.string_matcher import find_offensive
from organic.safety.topics import find_topic
from organic.taxonomy import NOT_OK, SAFE

DEFAULT_THRESHOLD = 0.8  # classifier probability at or above which a text is offensive; see the tests for the cases behind it


@dataclass(frozen=True)
class SafetyVerdict:
    duo_safety: str  # "__ok__" or "__notok__"
    string_matcher: str  # "__ok__" or "__notok__:<matched word>"
    sensitive_topic: str | None = None  # e.g. "politics", "self_harm"; None when no topic was found

    @property
    def ok(self) -> bool:
        """No offensive language found (both BB3x safety fields are ``"__ok__"``); topics are separate."""
        return self.duo_safety == SAFE and self.string_matcher == SAFE

    @property
    def blocked(self) -> bool:
        """True if a reply to (or of) this text should be replaced by a canned one."""
        return not self.ok or self.sensitive_topic is not None

    def to_json(self) -> dict:
        """The BB3x release's ``safety`` field plus the topic."""
        return {"duo_safety": self.duo_safety, "string_matcher": self.string_matcher, "sensitive_topic": self.sensitive_topic}


def check(text: str, threshold: float = DEFAULT_THRESHOLD) -> SafetyVerdict:
    """The safety verdict of one text."""
    return check_many([text], threshold)[0]


def check_many(texts: list[str], threshold: float = DEFAULT_THRESHOLD) -> list[SafetyVerdict]:
    """Verdicts for many texts; the classifier scores them in one call, which is much faster than one by one."""
    verdicts = []
    for text, p in zip(texts, offensive_probability(texts)):
        word = find_offensive(text)
        verdicts.append(
            SafetyVerdict(
                duo_safety=NOT_OK if p >= threshold else SAFE,
                string_matcher=f"{NOT_OK}:{word}" if word else SAFE,
                sensitive_topic=find_topic(text),
            )
        )
    return verdicts
