"""What the operator's console (``organic.serve.routes.console``) shows: one function per panel, each reading the store
and returning JSON-ready figures. Read-only. The statistics are the library's own: Wilson intervals from
``organic.stats``, the live A/B figures and Fisher tests of ``organic ab-report``, the trust scores of
``organic trolls``, the annotator agreement of ``organic analyze``.

Days are calendar days of the database's clock (UTC unless it is set otherwise), oldest first.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, case, func, select
from sqlalchemy.orm import aliased

from organic.stats import Proportion, agreement
from organic.store.models import Annotation, ComparisonVote, Conversation, Feedback, Message, ModelVersion, User
from organic.taxonomy import CrowdLabel, Sender, Thumb

ANSWERS = 20  # most recent answers to "what should I have said?" shown
RATERS_SHOWN = 100  # users listed by their rating count


def _day(column):
    return func.date(column)  # text 'YYYY-MM-DD' on SQLite, a date on PostgreSQL: str() of either is the ISO day


def _window(days: int) -> tuple[datetime, list[str]]:
    """The start of the last ``days`` calendar days (today included) and those days as ISO strings."""
    today = datetime.now(timezone.utc).date()
    first = today - timedelta(days=days - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=timezone.utc)
    return start, [(first + timedelta(days=i)).isoformat() for i in range(days)]


def _iso(day: date | str) -> str:
    return day.isoformat() if isinstance(day, date) else str(day)


# traffic ------------------------------------------------------------------------------------------------
def traffic(engine: Engine, days: int = 30) -> dict[str, Any]:
    """Conversations, messages and active users (who sent a message) per day over the last ``days`` days, the
    conversations each model version served per day, and each version's share of them."""
    start, calendar = _window(days)
    started, sent = _day(Conversation.created_at), _day(Message.created_at)
    per_day = lambda rows: {_iso(day): n for day, n in rows}  # noqa: E731
    with engine.connect() as conn:
        convos = per_day(conn.execute(select(started, func.count()).where(Conversation.created_at >= start).group_by(started)))
        messages = per_day(conn.execute(select(sent, func.count()).where(Message.created_at >= start).group_by(sent)))
        active = per_day(conn.execute(
            select(sent, func.count(func.distinct(Conversation.user_id)))
            .join(Conversation, Message.conversation_id == Conversation.id)
            .where(Message.created_at >= start, Message.sender == Sender.HUMAN.value).group_by(sent)))
        served = conn.execute(
            select(started, ModelVersion.name, func.count())
            .outerjoin(ModelVersion, Conversation.model_version_id == ModelVersion.id)
            .where(Conversation.created_at >= start).group_by(started, ModelVersion.name)).all()
    by_day: dict[str, dict[str, int]] = {}
    for day, name, n in served:
        by_day.setdefault(_iso(day), {})[name or "(none)"] = n
    rows = [{"day": day, "conversations": convos.get(day, 0), "messages": messages.get(day, 0),
             "active_users": active.get(day, 0), "by_version": by_day.get(day, {})} for day in calendar]
    totals: dict[str, int] = {}
    for counts in by_day.values():
        for name, n in counts.items():
            totals[name] = totals.get(name, 0) + n
    everything = sum(totals.values())
    versions = [{"name": name, **Proportion(n, everything).to_json()} for name, n in sorted(totals.items(), key=lambda kv: -kv[1])]
    return {"days": rows, "versions": versions, "since": calendar[0]}


