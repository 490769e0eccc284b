"""Helpers vs trolls: how far to trust each user's labels, in the way of Ju et al. 2022 ("Learning from data in
the mixed adversarial non-adversarial case: finding the helpers and ignoring the trolls").

Their finding: judge a *user* by all of their labels together, not each label on its own. Here:

1. Users are split into k folds. For each fold, a classifier (logistic regression over sentence embeddings of
   what was labelled) is trained on the other folds' labels and predicts this fold's: p_i is the probability
   it gives to the label the user actually gave. No user's labels ever judge themselves.
2. A user's trust is the mean of p_i over their labels, shrunk towards the overall mean by ``prior`` pseudo
   labels so that one unlucky label does not condemn a newcomer:
       trust_u = (sum_{i in u} p_i + prior * mean_i p_i) / (n_u + prior)
   A helper's labels mostly agree with what everybody else taught the model (trust near the model's accuracy);
   a troll who flips labels sits near 1 - accuracy; one who labels at random near 0.5. A user with fewer than
   ``min_labels`` labels (default 3) gets no trust at all: their score would be mostly the prior. They are
   reported as "too few labels" (``UserScore.too_few_labels``, counted by ``TrustResult.too_few_labels``), are
   never flagged for their labels, and their labels still teach the models that judge the others.
3. Again (``rounds``, default 3: Ju et al.'s multi-stage cleaning): the users under the threshold are left out
   of the training folds and everyone is scored afresh by a model less and less taught by trolls (on SafetyMix
   at 30% gaslighters, user-level ROC AUC goes 0.88, 0.94, 0.98 over rounds 1-3; see bench/trolls.py). When more than
   ``max_drop`` of the users fall under it, the model was itself taught by trolls and the threshold means
   little: the ``max_drop`` least trusted are left out instead.

Beside the labels, a user's own messages count: the share that failed the safety check (``organic.safety``).
``is_troll`` is trust under ``threshold`` (users with at least ``min_labels`` labels, when the held-out model
is informative) or, for users with at least ``min_messages`` messages, an unsafe share over
``unsafe_threshold`` (``TrustConfig``). ``why`` says which, in words.

What a label is about depends on the data: for the store, a user's thumbs on bot replies (the text is the
user's last message and the reply; up = 1, down = 0); for SafetyMix, a safety label on an utterance.
This module reads the store but never writes it; the training-data builder decides what to leave out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Featurizer = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class Judgement:
    """One label a user gave: 1 good (thumbs up, safe), 0 bad (thumbs down, unsafe)."""

    user: str
    text: str  # what was labelled: a bot reply after the user's message, or an utterance
    label: int


@dataclass
class UserScore:
    user: str
    trust: float | None  # None for a user with fewer than ``min_labels`` labels (none included)
    labels: int
    agreement: float | None  # share of their labels the held-out model would also give
    messages: int  # their own messages with a safety verdict
    unsafe_messages: int
    is_troll: bool
    why: str
    too_few_labels: bool = False  # rated, but fewer than ``min_labels`` times: no trust score

    @property
    def unsafe_rate(self) -> float | None:
        return self.unsafe_messages / self.messages if self.messages else None

    def to_json(self) -> dict:
        return {"user": self.user, "trust": None if self.trust is None else round(self.trust, 4), "labels": self.labels,
                "agreement": None if self.agreement is None else round(self.agreement, 4), "messages": self.messages,
                "unsafe_messages": self.unsafe_messages, "is_troll": self.is_troll, "too_few_labels": self.too_few_labels,
                "why": self.why}


@dataclass
class TrustResult:
    users: list[UserScore]  # lowest trust first
    example_scores: np.ndarray  # p_i for each judgement, in input order: the example-level score
    model_agreement: float | None = None  # mean p_i over the labels of the users the last round trusted

    @property
    def too_few_labels(self) -> int:
        """How many users rated too few times to get a trust score: a report should say so beside the flags."""
        return sum(r.too_few_labels for r in self.users)


# features -----------------------------------------------------------------------------------------------
def minilm(texts: list[str]) -> np.ndarray:
    """Unit-length all-MiniLM-L6-v2 sentence embeddings (384 dimensions) from ``organic.embeddings``; offline."""
    from organic.embeddings import embed

    return embed(list(texts))


def tfidf(texts: list[str]):
    """Word and word-pair TF-IDF features: much faster than embeddings, for tests and quick looks."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1).fit_transform(list(texts))


FEATURIZERS: dict[str, Featurizer] = {"minilm": minilm, "tfidf": tfidf}


