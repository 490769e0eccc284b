"""Automatic judges: the paper's crowd taxonomy (``taxonomy.CrowdLabel``) decided by code, for any reply in its
context (a list of ``{"role", "content"}`` messages before the reply).

One judge per bad category, each a plain rule on a few measured scores, run in this order; a reply's label is the
first category whose judge fails it, else Good:

1. **Inappropriate**: the safety layer finds offensive language in the reply (classifier or word list). A
   sensitive topic alone does not fail it: a kind answer to "I feel awful" is a good reply, though it touches a
   topic the server would have answered with a canned reply (set ``topics_are_inappropriate`` to count them).
2. **Nonsensical**: degenerate text: nothing but punctuation or symbols; mostly tokens that are no words
   (not in the MiniLM word-piece vocabulary as whole words); a loop on a word or two (type/token ratio under 0.2
   over 10 words or more); and, when a reference causal LM folder is given, a mean negative log-likelihood per
   reply token (given the context) above ``max_reply_nll``: under SmolLM2-135M-Instruct the hand-written good
   replies score 0.3 to 4.1 nats per token, keyboard mash and word salad 6.0 to 10.8 (another reference model
   needs its own threshold). It comes second because degenerate text would also fail the topic judges, and
   "nonsensical" is what a person would call it.
3. **Repeating**: the reply repeats itself (rep-3 of Welleck et al. 2019: the share of its word trigrams that
   occurred earlier in it) or repeats an earlier bot turn (most of its trigrams, or its whole text when short,
   found in one earlier bot message).
4. **Off topic**: the reply is unrelated both to the last user turn and to the conversation as a whole
   (MiniLM cosine similarity to the last user turn and to the mean of the context messages both low).
5. **Ignoring the last turn**: the reply is unrelated to the last user turn but related to an earlier message:
   the bot carries on with what was said before instead of answering.
6. **Other**: chat-template artefacts (the model writing "User:" or special tokens, speaking for both sides)
   or an echo of the user's last message word for word.

The thresholds (``Thresholds``) were chosen on the hand-written cases of ``tests/evaluate/test_judges.py``.
The embedding ones sit where those cases separate: unrelated replies score -0.03 to 0.06 against the last turn,
fitting answers 0.3 to 0.85, and replies that carry on an earlier turn 0.4 to 0.8 against that turn. Known
limits: an embedding judge cannot tell a fitting answer that shares no concept with the request (a joke for
"tell me a joke" scores 0.08) from an unrelated one, so replies under four words are not judged for topic at
all; and word salad of real words passes the text checks: only the reference LM catches it. Agreement with
labels made by reading (``evaluate/judge.py``: ``assess``, ``crowd_agreement``) is the check that counts; these rules
are now signals of the learned judge, not its verdict.

Nothing here writes to the store; the store is only read, for crowd agreement.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from organic.embeddings import embed, model_path
from organic.examples import contexts as replies_in_context
from organic.examples import last_user_turn
from organic.generate.batch import reply_nll
from organic.taxonomy import CrowdLabel, crowd_majority

ORDER = (CrowdLabel.INAPPROPRIATE, CrowdLabel.NONSENSICAL, CrowdLabel.REPEATING, CrowdLabel.OFF_TOPIC,
         CrowdLabel.IGNORING, CrowdLabel.OTHER)
"""The order in which judges decide a reply's single label: the first that fails it wins."""

CONTEXT_WINDOW = 8  # the most recent context messages the topic judges look at
_WORD = re.compile(r"[a-z0-9]+")  # words as the text judges count them (apostrophes split: "it's" -> it, s)
_ARTEFACT = re.compile(r"<\|[^|>]*\|>|</?s>|\[/?INST\]|(^|\n)\s*(user|human|assistant|system)\s*:", re.IGNORECASE)


