"""Pairwise human evaluation in the style of ACUTE-Eval (Li et al. 2019): raters see two models' replies to the
same context, blind, and pick the better one or call a tie.

A model's win rate is its wins over the decided pairs (ties left out, and reported beside it), with a 95% Wilson
interval; the significance test is the two-sided exact binomial (sign) test of wins against losses under
p = 0.5 (scipy's ``binomtest``), which is what ACUTE-Eval reports. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from scipy.stats import binomtest

from organic.stats import wilson


@dataclass(frozen=True)
class PairwiseResult:
    """``model_a`` against ``model_b``: wins, losses and ties counted from ``model_a``'s side."""

    model_a: str
    model_b: str
    wins: int
    losses: int
    ties: int = 0

    @property
    def decided(self) -> int:
        return self.wins + self.losses

    @property
    def total(self) -> int:
        return self.decided + self.ties

    @property
    def win_rate(self) -> float | None:
        """Wins over decided pairs; None when every vote was a tie (or there were none)."""
        return self.wins / self.decided if self.decided else None

    @property
    def ci95(self) -> tuple[float, float]:
        return wilson(self.wins, self.decided)

    @property
    def p_value(self) -> float:
        """Two-sided exact binomial test of ``wins`` of ``decided`` against 0.5; 1.0 with nothing decided."""
        return float(binomtest(self.wins, self.decided, 0.5, alternative="two-sided").pvalue) if self.decided else 1.0

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha

    def to_json(self) -> dict:
        low, high = self.ci95
        return {"model_a": self.model_a, "model_b": self.model_b, "wins": self.wins, "losses": self.losses,
                "ties": self.ties, "decided": self.decided,
                "win_rate": None if self.win_rate is None else round(self.win_rate, 4),
                "ci95": [round(low, 4), round(high, 4)], "p_value": round(self.p_value, 6)}


def pairwise(wins: int, losses: int, ties: int = 0, model_a: str = "A", model_b: str = "B") -> PairwiseResult:
    if min(wins, losses, ties) < 0:
        raise ValueError(f"counts must not be negative; got {wins} wins, {losses} losses, {ties} ties")
    return PairwiseResult(model_a, model_b, wins, losses, ties)


def winner(choice: str, flipped: bool, model_a: str, model_b: str) -> str | None:
    """The model a rater's vote picked (``choice`` A, B or tie, as clicked, with the sides ``flipped`` when ``model_a``'s
    reply was shown as B), or None for a tie."""
    if choice == "tie":
        return None
    return model_a if (choice == "A") != flipped else model_b


def tally(votes: Iterable[tuple[str, str, str | None]]) -> list[PairwiseResult]:
    """One result per pair of models from votes ``(model_x, model_y, winner)``, ``winner`` being one of the two
    names or None for a tie. Each pair is reported once, its two names in alphabetical order."""
    counts: dict[tuple[str, str], list[int]] = {}
    for x, y, winner in votes:
        if x == y:
            raise ValueError(f"a vote compares {x!r} with itself")
        if winner not in (x, y, None):
            raise ValueError(f"the winner {winner!r} is neither {x!r} nor {y!r}")
        a, b = sorted((x, y))
        row = counts.setdefault((a, b), [0, 0, 0])
        row[0 if winner == a else 1 if winner == b else 2] += 1
    return [PairwiseResult(a, b, *row) for (a, b), row in sorted(counts.items())]