# the score ----------------------------------------------------------------------------------------------
def held_out_likelihood(features, labels: Sequence[int], users: Sequence[str], *, folds: int = 5, seed: int = 0,
                        train_mask: np.ndarray | None = None, C: float = 1.0) -> np.ndarray:
    """p_i: the probability that a model trained on the other folds' users gives example i the label it has.

    Folds are of users, never of examples. ``train_mask`` leaves examples out of training (not of scoring).
    A fold whose training labels are all one class gets that class's share as its prediction.
    """
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(labels, dtype=int)
    names = sorted(set(users))
    order = np.random.default_rng(seed).permutation(len(names))
    fold_of_user = {names[j]: i % folds for i, j in enumerate(order)}
    fold = np.array([fold_of_user[u] for u in users])
    keep = np.ones(len(labels), bool) if train_mask is None else np.asarray(train_mask, bool)
    p_good = np.empty(len(labels))
    for f in range(min(folds, len(names))):
        test, train = fold == f, (fold != f) & keep
        if not test.any():
            continue
        if train.sum() == 0 or len(set(labels[train])) < 2:
            p_good[test] = labels[train].mean() if train.any() else 0.5
            continue
        model = LogisticRegression(C=C, class_weight="balanced", max_iter=2000)
        model.fit(features[train], labels[train])
        p_good[test] = model.predict_proba(features[test])[:, list(model.classes_).index(1)]
    return np.where(labels == 1, p_good, 1 - p_good)


def user_trust(users: Sequence[str], likelihood: np.ndarray, prior: float = 2.0) -> dict[str, tuple[float, int, float]]:
    """{user: (trust, number of labels, agreement)} from the per-example likelihoods (see the module docstring)."""
    overall = float(np.mean(likelihood)) if len(likelihood) else 0.5
    sums: dict[str, list] = defaultdict(lambda: [0.0, 0, 0])
    for user, p in zip(users, likelihood):
        entry = sums[user]
        entry[0] += p
        entry[1] += 1
        entry[2] += p > 0.5
    return {u: ((s + prior * overall) / (n + prior), n, agree / n) for u, (s, n, agree) in sums.items()}


@dataclass
class TrustConfig:
    """How users are scored and flagged; the defaults are the ones bench/trolls.py measures."""

    folds: int = 5  # folds of users: each fold is judged by a model trained on the others
    rounds: int = 3  # rounds of cleaning: users under the threshold leave the next round's training folds
    threshold: float = 0.6  # flag a user whose trust is under this ...
    min_labels: int = 3  # a trust score needs at least this many labels (one or two say too little)
    unsafe_threshold: float | None = 0.5  # flag a user with more than this share of unsafe messages ...
    min_messages: int = 5  # ... among at least this many of their messages
    prior: float = 2.0  # pseudo labels at the overall mean that each user's trust is shrunk with
    max_drop: float = 0.5  # never leave more than this share of users out of a training round
    seed: int = 0  # which users share a fold


def trust(judgements: Sequence[Judgement], config: TrustConfig | None = None, *,
          messages: dict[str, tuple[int, int]] | None = None, features=None,
          featurize: Featurizer | str = "minilm") -> TrustResult:
    """Trust scores of every user with a label, and of every user in ``messages`` (their own messages as
    ``{user: (messages with a verdict, unsafe ones)}``). ``features`` (one row per judgement) skips featurizing.

    Labels judge users only when the held-out model is worth listening to: its agreement with the labels of
    the users it trusts must reach the threshold; otherwise (too few labels, or nothing learnable) no one is
    flagged for their labels and ``why`` says so.
    """
    config = config or TrustConfig()
    users = [j.user for j in judgements]
    labels = np.array([j.label for j in judgements], dtype=int)
    if set(labels.tolist()) - {0, 1}:
        raise ValueError("labels must be 1 (good / safe) or 0 (bad / unsafe)")
    likelihood = np.empty(0)
    scores: dict[str, tuple[float, int, float]] = {}
    model_agreement = None
    if judgements:
        if features is None:
            featurize = FEATURIZERS[featurize] if isinstance(featurize, str) else featurize
            features = featurize([j.text for j in judgements])
        keep = np.ones(len(labels), bool)
        for _ in range(max(1, config.rounds)):
            likelihood = held_out_likelihood(features, labels, users, folds=config.folds, seed=config.seed, train_mask=keep)
            scores = user_trust(users, likelihood, config.prior)
            judged = {u: s for u, s in scores.items() if s[1] >= config.min_labels}
            kept = _trusted(judged, config.threshold, config.max_drop) | (scores.keys() - judged.keys())
            keep = np.array([u in kept for u in users])
        model_agreement = float(likelihood[keep].mean())
    messages = messages or {}
    rows = [_row(user, scores.get(user), messages.get(user, (0, 0)), config, model_agreement)
            for user in sorted(set(scores) | set(messages))]
    rows.sort(key=lambda r: (r.trust if r.trust is not None else 2.0, -(r.unsafe_rate or 0)))
    return TrustResult(rows, likelihood, model_agreement)


