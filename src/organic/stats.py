"""Pure statistics for the report and the troll benchmark: proportions with confidence intervals and
agreement between annotators. No I/O; every function is tested on a small hand-worked dataset.

Agreement functions take a table of counts, one row per item (utterance) and one column per category
(crowd label): ``counts[i][j]`` annotators put item ``i`` in category ``j``. That is what the BB3x
release's ``mturk`` field holds, so agreement can be computed without knowing who said what.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927); (0, 1) when ``n`` is 0.

        centre = (p + z^2 / 2n) / (1 + z^2 / n)
        half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2)

    Unlike the normal approximation it stays inside [0, 1] and is sound for small counts and rare events
    (a 1.4% thumbs-down rate, 3 annotated utterances).
    """
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n; got {successes} of {n}")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact at the edges, free of rounding
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True)
class Proportion:
    """``count`` of ``n`` with its share and 95% Wilson interval; ``to_json`` gives percentages."""

    count: int
    n: int

    @property
    def share(self) -> float:
        return self.count / self.n if self.n else 0.0

    @property
    def ci(self) -> tuple[float, float]:
        return wilson(self.count, self.n)

    def to_json(self) -> dict:
        low, high = self.ci
        return {"count": self.count, "n": self.n, "percent": round(100 * self.share, 3),
                "ci95": [round(100 * low, 3), round(100 * high, 3)]}


def cohen_kappa(a: Sequence, b: Sequence) -> float:
    """Cohen's kappa of two annotators who labelled the same items: (p_o - p_e) / (1 - p_e).

    p_o is the share of items they agree on, p_e the agreement expected by chance from each one's own
    label frequencies. 1.0 when both always give the one same label (no disagreement is possible).
    """
    if len(a) != len(b):
        raise ValueError(f"the two annotators labelled different numbers of items ({len(a)} and {len(b)})")
    if not a:
        raise ValueError("no items: Cohen's kappa needs at least one item labelled by both annotators")
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b)) / n
    categories = set(a) | set(b)
    expected = sum((list(a).count(c) / n) * (list(b).count(c) / n) for c in categories)
    return 1.0 if expected == 1 else (observed - expected) / (1 - expected)


def _rated(counts) -> np.ndarray:
    table = np.asarray(counts, dtype=float)
    if table.ndim != 2:
        raise ValueError("counts must be a table: one row per item, one column per category")
    if (table < 0).any():
        raise ValueError("counts must not be negative")
    return table[table.sum(axis=1) >= 2]  # an item labelled once tells nothing about agreement


def fleiss_kappa(counts) -> float:
    """Fleiss' kappa (Fleiss 1971) for any number of annotators per item: (P - P_e) / (1 - P_e).

    P_i = (sum_j n_ij^2 - n_i) / (n_i (n_i - 1)) is the share of agreeing annotator pairs on item i and
    P their mean; p_j is category j's share of all labels and P_e = sum_j p_j^2. With the same number of
    annotators on every item this is Fleiss' original statistic; items labelled once are left out.
    """
    table = _rated(counts)
    if len(table) == 0:
        raise ValueError("no item has two or more labels: agreement needs items labelled by several annotators")
    n_i = table.sum(axis=1)
    agreement = ((table * table).sum(axis=1) - n_i) / (n_i * (n_i - 1))
    p_j = table.sum(axis=0) / table.sum()
    expected = float((p_j * p_j).sum())
    return 1.0 if expected == 1 else float((agreement.mean() - expected) / (1 - expected))


def krippendorff_alpha(counts) -> float:
    """Krippendorff's alpha for nominal labels: 1 - D_o / D_e, from the coincidence matrix.

    o_ck = sum_i n_ic (n_ik - [c = k]) / (n_i - 1) counts ordered pairs of labels given to the same item;
    n_c = sum_k o_ck, n = sum_c n_c. Then alpha = 1 - (n - 1) sum_{c != k} o_ck / sum_{c != k} n_c n_k.
    It handles any number of annotators per item and corrects for small samples.
    """
    table = _rated(counts)
    if len(table) == 0:
        raise ValueError("no item has two or more labels: agreement needs items labelled by several annotators")
    n_i = table.sum(axis=1, keepdims=True)
    coincidence = (table[:, :, None] * table[:, None, :]) / (n_i[:, :, None] - 1)
    coincidence = coincidence.sum(axis=0) - np.diag((table / (n_i - 1)).sum(axis=0))
    n_c = coincidence.sum(axis=1)
    n = n_c.sum()
    off_diagonal = ~np.eye(len(n_c), dtype=bool)
    disagree_observed = coincidence[off_diagonal].sum()
    disagree_expected = np.outer(n_c, n_c)[off_diagonal].sum()
    return 1.0 if disagree_expected == 0 else float(1 - (n - 1) * disagree_observed / disagree_expected)


def agreement(counts) -> dict:
    """Fleiss' kappa and Krippendorff's alpha over all labels and over Good vs not Good (column 0 is Good),
    with how many items and labels they rest on; values are None where there are no repeated labels."""
    table = _rated(counts)
    result = {"items": int(len(table)), "labels": int(table.sum())}
    if len(table) == 0:
        return result | {"fleiss_kappa": None, "krippendorff_alpha": None, "good_vs_bad": None}
    binary = np.stack([table[:, 0], table[:, 1:].sum(axis=1)], axis=1)
    return result | {
        "fleiss_kappa": round(fleiss_kappa(table), 4),
        "krippendorff_alpha": round(krippendorff_alpha(table), 4),
        "good_vs_bad": {"fleiss_kappa": round(fleiss_kappa(binary), 4),
                        "krippendorff_alpha": round(krippendorff_alpha(binary), 4)},
    }


@dataclass(frozen=True)
class Detection:
    """How well a score finds the positives (trolls): ROC AUC of the score, precision and recall of a flag."""

    auc: float | None  # None when only one class is present
    precision: float
    recall: float
    flagged: int
    positives: int
    total: int

    def to_json(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def detection(truth: Sequence[bool], score: Sequence[float], flagged: Sequence[bool]) -> Detection:
    """``truth``: is a positive; ``score``: higher means more likely positive; ``flagged``: the decision."""
    from sklearn.metrics import precision_score, recall_score, roc_auc_score

    truth = np.asarray(truth, dtype=bool)
    flagged = np.asarray(flagged, dtype=bool)
    auc = float(roc_auc_score(truth, score)) if 0 < truth.sum() < len(truth) else None
    return Detection(
        auc=auc,
        precision=float(precision_score(truth, flagged, zero_division=0)),
        recall=float(recall_score(truth, flagged, zero_division=0)),
        flagged=int(flagged.sum()), positives=int(truth.sum()), total=len(truth),
    )


def summary(histogram: dict[int, int]) -> dict:
    """Mean, median, 90th and 99th percentile and maximum of a distribution given as {value: frequency}."""
    if not histogram:
        return {"n": 0, "mean": None, "median": None, "p90": None, "p99": None, "max": None}
    values = np.array(sorted(histogram), dtype=float)
    freq = np.array([histogram[int(v)] for v in values], dtype=float)
    cumulative = np.cumsum(freq)
    total = cumulative[-1]

    def quantile(q: float) -> float:  # the smallest value with at least q of the mass at or below it
        return float(values[np.searchsorted(cumulative, q * total - 1e-9)])

    return {"n": int(total), "mean": round(float((values * freq).sum() / total), 3), "median": quantile(0.5),
            "p90": quantile(0.9), "p99": quantile(0.99), "max": float(values[-1])}