# feedback -----------------------------------------------------------------------------------------------
def feedback(engine: Engine, days: int = 30) -> dict[str, Any]:
    """Thumbs up and down per bot message for each model version (all time, and per day over the last ``days``
    days), with 95% Wilson intervals; the reasons given on thumbs down; the share of canned replies; and the
    latest answers to "what should I have said?"."""
    from organic.analyze.figures import reason_table  # the report's own table of reasons, labels included
    from organic.evaluate.live import live_ab

    start, calendar = _window(days)
    sent = _day(Message.created_at)
    rated = select(Feedback.message_id, Feedback.thumb).subquery()
    bot = Message.sender == Sender.BOT.value
    with engine.connect() as conn:
        per_day = conn.execute(
            select(sent, ModelVersion.name, func.count(Message.id), func.sum(case((rated.c.thumb == Thumb.UP.value, 1), else_=0)),
                   func.sum(case((rated.c.thumb == Thumb.DOWN.value, 1), else_=0)))
            .join(Conversation, Message.conversation_id == Conversation.id)
            .join(ModelVersion, Conversation.model_version_id == ModelVersion.id)
            .outerjoin(rated, rated.c.message_id == Message.id)
            .where(bot, Message.created_at >= start).group_by(sent, ModelVersion.name)).all()
        reasons = conn.execute(select(Feedback.reason, func.count()).where(Feedback.thumb == Thumb.DOWN.value).group_by(Feedback.reason)).all()
        canned = conn.execute(select(func.count(), func.sum(case((Message.is_safety_controlled_response, 1), else_=0)),
                                     func.sum(case((Message.from_model_crash, 1), else_=0))).where(bot)).one()
    daily = [{"day": _iso(day), "version": name, "bot_messages": n,
              "up": Proportion(int(up or 0), n).to_json(), "down": Proportion(int(down or 0), n).to_json()}
             for day, name, n, up, down in per_day if _iso(day) in calendar]
    bots, safety, crash = canned[0], int(canned[1] or 0), int(canned[2] or 0)
    return {
        "versions": _percent_rates(live_ab(engine)["versions"]),
        "days": sorted(daily, key=lambda r: (r["day"], r["version"])),
        "reasons": reason_table(reasons, sum(n for _, n in reasons)),
        "canned": {"safety": Proportion(safety, bots).to_json(), "crash": Proportion(crash, bots).to_json()},
        "answers": feedback_answers(engine),
        "since": calendar[0],
    }


def _percent_rates(versions: dict[str, dict]) -> list[dict]:
    """``live_ab``'s versions with their rates as the console's proportions (percent and 95% interval)."""
    return [{"name": name, "conversations": v["conversations"], "bot_messages": v["bot_messages"],
             "up": Proportion(v["thumbs_up"], v["bot_messages"]).to_json(),
             "down": Proportion(v["thumbs_down"], v["bot_messages"]).to_json()} for name, v in versions.items()]


def feedback_answers(engine: Engine, limit: int = ANSWERS) -> list[dict]:
    """The latest answers to "what should I have said?", newest first, each with the reply it was about."""
    answer, reply = aliased(Message), aliased(Message)
    with engine.connect() as conn:
        rows = conn.execute(
            select(answer.text, answer.created_at, reply.text.label("reply"), Feedback.reason, ModelVersion.name)
            .join(Feedback, Feedback.feedback_message_id == answer.id)
            .join(reply, Feedback.message_id == reply.id)
            .outerjoin(ModelVersion, reply.model_version_id == ModelVersion.id)
            .order_by(answer.created_at.desc(), answer.id.desc()).limit(limit)).all()
    return [{"answer": r.text, "reply": r.reply, "reason": r.reason, "version": r.name, "at": r.created_at.isoformat()}
            for r in rows]


