"""The one taxonomy of good and bad replies, shared by the web UI, the annotation tool, the judges and the reports.

Two vocabularies come from the paper (Xu et al. 2023):
- ``DislikeReason``: what a user picks after a thumbs down (and agree / disagree on a canned safety reply);
- ``CrowdLabel``: the single-choice label a crowdworker (or an automatic judge) gives an utterance.
Each value's string is what the database, the exports and the API carry. ``parse`` accepts the
spellings found in the wild (title case, spaces, the BB3x release's short names) and nothing else.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping


class _Parsable(str, enum.Enum):
    """A string enum whose ``parse`` also accepts display labels and known aliases, case-insensitively."""

    @classmethod
    def _aliases(cls) -> dict[str, str]:
        return {}

    @classmethod
    def parse(cls, value: str) -> "_Parsable":
        key = str(value).strip().lower().replace("-", "_").replace(" ", "_").replace("/", "_")
        key = cls._aliases().get(key, key)
        for member in cls:
            if key in (member.value, member.name.lower()) or key == member.label.lower().replace(" ", "_"):
                return member
        choices = ", ".join(m.value for m in cls)
        raise ValueError(f"unknown {cls.__name__} {value!r}; expected one of: {choices}")

    @property
    def label(self) -> str:  # overridden below
        return self.value


class DislikeReason(_Parsable):
    """Reasons offered after a thumbs down (BB3 demo), plus the two for canned safety replies."""

    OFF_TOPIC = "off_topic"
    NONSENSICAL = "nonsensical"
    RUDE = "rude"
    SPAM = "spam"
    OTHER = "other"
    AGREE_SENSITIVE = "agree_sensitive"
    DISAGREE_SENSITIVE = "disagree_sensitive"

    @property
    def label(self) -> str:
        return _DISLIKE_LABELS[self]

    @property
    def for_safety_reply(self) -> bool:
        """True for the two reasons that rate a canned safety intervention rather than a model reply."""
        return self in (DislikeReason.AGREE_SENSITIVE, DislikeReason.DISAGREE_SENSITIVE)

    @classmethod
    def _aliases(cls) -> dict[str, str]:
        return {
            "ignoring_me": "off_topic", "off_topic___ignoring_me": "off_topic", "offtopic": "off_topic",
            "incorrect": "nonsensical", "nonsensical___incorrect": "nonsensical", "nonsense": "nonsensical",
            "inappropriate": "rude", "rude___inappropriate": "rude", "offensive": "rude",
            "looks_like_spam___ads": "spam", "ads": "spam", "looks_like_spam": "spam",
        }

    @classmethod
    def for_model_reply(cls) -> list["DislikeReason"]:
        return [r for r in cls if not r.for_safety_reply]


_DISLIKE_LABELS = {
    DislikeReason.OFF_TOPIC: "Off topic / ignoring me",
    DislikeReason.NONSENSICAL: "Nonsensical / incorrect",
    DislikeReason.RUDE: "Rude / inappropriate",
    DislikeReason.SPAM: "Looks like spam / ads",
    DislikeReason.OTHER: "Other",
    DislikeReason.AGREE_SENSITIVE: "I agree this was a sensitive topic",
    DislikeReason.DISAGREE_SENSITIVE: "This was not a sensitive topic",
}


class CrowdLabel(_Parsable):
    """The paper's crowd-annotation taxonomy: Good, or one kind of Bad (single choice per utterance)."""

    GOOD = "good"
    INAPPROPRIATE = "inappropriate"
    OFF_TOPIC = "off_topic"
    NONSENSICAL = "nonsensical"
    IGNORING = "ignoring_last_turn"
    REPEATING = "repeating"
    OTHER = "other"

    @property
    def label(self) -> str:
        return _CROWD_LABELS[self]

    @property
    def is_good(self) -> bool:
        return self is CrowdLabel.GOOD

    @classmethod
    def _aliases(cls) -> dict[str, str]:
        return {
            "ok": "good", "__ok__": "good", "not_bad": "good",
            "offensive": "inappropriate", "unsafe": "inappropriate", "rude": "inappropriate",
            "offtopic": "off_topic",
            "nonsense": "nonsensical", "incorrect": "nonsensical",
            "ignoring": "ignoring_last_turn", "ignore": "ignoring_last_turn", "ignoring_the_last_turn": "ignoring_last_turn",
            "ignoring_last": "ignoring_last_turn",
            "repetitive": "repeating", "repetition": "repeating", "repeat": "repeating",
        }


_CROWD_LABELS = {
    CrowdLabel.GOOD: "Good",
    CrowdLabel.INAPPROPRIATE: "Inappropriate",
    CrowdLabel.OFF_TOPIC: "Off topic",
    CrowdLabel.NONSENSICAL: "Nonsensical",
    CrowdLabel.IGNORING: "Ignoring the last turn",
    CrowdLabel.REPEATING: "Repeating",
    CrowdLabel.OTHER: "Other",
}


def crowd_majority(counts: Mapping[str, int]) -> CrowdLabel | None:
    """The label most annotators gave an utterance (``counts``: label -> how many gave it), or None when nobody gave
    one or the top is tied. Table 2 of the report (``analyze.figures``, in SQL) and the judges' agreement with the
    crowd decide it this way. A training label asks another question, good against every kind of bad together
    (``examples.label_of``)."""
    top = Counter({label: n for label, n in counts.items() if n > 0}).most_common(2)
    if not top or (len(top) == 2 and top[0][1] == top[1][1]):
        return None
    return CrowdLabel.parse(top[0][0])


class Sender(str, enum.Enum):
    HUMAN = "human"
    BOT = "bot"

    @classmethod
    def parse(cls, value: str) -> "Sender":
        key = str(value).strip().lower()
        if key in ("human", "user"):
            return cls.HUMAN
        if key in ("bot", "chatbot", "assistant", "blenderbot", "blenderbot3"):
            return cls.BOT
        raise ValueError(f"unknown sender {value!r}; expected 'human' or 'bot' ('Human' / 'Chatbot' are accepted too)")


class InteractionFailure(str, enum.Enum):
    """Why a canned reply replaced the model's (BB3x ``previous_interaction_failure``)."""

    UNSAFE_HUMAN = "unsafe_Human"
    UNSAFE_BOT = "unsafe_BlenderBot3"
    MODEL_CRASH = "unsafe_model_crash"


class Thumb(str, enum.Enum):
    """A user's rating of a bot reply, as stored and sent."""

    UP = "up"
    DOWN = "down"


GOOD, BAD, UNKNOWN = 1, 0, -1
"""An example's label (the CRINGE paper's c): a good reply, a bad one, or one nobody judged."""

SAFE = "__ok__"
"""The verdict string the BB3x release uses for 'safe'; anything else means unsafe."""
NOT_OK = "__notok__"
"""The verdict string this project writes for 'unsafe' (the release also has others)."""
