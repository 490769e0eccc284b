"""Live A/B figures: organic thumbs up / down per bot message for each model version that served, as in the
paper's live comparison (BB3 2.12% up / 1.63% down, BB3x 3.47% / 1.40%), with 95% intervals and an exact
test of the difference between each pair of versions."""

from __future__ import annotations

from datetime import datetime
from itertools import combinations
from typing import Any

from scipy.stats import fisher_exact
from sqlalchemy import Engine, case, func, select

from organic.stats import wilson
from organic.store.models import Conversation, Feedback, Message, ModelVersion
from organic.taxonomy import Thumb


def live_ab(engine: Engine, source: str | None = None, since: datetime | None = None) -> dict[str, Any]:
    """Per model version: conversations, bot messages, thumbs up / down and their rates per bot message; with
    ``since``, only conversations begun then or later (the traffic of one A/B, not what a version earned before)."""
    rated = select(Feedback.message_id, Feedback.thumb).subquery()
    query = (
        select(ModelVersion.name, func.count(func.distinct(Conversation.id)), func.count(Message.id),
               func.sum(case((rated.c.thumb == Thumb.UP.value, 1), else_=0)), func.sum(case((rated.c.thumb == Thumb.DOWN.value, 1), else_=0)))
        .join(Conversation, Conversation.model_version_id == ModelVersion.id)
        .join(Message, (Message.conversation_id == Conversation.id) & (Message.sender == "bot"))
        .outerjoin(rated, rated.c.message_id == Message.id)
        .group_by(ModelVersion.name).order_by(ModelVersion.name)
    )
    if source:
        query = query.where(Conversation.source == source)
    if since:
        query = query.where(Conversation.created_at >= since)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    versions = {}
    for name, convos, bots, up, down in rows:
        up, down = int(up or 0), int(down or 0)
        versions[name] = {
            "conversations": convos, "bot_messages": bots, "thumbs_up": up, "thumbs_down": down,
            "up_rate": up / bots if bots else 0.0, "up_ci95": wilson(up, bots),
            "down_rate": down / bots if bots else 0.0, "down_ci95": wilson(down, bots),
        }
    comparisons = []
    for a, b in combinations(versions, 2):
        va, vb = versions[a], versions[b]
        test = {}
        for thumb in (Thumb.UP.value, Thumb.DOWN.value):
            table = [[va[f"thumbs_{thumb}"], va["bot_messages"] - va[f"thumbs_{thumb}"]],
                     [vb[f"thumbs_{thumb}"], vb["bot_messages"] - vb[f"thumbs_{thumb}"]]]
            test[f"{thumb}_rate_p"] = float(fisher_exact(table).pvalue)
        comparisons.append({"a": a, "b": b, **test})
    return {"versions": versions, "comparisons": comparisons}


def render_markdown(figures: dict[str, Any]) -> str:
    lines = ["| model version | conversations | bot messages | thumbs up | thumbs down |", "|---|---|---|---|---|"]
    for name, v in figures["versions"].items():
        lines.append(f"| {name} | {v['conversations']} | {v['bot_messages']} | "
                     f"{v['up_rate']:.2%} [{v['up_ci95'][0]:.2%}, {v['up_ci95'][1]:.2%}] | "
                     f"{v['down_rate']:.2%} [{v['down_ci95'][0]:.2%}, {v['down_ci95'][1]:.2%}] |")
    for c in figures["comparisons"]:
        lines.append(f"\n{c['a']} vs {c['b']}: thumbs-up rate p = {c['up_rate_p']:.3g}, thumbs-down rate p = {c['down_rate_p']:.3g} (Fisher exact)")
    return "\n".join(lines)
