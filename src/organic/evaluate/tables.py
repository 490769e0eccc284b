"""Pairwise human evaluation: its two tables live with the rest of the schema (``organic.store.models``;
migration ``0003_comparisons``) and are re-exported here.

A ``Comparison`` is one context and two models' replies to it; a ``ComparisonVote`` is one rater's choice. The
rater saw the replies as sides A and B, in an order drawn per rater and item (``flipped``: ``model_a``'s reply
was shown as B); ``choice`` is the side they picked (``A``, ``B``) or ``tie``, exactly as clicked, so position
bias can be measured. ``winner`` turns it back into a model.
"""

from __future__ import annotations

from organic.store.models import Comparison, ComparisonVote

__all__ = ["Comparison", "ComparisonVote", "winner"]


def winner(choice: str, flipped: bool, model_a: str, model_b: str) -> str | None:
    """The model a vote picked, or None for a tie."""
    if choice == "tie":
        return None
    return model_a if (choice == "A") != flipped else model_b
