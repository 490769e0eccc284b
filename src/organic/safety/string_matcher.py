"""Whole-word matching of a text against the shipped list of offensive words (``offensive_words.txt``).

This is the ``string_matcher`` half of a safety verdict: cheap, explainable (it names the word it
found) and blind to context. It undoes the obfuscations people use to slip past such lists:
repeated letters ("fuuuck"), l33t digits and symbols ("sh1t", "a$$"), masking stars ("f*ck") and
spaced-out letters ("f u c k"). It matches whole words only, so "Scunthorpe", "class" and
"assassin" are safe. It must not judge tone or context: that is the classifier's job (``classifier.py``).
"""

from __future__ import annotations

import fnmatch
import functools
import itertools
import re
from importlib import resources

_TOKEN = re.compile(r"[a-z0-9@$!*]+")
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"})


def find_offensive(text: str) -> str | None:
    """The first entry of the word list found in ``text`` (its plain spelling), or None."""
    words, phrases = _word_list()
    positions = _tokens(text)
    for spellings in positions:
        for token in spellings:
            for entry in words["*"] if "*" in token else words.get(_squeeze(token), []):
                if _same_word(token, entry):
                    return entry
    for phrase in phrases:
        for i in range(len(positions) - len(phrase) + 1):
            if all(any(_same_word(t, w) for t in positions[i + j]) for j, w in enumerate(phrase)):
                return " ".join(phrase)
    return None


def _tokens(text: str) -> list[list[str]]:
    """The words of ``text``, each as its possible plain spellings (lower case, l33t undone).

    Runs of 3+ single letters ("f u c k") are joined and added as one more word at the end.
    """
    positions = []
    for raw in _TOKEN.findall(text.lower()):
        raw = raw.strip("!*")  # "wow!!" and "*emphasis*" are punctuation, not obfuscation
        if not raw:
            continue
        if not any(c.isalpha() for c in raw):  # "2023" and "$100" stay numbers
            positions.append([raw])
        elif "1" in raw:  # a 1 stands for an l as often as for an i ("ki11")
            positions.append([raw.translate(_LEET), raw.replace("1", "l").translate(_LEET)])
        else:
            positions.append([raw.translate(_LEET)])
    letters = [p[0] for p in positions]
    runs = [list(g) for single, g in itertools.groupby(letters, key=lambda t: len(t) == 1) if single]
    return positions + [["".join(run)] for run in runs if len(run) >= 3]


def _same_word(token: str, entry: str) -> bool:
    """True if ``token`` spells ``entry``, allowing stretched letters ("fuuuck") and one-letter stars ("f*ck")."""
    if "*" in token:
        return len(token) == len(entry) and fnmatch.fnmatchcase(entry, token.replace("*", "?"))
    runs_t, runs_e = _runs(token), _runs(entry)
    return len(runs_t) == len(runs_e) and all(ct == ce and nt >= ne for (ct, nt), (ce, ne) in zip(runs_t, runs_e))


def _runs(word: str) -> list[tuple[str, int]]:
    return [(c, len(list(g))) for c, g in itertools.groupby(word)]


def _squeeze(word: str) -> str:
    """Collapse repeated letters: the index key under which a stretched spelling finds its entry."""
    return "".join(c for c, _ in itertools.groupby(word))


@functools.cache
def _word_list() -> tuple[dict[str, list[str]], list[list[str]]]:
    """Single words indexed by their squeezed spelling (plus all of them under "*"), and the multi-word phrases."""
    text = resources.files("organic.safety").joinpath("offensive_words.txt").read_text(encoding="utf-8")
    entries = [line.split("#")[0].strip().lower() for line in text.splitlines()]
    words: dict[str, list[str]] = {"*": []}
    phrases = []
    for entry in filter(None, entries):
        if " " in entry:
            phrases.append(entry.split())
        else:
            words.setdefault(_squeeze(entry), []).append(entry)
            words["*"].append(entry)
    return words, phrases
