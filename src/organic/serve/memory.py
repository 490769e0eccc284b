"""Long-term memory in the manner of BB3, kept in the BB3x trace fields of every bot message.

BB3 wrote short first-person facts about both speakers ("I like hiking.") into a memory, decided at each
turn whether to use it, and conditioned its reply on the recalled line. Here:
- *writing*: first-person statements about oneself ("I have two dogs.", "My sister is a nurse.") are taken
  from the user's message (unless the safety layer flagged it) into "partner's persona", and from the
  bot's own reply into "your persona", so that the bot stays consistent about itself;
- *deciding and recalling*: the memory line most similar to the user's message (MiniLM embeddings) is
  recalled when its cosine similarity reaches ``RECALL_SIMILARITY``; the model then sees it as a note
  before the user's message, in the user's turn (a system message would replace a chat template's default
  system prompt on some turns only, and some templates have no system role); nothing is recalled for a
  message the safety layer blocked, since no model answers it;
- *recording*: each model reply (canned ones included, not the feedback exchange's fixed turns) carries
  ``memories`` (the whole memory after the turn), ``memory_decision``
  (``access_memory`` or ``do_not_access_memory``) and ``memory_knowledge`` (the recalled line), the keys
  of the BB3x release, so exports and "Why this reply?" show them. The next turn reads the memory back
  from the last bot message: no table of its own, and a deleted conversation takes its memory with it.

Writing is a pattern over the sentence's opening words, not a trained generator: it misses facts phrased
otherwise ("Two dogs live with me.") and is English only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

PARTNER, SELF = "partner's persona", "your persona"
RECALL_SIMILARITY = 0.30  # cosine similarity of MiniLM embeddings, chosen on the cases in tests/serve/test_memory.py:
# related questions scored 0.33-0.63 and unrelated ones at most 0.25 (a vague "Do you remember my family?" for a
# line about a sister scored 0.12 and is missed)
MAX_LINES = 20  # per persona, most recent kept
SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
OPENER = r"^(?:(?:well|so|oh|yes|yeah|no|actually|also|and|but|haha|lol),?\s+)*"  # words a statement may start with
SELF_DISCLOSURE = re.compile(
    OPENER +
    r"(?:i\s+(?:am|have|had|was|like|love|enjoy|hate|live|lived|work|worked|study|own|play|grew\s+up|come\s+from|prefer"
    r"|just|recently|used\s+to|really|also)\b|i'm\b|i've\b|my\s+[a-z]+(?:\s+[a-z]+)?\s+(?:is|are|was|were)\b)",
    re.IGNORECASE,
)
SMALL_TALK = re.compile(  # pleasantries and hedges, from people and (more often) from the bot
    OPENER +
    r"(?:i(?:'?m|\s+am)\s+(?:not\s+sure|fine|good|ok|okay|sorry|great|doing\s+\w+|here|back|so|glad|happy|sure|afraid"
    r"|just\s+an?\s+ai)|i(?:'?ve|\s+have)\s+(?:heard|noticed|been\s+thinking|no\s+idea)"
    r"|i\s+(?:just|really|also)\s+(?:wanted|want|hope|think|wish|wonder))\b",
    re.IGNORECASE,
)


def persona_lines(text: str) -> list[str]:
    """The first-person statements about oneself in ``text``, one sentence each, ending with a full stop."""
    lines = []
    for sentence in SENTENCE.findall(text.replace("\u2019", "'")):
        sentence = sentence.strip()
        words = sentence.rstrip(".!").split()
        if sentence.endswith("?") or not 4 <= len(words) <= 30:
            continue
        if SELF_DISCLOSURE.match(sentence) and not SMALL_TALK.match(sentence):
            lines.append(" ".join(words) + ".")
    return lines


@dataclass
class Recall:
    memories: dict[str, list[str]] = field(default_factory=dict)
    knowledge: str | None = None  # the recalled line, as the model sees it
    similarity: float | None = None

    @property
    def decision(self) -> str:
        return "access_memory" if self.knowledge else "do_not_access_memory"

    def prompt(self, message: str) -> str:
        """The user's turn as the model sees it: the recalled line, if any, as a note before the message."""
        return f"(Something from earlier in this chat. {self.knowledge})\n\n{message}" if self.knowledge else message

    def traces(self) -> dict:
        return {"memories": self.memories, "memory_decision": self.decision, "memory_knowledge": self.knowledge}

    def remember_reply(self, reply: str) -> None:
        """Add the bot's own statements about itself, once its reply is final."""
        self.memories = _added(self.memories, SELF, persona_lines(reply))


def recall(memories: dict[str, list[str]] | None, message: str, *, safe: bool) -> Recall:
    """The memory after the user's ``message`` (its statements added when ``safe``) and the line it recalls."""
    said = persona_lines(message)
    memories = _added(memories or {}, PARTNER, said if safe else [])
    candidates = [(owner, line) for owner in (PARTNER, SELF) for line in memories.get(owner, []) if line not in said]
    if not candidates:
        return Recall(memories)
    from organic.embeddings import embed

    known = {line: _VECTORS.get(line) for _, line in candidates}
    missing = [line for line, vector in known.items() if vector is None]
    vectors = embed([message, *missing])
    known.update(zip(missing, vectors[1:]))
    if len(_VECTORS) > MAX_VECTORS:
        _VECTORS.clear()
    _VECTORS.update(zip(missing, vectors[1:]))
    similarities = np.stack([known[line] for _, line in candidates]) @ vectors[0]
    best = int(similarities.argmax())
    if similarities[best] < RECALL_SIMILARITY:
        return Recall(memories, similarity=float(similarities[best]))
    owner, line = candidates[best]
    speaker = "The user told you" if owner == PARTNER else "You told the user"
    return Recall(memories, f'{speaker}: "{line}"', float(similarities[best]))


_VECTORS: dict[str, np.ndarray] = {}  # embeddings of memory lines: a turn embeds only its message and new lines
MAX_VECTORS = 10_000  # then the cache starts over (live conversations' lines come back on their next turn)


def _added(memories: dict[str, list[str]], owner: str, lines: list[str]) -> dict[str, list[str]]:
    kept = [line for line in memories.get(owner, []) if line not in lines] + lines
    return {**memories, owner: kept[-MAX_LINES:]} if kept else dict(memories)
