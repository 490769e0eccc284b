"""What a judge can measure about a reply in its context: the signals the learned judge (``evaluate/judge.py``)
weighs. Each is a number per (context, reply); ``signals`` computes them all in batches.

Groups (the judge reports the weight of each):
- ``likelihood``: the reply's mean negative log-likelihood per token under the base model given the context and
  given no context (their difference says how much the context explains the reply), the end of turn's
  likelihood right after it (high when the model would not stop there: a reply cut off), the least likely token;
- ``length``: words, and whether the reply ends without closing punctuation (cut off at the token limit);
- ``topic``: MiniLM cosine similarity to the last user turn, to the conversation and to the closest earlier turn;
- ``repetition``: repeated trigrams inside the reply, overlap with earlier bot turns, words and trigrams copied
  from the user, a reply that restates the user's question;
- ``form``: questions, assistant boilerplate, apologies, chat-template artefacts, non-words, type/token ratio;
- ``safety``: the safety layer's verdicts (offensive, sensitive topic, classifier probability);
- ``rules``: the old rule judges' failures (``evaluate/judges.py``), one flag per category;
- ``embedding``: the reply's MiniLM embedding (384 numbers): what the words say, beyond the measures above
  (chosen by grouped cross-validation on train + dev: good/bad kappa 0.33 -> 0.43 without likelihood);
- ``state``: the base model's hidden state after layer ``STATE_LAYER``, averaged over the reply's tokens, read in
  the same pass as the likelihood given the context (576 numbers for SmolLM2-135M): how the model itself takes
  the reply in this context. On the labelled set (1,962 items) they lift the cross-validated good/bad kappa
  from 0.41 to 0.46; of the layers tried (6, 12, 18, 24, 30) the middle one did best. A reference model whose
  hidden size is not ``STATE_SIZE`` leaves these signals empty.

Pure text measures live here; nothing is stored, nothing decides a label.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from organic.evaluate.judges import (CONTEXT_WINDOW, ORDER, _ARTEFACT, _failures, _text_scores, _topic_scores, ngrams,
                                     words)
from organic.generate.base import unfinished

EMBEDDING_SIZE = 384  # MiniLM: the reply's own embedding, which lets the judge learn what the words say
STATE_LAYER, STATE_SIZE = 18, 576  # SmolLM2-135M-Instruct: 30 layers of width 576

GROUPS: dict[str, tuple[str, ...]] = {
    "likelihood": ("nll_context", "nll_alone", "nll_gain", "end_nll", "worst_nll"),
    "length": ("log_words", "unfinished"),
    "topic": ("sim_last", "sim_conversation", "sim_earlier", "sim_last_minus_earlier"),
    "repetition": ("rep3", "bot_overlap", "user_word_share", "user_trigram_share", "echo_question"),
    "form": ("questions", "boilerplate", "apology", "artefact", "non_word_share", "type_token_ratio", "sentences"),
    "safety": ("offensive", "sensitive_topic", "offensive_p"),
    "rules": tuple(f"rule_{c.value}" for c in ORDER),
    "embedding": tuple(f"emb_{i}" for i in range(EMBEDDING_SIZE)),
    "state": tuple(f"state_{i}" for i in range(STATE_SIZE)),
}
NAMES: tuple[str, ...] = tuple(name for group in GROUPS.values() for name in group)
LM_NAMES = frozenset(GROUPS["likelihood"] + GROUPS["state"])  # the signals that need the reference model

_BOILERPLATE = re.compile(r"\b(how (can|may) i (help|assist)|assist you|i'?m here to help|as an ai|language model|"
                          r"i'?m (just )?an? (ai|assistant|chatbot)|feel free to|let me know if|happy to help)\b", re.I)
_APOLOGY = re.compile(r"\b(sorry|apologi[sz]e)\b", re.I)
_SENTENCE = re.compile(r"[^.!?]+[.!?]+")


def _share_in(mine: list, theirs: set) -> float:
    return sum(x in theirs for x in mine) / len(mine) if mine else 0.0


def text_signals(context: Sequence[dict], reply: str, base: dict[str, float] | None = None) -> dict[str, float]:
    """The signals that need no model: length, repetition, copying and form. ``base``: the rule judges' text
    scores of this reply (``judges._text_scores``), when the caller has them already."""
    base = base or _text_scores(reply, context)
    mine = words(reply)
    user_turns = [m["content"] for m in context if m["role"] == "user"]
    user_words = {w for t in user_turns for w in words(t)}
    user_grams = {g for t in user_turns for g in ngrams(words(t), 3)}
    last = words(user_turns[-1]) if user_turns else []
    content = [w for w in mine if len(w) > 3]
    return {
        "log_words": math.log1p(len(mine)),
        "unfinished": float(unfinished(reply)),
        "rep3": base["repetition"],
        "bot_overlap": base["bot_overlap"],
        "user_word_share": _share_in(content, user_words),
        "user_trigram_share": _share_in(ngrams(mine, 3), user_grams),
        "echo_question": float(bool(last) and len(last) >= 3 and " ".join(last) in " ".join(mine)),
        "questions": float(reply.count("?")),
        "boilerplate": float(bool(_BOILERPLATE.search(reply))),
        "apology": float(bool(_APOLOGY.search(reply))),
        "artefact": float(bool(_ARTEFACT.search(reply))),
        "non_word_share": base["non_word_share"],
        "type_token_ratio": base["type_token_ratio"],
        "sentences": float(len(_SENTENCE.findall(reply)) or bool(reply.strip())),
    }


def signals(contexts: Sequence[Sequence[dict]], replies: Sequence[str], *, reference_model: Path | None = None,
            lm=None, batch_size: int = 8) -> np.ndarray:
    """One row of ``NAMES`` per reply. Likelihood signals come from ``reference_model`` (a causal LM folder, or the
    loaded ``(model, tokenizer)`` pair ``lm``); without either they are NaN, and a judge fitted without them
    ignores them."""
    from organic.embeddings import embed
    from organic.evaluate.judges import Thresholds
    from organic.safety import check_many
    from organic.safety.classifier import offensive_probability

    if len(contexts) != len(replies):
        raise ValueError(f"got {len(contexts)} contexts for {len(replies)} replies; give one context per reply")
    contexts = [list(c) for c in contexts]
    verdicts = check_many(list(replies))
    offensive_p = offensive_probability(list(replies))
    windows = [[m for m in c if m["role"] in ("user", "assistant")][-CONTEXT_WINDOW:] for c in contexts]
    texts = list(dict.fromkeys([*replies, *(m["content"] for w in windows for m in w)]))
    vectors = embed(texts)
    row = {text: i for i, text in enumerate(texts)}
    likely = _likelihood(contexts, replies, reference_model, lm, batch_size) if (reference_model or lm) else None
    rules = Thresholds()
    out = np.full((len(replies), len(NAMES)), np.nan)
    for i, (context, window, reply, verdict) in enumerate(zip(contexts, windows, replies, verdicts)):
        topic = _topic_scores(reply, window, vectors, row)
        base = _text_scores(reply, context)
        values = text_signals(context, reply, base) | {
            "sim_last": topic["sim_last"], "sim_conversation": topic["sim_conversation"],
            "sim_earlier": topic["sim_earlier"] if topic["sim_earlier"] is not None else topic["sim_last"],
            "offensive": float(not verdict.ok), "sensitive_topic": float(verdict.sensitive_topic is not None),
            "offensive_p": float(offensive_p[i]),
        }
        values["sim_last_minus_earlier"] = (values["sim_last"] - values["sim_earlier"]) if values["sim_last"] is not None else None
        failed = _failures(reply, context, base | topic | {"reply_nll": None}, verdict, rules)
        values |= {f"rule_{c.value}": float(c in failed) for c in ORDER}
        values |= dict(zip(GROUPS["embedding"], vectors[row[reply]].tolist()))
        if likely is not None:
            values |= likely[i]
        out[i] = [np.nan if values.get(name) is None else values[name] for name in NAMES]
    return out


def _likelihood(contexts, replies, folder, lm, batch_size) -> list[dict[str, float]]:
    from organic.generate.batch import reply_likelihoods
    from organic.generate.loading import load_causal_lm

    lm = lm or load_causal_lm(folder)
    layer = STATE_LAYER if lm[0].config.hidden_size == STATE_SIZE else None  # another model's states mean nothing here
    given = reply_likelihoods(None, contexts, replies, model=lm, batch_size=batch_size, max_length=256, state_layer=layer)
    alone = reply_likelihoods(None, [[] for _ in replies], replies, model=lm, batch_size=batch_size, max_length=256)
    out = []
    for g, a in zip(given, alone):
        mean_g, mean_a = g.nll / max(g.tokens, 1), a.nll / max(a.tokens, 1)
        out.append({"nll_context": mean_g, "nll_alone": mean_a, "nll_gain": mean_a - mean_g, "end_nll": g.end_nll,
                    "worst_nll": g.worst} | (dict(zip(GROUPS["state"], g.state)) if g.state else {}))
    return out