@dataclass(frozen=True)
class Thresholds:
    """Where each judge fails a reply; chosen on the hand-written cases in tests/evaluate/test_judges.py."""

    topics_are_inappropriate: bool = False  # also fail replies on a sensitive topic (the server's canned-reply rule)
    min_type_token_ratio: float = 0.2  # below this over `ttr_min_words` words or more: a loop on a word or two
    ttr_min_words: int = 10  # shorter replies are too short for a type/token ratio to mean anything
    max_non_word_share: float = 0.6  # at or above this share of non-words (keyboard mash): nonsensical
    max_reply_nll: float = 5.5  # mean nats per reply token under the reference LM (SmolLM2-135M), above it: nonsensical
    nll_min_words: int = 4  # shorter replies ("Hi!" scores 5.2) are left to the other checks
    max_repetition: float = 0.3  # rep-3 at or above: repeats itself ("I like dogs." three times is 0.57)
    max_bot_overlap: float = 0.6  # share of the reply's trigrams in one earlier bot turn, at or above: repeating
    off_topic_last: float = 0.10  # cosine to the last user turn below this ...
    off_topic_conversation: float = 0.25  # ... and to the conversation's mean below this: off topic
    ignoring_last: float = 0.25  # cosine to the last user turn below this ...
    ignoring_earlier: float = 0.35  # ... while some earlier message is at or above this: ignoring the last turn
    topic_min_words: int = 4  # shorter replies ("Cool.", "I don't know.") carry too little to judge for topic


@dataclass
class JudgeResult:
    """One reply's label, every judge that failed it (in ``ORDER``), and the scores behind them."""

    label: CrowdLabel
    failed: tuple[CrowdLabel, ...]
    scores: dict[str, float | None] = field(default_factory=dict)  # None where a score does not apply
    safety: dict | None = None  # the safety layer's verdict (``SafetyVerdict.to_json()``)

    def to_json(self) -> dict:
        return {"label": self.label.value, "failed": [f.value for f in self.failed],
                "scores": {k: (None if v is None else round(float(v), 4)) for k, v in self.scores.items()},
                "safety": self.safety}


# text measures (pure) ----------------------------------------------------------------------------------------
def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def repetition(text: str, n: int = 3) -> float:
    """rep-n (Welleck et al. 2019): 1 - distinct n-grams / n-grams; 0 for text with no n-gram."""
    grams = ngrams(words(text), n)
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def bot_overlap(reply: str, context: Sequence[dict], n: int = 3) -> float:
    """The largest share of the reply's word n-grams found in one earlier bot turn; a reply shorter than ``n``
    words counts as repeated (1.0) only if a bot turn had exactly its words."""
    mine = words(reply)
    earlier = [words(m["content"]) for m in context if m["role"] == "assistant"]
    if not mine or not earlier:
        return 0.0
    if len(mine) < n:
        return float(any(mine == other for other in earlier))
    grams = ngrams(mine, n)
    return max(sum(g in theirs for g in grams) / len(grams) for theirs in (set(ngrams(other, n)) for other in earlier))


def type_token_ratio(text: str) -> float:
    tokens = words(text)
    return len(set(tokens)) / len(tokens) if tokens else 0.0