# A/B ----------------------------------------------------------------------------------------------------
def ab(engine: Engine, serving_now: dict[str, float]) -> dict[str, Any]:
    """The serving plan (the store's, with its ``plan_id`` for a change based on it, and what this server draws from:
    ``serving_now``), every model version with its status and share, and each served version's thumbs rates with an
    exact Fisher test of its thumbs-down rate against the incumbent (the version with the largest share of the plan),
    as ``organic ab-report`` does."""
    from organic.evaluate.live import live_ab
    from organic.store.versions import current_plan, versions

    plan_id, plan = current_plan(engine)
    incumbent = max(plan or serving_now, key=lambda name: (plan or serving_now)[name])
    figures = live_ab(engine)
    tests = {frozenset((c["a"], c["b"])): c for c in figures["comparisons"]}
    live = []
    for row in _percent_rates(figures["versions"]):
        test = tests.get(frozenset((row["name"], incumbent)))
        live.append(row | {"incumbent": row["name"] == incumbent,
                           "down_p": None if test is None else test["down_rate_p"],
                           "up_p": None if test is None else test["up_rate_p"]})
    return {
        "plan": plan, "plan_id": plan_id, "serving": serving_now, "incumbent": incumbent, "live": live,
        "versions": [{"name": v.name, "status": v.status, "traffic_share": v.traffic_share, "method": v.method,
                      "servable": bool(v.path) or v.name in serving_now} for v in versions(engine)],
    }


# people -------------------------------------------------------------------------------------------------
def raters(engine: Engine, limit: int | None = RATERS_SHOWN, users: list[str] | None = None) -> list[dict]:
    """Users by how many replies they rated (most first): ratings, thumbs up and down; only ``users`` when given
    (those who rated nothing are left out), at most ``limit`` (None: all)."""
    down = func.sum(case((Feedback.thumb == Thumb.DOWN.value, 1), else_=0))
    query = (select(User.pseudo_id, func.count(Feedback.id), down).join(Feedback, Feedback.user_id == User.id)
             .group_by(User.pseudo_id).order_by(func.count(Feedback.id).desc(), User.pseudo_id).limit(limit))
    if users is not None:
        query = query.where(User.pseudo_id.in_(users))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [{"user": user, "ratings": n, "thumbs_down": int(d or 0), "thumbs_up": n - int(d or 0)} for user, n, d in rows]


def trolls(engine: Engine, features: str = "minilm") -> dict[str, Any]:
    """``organic trolls`` on the store: the users it flags with why and their rating counts (as ``raters`` gives them),
    and, when the store holds too little to judge anyone by their labels, a message that says so."""
    from organic.analyze.trolls import TrustConfig, score_store

    rows = score_store(engine, featurize=features)
    counts = {row["user"]: row for row in raters(engine, None, [r.user for r in rows if r.is_troll])}
    none = {"ratings": 0, "thumbs_down": 0, "thumbs_up": 0}
    flagged = [r.to_json() | counts.get(r.user, none) for r in rows if r.is_troll]
    judged = sum(r.trust is not None for r in rows)
    need = TrustConfig().min_labels
    message = None
    if not rows:
        message = "not enough data: nobody has rated a reply or sent a message yet"
    elif not judged:
        message = (f"not enough data for trust scores: no user has rated {need} replies yet; "
                   "only the unsafe-message check could flag anyone")
    return {"features": features, "users": len(rows), "judged": judged, "too_few_labels": sum(r.too_few_labels for r in rows),
            "flagged": flagged, "message": message}


# crowd annotation ---------------------------------------------------------------------------------------
def annotation(engine: Engine) -> dict[str, Any]:
    """Progress per named annotator and per rater, agreement over utterances labelled several times (Fleiss'
    kappa, Krippendorff's alpha) and Cohen's kappa of each pair of annotators, as ``organic analyze`` reports it."""
    from organic.analyze.figures import annotator_pairs

    named = Annotation.annotator.not_like("import:%")  # imported crowd counts carry no annotator
    with engine.connect() as conn:
        people = conn.execute(
            select(Annotation.annotator, func.count(), func.min(Annotation.created_at), func.max(Annotation.created_at))
            .where(named).group_by(Annotation.annotator).order_by(func.count().desc(), Annotation.annotator)).all()
        imported = conn.execute(select(func.count()).select_from(Annotation).where(~named)).scalar_one()
        votes = conn.execute(select(ComparisonVote.rater, func.count()).group_by(ComparisonVote.rater)
                             .order_by(func.count().desc(), ComparisonVote.rater)).all()
        repeated = select(Annotation.message_id).group_by(Annotation.message_id).having(func.count() >= 2)
        cells = conn.execute(select(Annotation.message_id, Annotation.label, func.count())
                             .where(Annotation.message_id.in_(repeated)).group_by(Annotation.message_id, Annotation.label)).all()
    return {
        "annotators": [{"name": name, "labels": n, "first": first.isoformat(), "last": last.isoformat()}
                       for name, n, first, last in people],
        "imported_labels": imported,
        "raters": [{"name": name, "votes": n} for name, n in votes],
        "agreement": agreement(_label_table(cells)),
        "pairs": annotator_pairs(engine),
    }


