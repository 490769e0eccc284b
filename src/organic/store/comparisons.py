"""Pairwise comparison items and raters' votes (``Comparison``, ``ComparisonVote``).

Items are created by an admin; a rater is given the least-voted item they have not voted on (random among equals)
and votes on it once. Which side each reply is shown on, and what a vote means for the two models, is decided by
the ``/compare`` routes (``serve.routes.compare``) and ``evaluate.pairwise``; this module only reads and writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, exists, func, insert, select
from sqlalchemy.exc import IntegrityError

from organic.store.models import Comparison, ComparisonVote


@dataclass(frozen=True)
class Item:
    id: int
    context: list[dict]
    reply_a: str
    reply_b: str


@dataclass(frozen=True)
class Vote:
    model_a: str
    model_b: str
    choice: str  # the side clicked: A, B or tie
    flipped: bool  # whether model_a's reply was shown on side B
    rater: str


def create(engine: Engine, items: list[dict]) -> list[int]:
    """Store comparison items (each the ``Comparison`` columns: context, model_a, model_b, reply_a, reply_b, source)
    in one transaction; their ids."""
    with engine.begin() as conn:
        return [conn.execute(insert(Comparison).values(**item).returning(Comparison.id)).scalar_one() for item in items]


def count_items(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Comparison)).scalar_one()


def votes(engine: Engine) -> list[Vote]:
    """Every vote with its item's two models."""
    with engine.connect() as conn:
        rows = conn.execute(select(Comparison.model_a, Comparison.model_b, ComparisonVote.choice, ComparisonVote.flipped,
                                   ComparisonVote.rater).join(Comparison, ComparisonVote.comparison_id == Comparison.id)).all()
    return [Vote(r.model_a, r.model_b, r.choice, r.flipped, r.rater) for r in rows]


def progress(engine: Engine, rater: str) -> tuple[int, int]:
    """How many items ``rater`` voted on, and how many are left."""
    with engine.connect() as conn:
        voted = conn.execute(select(func.count()).where(ComparisonVote.rater == rater)).scalar_one()
        left = conn.execute(select(func.count()).select_from(Comparison).where(_not_voted(rater))).scalar_one()
    return voted, left


def next_item(engine: Engine, rater: str) -> Item | None:
    """An item ``rater`` has not voted on, the least-voted first and random among equals; None when none is left."""
    counted = select(func.count()).where(ComparisonVote.comparison_id == Comparison.id).scalar_subquery()
    with engine.connect() as conn:
        row = conn.execute(select(Comparison.id, Comparison.context, Comparison.reply_a, Comparison.reply_b)
                           .where(_not_voted(rater)).order_by(counted, func.random()).limit(1)).first()
    return None if row is None else Item(row.id, row.context, row.reply_a, row.reply_b)


def add_vote(engine: Engine, comparison_id: int, rater: str, choice: str, *, flipped: bool, reason: str | None) -> bool:
    """Store ``rater``'s vote on one item; False when they had voted on it already (each rater votes on an item once).
    Raises LookupError for an unknown item."""
    try:
        with engine.begin() as conn:
            if conn.execute(select(Comparison.id).where(Comparison.id == comparison_id)).scalar() is None:
                raise LookupError(f"no comparison {comparison_id}")
            conn.execute(insert(ComparisonVote).values(comparison_id=comparison_id, rater=rater, choice=choice,
                                                       flipped=flipped, reason=reason or None))
    except IntegrityError:
        return False
    return True


def _not_voted(rater: str):
    return ~exists().where(ComparisonVote.comparison_id == Comparison.id, ComparisonVote.rater == rater)
