"""Sensitive-topic detection by phrase lists (``sensitive_topics.txt``).

BB3 answered messages on sensitive topics (politics, religion, medical advice, drugs, sex, self
harm) with a canned reply instead of an opinion; this module finds the topic so that the canned
reply can fit it. It matches whole words and phrases only and must not decide whether a text is
offensive (that is ``string_matcher`` and ``classifier``).
"""

from __future__ import annotations

import functools
import re
from importlib import resources

_WORD = re.compile(r"[a-z0-9]+")


def find_topic(text: str) -> str | None:
    """The first sensitive topic (in the file's priority order) with a phrase in ``text``, or None."""
    words = _WORD.findall(text.lower())
    for topic, phrases in _topics().items():
        if any(_contains(words, phrase) for phrase in phrases):
            return topic
    return None


def sensitive_topics() -> list[str]:
    """All topic names, highest priority first."""
    return list(_topics())


def _contains(words: list[str], phrase: list[str]) -> bool:
    n = len(phrase)
    return any(all(map(_word_matches, words[i : i + n], phrase)) for i in range(len(words) - n + 1))


def _word_matches(word: str, pattern: str) -> bool:
    return word.startswith(pattern[:-1]) if pattern.endswith("*") else word == pattern


@functools.cache
def _topics() -> dict[str, list[list[str]]]:
    text = resources.files("organic.safety").joinpath("sensitive_topics.txt").read_text(encoding="utf-8")
    table: dict[str, list[list[str]]] = {}
    topic = None
    for line in text.splitlines():
        line = line.split("#")[0].strip().lower()
        if line.startswith("[") and line.endswith("]"):
            topic = line[1:-1]
            table[topic] = []
        elif line:
            table[topic].append(line.split())  # entries are plain lower-case words, as find_topic splits a message
    return table