def _trusted(scores: dict[str, tuple[float, int, float]], threshold: float, max_drop: float) -> set[str]:
    """Of the users with a trust score, those whose labels train the next round: those at or over the threshold,
    but never fewer than the ``1 - max_drop`` most trusted (when most users look bad, the model itself was taught
    by trolls)."""
    ranked = sorted(scores, key=lambda u: -scores[u][0])
    at_least = max(1, round(len(ranked) * (1 - max_drop)))
    return {u for i, u in enumerate(ranked) if i < at_least or scores[u][0] >= threshold}


def _row(user: str, score, own: tuple[int, int], config: TrustConfig, model_agreement: float | None) -> UserScore:
    total, unsafe = own
    reasons, flags = [], []
    trust_value = agreement = None
    n = 0
    too_few = False
    if score is not None:
        n = score[1]
        too_few = n < config.min_labels
        if too_few:
            reasons.append(f"too few labels for a trust score: {n} rated turn{'s' * (n != 1)}, "
                           f"fewer than {config.min_labels}")
        else:
            trust_value, _, agreement = score
            low = trust_value < config.threshold
            text = (f"a model trained on other users agrees with {agreement:.0%} of their {n} label{'s' * (n != 1)} "
                    f"(trust {trust_value:.2f}, {'under' if low else 'at or over'} {config.threshold:g}")
            if low and model_agreement is not None and model_agreement < config.threshold:
                low, text = False, text + (f"; not judged: the model agrees with only {model_agreement:.0%} of the "
                                           "trusted users' labels, too little to learn from")
            reasons.append(text + ")")
            flags.append(low)
    if total:
        share = unsafe / total
        high = config.unsafe_threshold is not None and total >= config.min_messages and share > config.unsafe_threshold
        reasons.append(f"{unsafe} of their {total} message{'s' * (total != 1)} failed the safety check ({share:.0%})"
                       + (f", over {config.unsafe_threshold:.0%}" if high else ""))
        flags.append(high)
    is_troll = any(flags)
    why = ("troll: " if is_troll else "helper: ") + "; ".join(reasons) if reasons else "no labels and no messages"
    return UserScore(user, trust_value, n, agreement, total, unsafe, is_troll, why, too_few)


def score_users(judgements: Sequence[Judgement], config: TrustConfig | None = None, **options) -> list[UserScore]:
    """The users, lowest trust first (see ``trust``)."""
    return trust(judgements, config, **options).users


def troll_ids(rows: Sequence[UserScore]) -> set[str]:
    """The users flagged as trolls: what the training-data builder leaves out."""
    return {r.user for r in rows if r.is_troll}


# the store ----------------------------------------------------------------------------------------------
def from_store(engine, filters=None, *, batch: int = 5000) -> tuple[list[Judgement], dict[str, tuple[int, int]]]:
    """The users' thumbs on bot replies (canned replies left out) and the safety of their own messages.

    A human message's stored safety verdict counts where there is one; the others are checked now.
    """
    from organic.examples import contexts, last_user_turn
    from organic.safety import check_many
    from organic.store.read import iter_conversations
    from organic.taxonomy import SAFE, Sender, Thumb

    judgements: list[Judgement] = []
    own: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    unchecked: list[tuple[str, str]] = []

    def check_pending() -> None:
        for (user, _), verdict in zip(unchecked, check_many([t for _, t in unchecked])):
            own[user][0] += 1
            own[user][1] += not verdict.ok
        unchecked.clear()

    for convo in iter_conversations(engine, filters):
        for m in convo.messages:
            if m.sender == Sender.HUMAN.value:
                stored = [v for k, v in (m.safety or {}).items() if k in ("duo_safety", "string_matcher") and v]
                if stored:
                    own[convo.user_pseudo_id][0] += 1
                    own[convo.user_pseudo_id][1] += any(v != SAFE for v in stored)
                else:
                    unchecked.append((convo.user_pseudo_id, m.text))
                    if len(unchecked) >= batch:
                        check_pending()
        for _, m, context in contexts(convo):
            if m.thumb is not None:
                judgements.append(Judgement(convo.user_pseudo_id, f"{last_user_turn(context) or ''}\n{m.text}",
                                            int(m.thumb == Thumb.UP)))
    check_pending()
    return judgements, {u: (n, bad) for u, (n, bad) in own.items()}


def score_store(engine, filters=None, config: TrustConfig | None = None, *,
                featurize: Featurizer | str = "minilm") -> list[UserScore]:
    """``organic trolls``: every user of the store with their trust, unsafe-message share and why."""
    judgements, messages = from_store(engine, filters)
    return score_users(judgements, config, messages=messages, featurize=featurize)