def _label_table(cells: list[tuple[int, str, int]]) -> list[list[int]]:
    """One row per utterance, one column per crowd label (Good first): what ``stats.agreement`` takes."""
    columns = {label.value: i for i, label in enumerate(CrowdLabel)}
    rows: dict[int, list[int]] = {}
    for message_id, label, n in cells:
        if label in columns:
            rows.setdefault(message_id, [0] * len(columns))[columns[label]] += n
    return list(rows.values()) or [[0] * len(columns)]


# models -------------------------------------------------------------------------------------------------
TRAINING_DATA = ("examples", "positives", "negatives", "generated_examples", "generated_good")
TRAINING_RUN = ("train_loss", "steps", "runtime_s", "iteration")


def models(engine: Engine) -> list[dict]:
    """Every registered model version with its parent, method, status and share, the size of the data it was
    trained on and its training figures (as ``organic train`` records them), and its eval table when one is
    recorded (the ``eval`` key of its metrics: one model's entry of ``organic eval``'s eval.json, with its
    ``breakdown``, ``guards`` and ``paired`` test, as ``organic eval``, ``organic loop`` and the watcher record it),
    else None, and then ``not_evaluated``: a sentence that says so and how to evaluate it."""
    from organic.store.versions import versions

    every = versions(engine)
    names = {v.id: v.name for v in every}
    out = []
    for v in every:
        metrics = v.metrics or {}
        out.append({
            "name": v.name, "parent": names.get(v.parent_id), "method": v.method, "status": v.status,
            "traffic_share": v.traffic_share, "base_model": v.base_model, "path": v.path,
            "created_at": v.created_at.isoformat(),
            "data": {k: metrics[k] for k in TRAINING_DATA if k in metrics},
            "training": {k: metrics[k] for k in TRAINING_RUN if k in metrics},
            "eval": metrics.get("eval"),
            "not_evaluated": None if metrics.get("eval") else _not_evaluated(v.name, names.get(v.parent_id), v.path),
        })
    return out


def _not_evaluated(name: str, parent: str | None, path: str | None) -> str:
    """What the Models panel says of a version without an eval (``organic train`` evaluates nothing), and how to get one."""
    said = "no eval recorded: this version was not evaluated"
    if not path:
        return f"{said} (it has no model folder to evaluate)"
    if parent:
        return f"{said}; `organic eval --model {parent} --model {name}` evaluates it against its parent and records the figures here"
    return f"{said}; `organic eval --model {name}` evaluates it and records the figures here"


# the analysis report ------------------------------------------------------------------------------------
HEADLINE = ("users", "conversations", "messages", "bot_messages", "thumbs_up", "thumbs_down")


def report(folder: Path) -> dict[str, Any]:
    """Whether ``folder`` holds an ``organic analyze`` report, when it was written and its headline figures."""
    page, figures = folder / "report.html", folder / "report.json"
    if not page.is_file():
        return {"available": False, "folder": str(folder),
                "message": f"no report in {folder}: run `organic analyze --out {folder}` (or set ORGANIC_REPORT_DIR)"}
    headline = {}
    if figures.is_file():
        try:
            data = json.loads(figures.read_text(encoding="utf-8"))
            headline = {k: data[k] for k in HEADLINE if k in data}
        except (ValueError, OSError):
            headline = {}
    written = datetime.fromtimestamp(page.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
    return {"available": True, "folder": str(folder), "written_at": written, "figures": headline}