@functools.cache
def _vocabulary() -> frozenset[str]:
    """Whole words of the bundled MiniLM's word-piece vocabulary (about 30k common English words)."""
    lines = (model_path() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    return frozenset(w for w in lines if w.isalpha())


def non_word_share(text: str) -> float:
    """Share of the reply's tokens (numbers aside) that are not common words; 0 for no such token."""
    tokens = [t for t in words(text) if not t.isdigit()]
    vocabulary = _vocabulary()
    return sum(t not in vocabulary for t in tokens) / len(tokens) if tokens else 0.0


# the judges --------------------------------------------------------------------------------------------------
def judge(context: Sequence[dict], reply: str, thresholds: Thresholds | None = None) -> CrowdLabel:
    """The label of one reply in its context: the first failing category in ``ORDER``, else Good."""
    return judge_many([context], [reply], thresholds=thresholds)[0].label


def judge_many(contexts: Sequence[Sequence[dict]], replies: Sequence[str], *, thresholds: Thresholds | None = None,
               reference_model: Path | None = None, batch_size: int = 64) -> list[JudgeResult]:
    """Judge many replies at once: one safety call, one embedding pass over every distinct text, and (with
    ``reference_model``, a causal LM folder) one likelihood pass."""
    from organic.safety import check_many

    if len(contexts) != len(replies):
        raise ValueError(f"got {len(contexts)} contexts for {len(replies)} replies; give one context per reply")
    t = thresholds or Thresholds()
    verdicts = check_many(list(replies))
    windows = [[m for m in c if m["role"] in ("user", "assistant")][-CONTEXT_WINDOW:] for c in contexts]
    texts = list(dict.fromkeys([*replies, *(m["content"] for w in windows for m in w)]))
    vectors = embed(texts, batch_size=batch_size)
    row = {text: i for i, text in enumerate(texts)}
    nll = reply_nll(reference_model, contexts, replies) if reference_model else [None] * len(replies)
    results = []
    for context, window, reply, verdict, likelihood in zip(contexts, windows, replies, verdicts, nll):
        scores = _text_scores(reply, context) | _topic_scores(reply, window, vectors, row)
        scores["reply_nll"] = likelihood[0] / likelihood[1] if likelihood and likelihood[1] else None
        failed = _failures(reply, context, scores, verdict, t)
        results.append(JudgeResult(failed[0] if failed else CrowdLabel.GOOD, failed, scores, verdict.to_json()))
    return results


def _text_scores(reply: str, context: Sequence[dict]) -> dict[str, float]:
    return {"words": float(len(words(reply))), "non_word_share": non_word_share(reply),
            "type_token_ratio": type_token_ratio(reply), "repetition": repetition(reply),
            "bot_overlap": bot_overlap(reply, context)}


def _topic_scores(reply: str, window: list[dict], vectors: np.ndarray, row: dict[str, int]) -> dict[str, float | None]:
    """Cosine of the reply to the last user turn, to the conversation (the normalised mean of the window's
    messages) and to the closest earlier message (any message of the window but the last user turn)."""
    last = max((i for i, m in enumerate(window) if m["role"] == "user"), default=None)
    if last is None:
        return {"sim_last": None, "sim_conversation": None, "sim_earlier": None}
    mine = vectors[row[reply]]
    centre = vectors[[row[m["content"]] for m in window]].mean(axis=0)
    centre /= np.linalg.norm(centre) or 1.0
    earlier = [float(vectors[row[m["content"]]] @ mine) for i, m in enumerate(window) if i != last]
    return {"sim_last": float(vectors[row[window[last]["content"]]] @ mine), "sim_conversation": float(centre @ mine),
            "sim_earlier": max(earlier) if earlier else None}


def _failures(reply: str, context: Sequence[dict], s: dict, verdict, t: Thresholds) -> tuple[CrowdLabel, ...]:
    failed = []
    if not verdict.ok or (t.topics_are_inappropriate and verdict.sensitive_topic):
        failed.append(CrowdLabel.INAPPROPRIATE)
    if (not s["words"] or s["non_word_share"] >= t.max_non_word_share
            or (s["words"] >= t.ttr_min_words and s["type_token_ratio"] < t.min_type_token_ratio)
            or (s["reply_nll"] is not None and s["words"] >= t.nll_min_words and s["reply_nll"] > t.max_reply_nll)):
        failed.append(CrowdLabel.NONSENSICAL)
    if s["repetition"] >= t.max_repetition or s["bot_overlap"] >= t.max_bot_overlap:
        failed.append(CrowdLabel.REPEATING)
    if s["sim_last"] is not None and s["words"] >= t.topic_min_words:
        if s["sim_last"] < t.off_topic_last and s["sim_conversation"] < t.off_topic_conversation:
            failed.append(CrowdLabel.OFF_TOPIC)
        elif s["sim_last"] < t.ignoring_last and s["sim_earlier"] is not None and s["sim_earlier"] >= t.ignoring_earlier:
            failed.append(CrowdLabel.IGNORING)
    last = last_user_turn(context)
    if _ARTEFACT.search(reply) or (last is not None and words(reply) and words(reply) == words(last)):
        failed.append(CrowdLabel.OTHER)
    return tuple(failed)


# agreement with crowd annotations ----------------------------------------------------------------------------
def crowd_items(convos: Iterable) -> tuple[list[list[dict]], list[str], list[CrowdLabel]]:
    """Contexts, replies and crowd majority labels of every model-written bot reply with a clear majority."""
    contexts, replies, labels = [], [], []
    for convo in convos:
        for _, message, context in replies_in_context(convo):
            majority = crowd_majority(message.labels) if message.labels else None
            if majority is not None:
                contexts.append(context)
                replies.append(message.text)
                labels.append(majority)
    return contexts, replies, labels
