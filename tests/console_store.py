"""A small store for the console's tests, with every panel's figures known by construction.

Three model versions (base; cringe-it1 trained from it, with an eval table recorded; sft-1, without one), each
conversation of two human turns and two bot replies, made over the last three days:

- base serves 6 conversations (users h0-h5), cringe-it1 serves 4 (h0-h3); every user rates every reply
  of theirs: on base 3 thumbs down (reasons nonsensical, nonsensical, rude), the rest up; on cringe-it1 all up;
- one more base conversation of "troll-1": six unsafe messages, its bot replies all canned safety replies, no ratings;
- one base reply is followed by the feedback exchange, whose answer is "You should have said hello.";
- annotators ann1 and ann2 both label the first 6 bot replies (they disagree on one), ann1 two more;
- an analysis report in ``report_dir`` when one is given.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import insert, select

from organic.store.bulk import write_conversations
from organic.store.models import Annotation, Message
from organic.store.records import FEEDBACK_REQUEST, ConversationRecord, MessageRecord
from organic.store.versions import register_version

SAFE = {"duo_safety": "__ok__", "string_matcher": "__ok__"}
UNSAFE = {"duo_safety": "__notok__", "string_matcher": "__ok__"}
EVAL = {"breakdown": {"n": 50, "bad": {"count": 20, "n": 50, "percent": 40.0, "ci95": [27.6, 53.8]}},
        "guards": {"words": {"mean": 11.5, "ci95": [10.0, 13.0]}, "copied_from_user": {"mean": 0.05, "ci95": [0.0, 0.1]},
                   "cut": {"count": 5, "n": 50, "percent": 10.0, "ci95": [4.3, 21.4]}, "perplexity_human": 31.25},
        "paired": {"against": "base", "model": "cringe-it1", "n": 50, "fixed": 6, "broken": 2, "bad_rate_change": -8.0,
                   "ci95": [-17.0, 1.0], "p_value": 0.289}}
DOWN_REASONS = ["nonsensical", "nonsensical", "rude"]  # the thumbs down on base, in order
ANSWER = "You should have said hello."


def day(days_ago: int, hour: int = 12) -> datetime:
    today = datetime.now(timezone.utc).replace(hour=hour, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days_ago)


def _convo(cid: str, user: str, version: str, created: datetime, thumbs: list[tuple[str, str | None]]) -> ConversationRecord:
    messages = []
    for i, (thumb, reason) in enumerate(thumbs):
        messages.append(MessageRecord("human", f"hello number {i} from {user}", safety=SAFE))
        messages.append(MessageRecord("bot", f"reply {i} of {version} to {user}", model_version=version, thumb=thumb, reason=reason))
    return ConversationRecord(cid, user, messages, source="live", model_version=version, created_at=created,
                              age_confirmed=True, save_conversations=True)


def seed(engine, tmp: Path, report_dir: Path | None = None) -> None:
    register_version(engine, "base", path=str(tmp / "base"))
    register_version(engine, "cringe-it1", path=str(tmp / "cringe-it1"), parent="base", method="cringe",
                     metrics={"examples": 40, "positives": 20, "negatives": 20, "train_loss": 1.234, "steps": 10, "eval": EVAL})
    register_version(engine, "sft-1", path=str(tmp / "sft-1"), parent="base", method="sft",
                     metrics={"examples": 30, "positives": 30, "negatives": 0, "train_loss": 2.5, "steps": 5})
    reasons = iter(DOWN_REASONS)
    convos = []
    for u in range(6):  # base: users h0-h2 give the first reply a thumbs down, the others thumbs up
        first = ("down", next(reasons)) if u < 3 else ("up", None)
        convos.append(_convo(f"c-base-{u}", f"h{u}", "base", day(u % 3), [first, ("up", None)]))
    for u in range(4):
        convos.append(_convo(f"c-cringe-{u}", f"h{u}", "cringe-it1", day(u % 2, hour=14), [("up", None), ("up", None)]))
    # h0's thumbs down is followed by the feedback exchange
    feedback = convos[0].messages
    feedback.insert(2, MessageRecord("bot", "What should I have said?", model_version="base", traces={"module": FEEDBACK_REQUEST}))
    feedback.insert(3, MessageRecord("human", ANSWER, safety=SAFE, is_dislike_feedback=True))
    troll = ConversationRecord("c-troll", "troll-1", [], source="live", model_version="base", created_at=day(0, hour=9),
                               age_confirmed=True, save_conversations=True)
    for i in range(6):
        troll.messages.append(MessageRecord("human", f"nasty words {i}", safety=UNSAFE))
        troll.messages.append(MessageRecord("bot", "Let's talk about something else.", model_version="base",
                                            is_safety_controlled_response=True, previous_interaction_failure="unsafe_Human"))
    convos.append(troll)
    write_conversations(engine, convos)
    with engine.begin() as conn:
        bots = conn.execute(select(Message.id).where(Message.sender == "bot", ~Message.is_safety_controlled_response)
                            .order_by(Message.id).limit(8)).scalars().all()
        labels = ["good", "good", "nonsensical", "good", "off_topic", "good"]
        rows = [{"message_id": m, "annotator": "ann1", "label": label} for m, label in zip(bots, labels + ["good", "good"])]
        rows += [{"message_id": m, "annotator": "ann2", "label": label} for m, label in zip(bots, labels[:5] + ["repeating"])]
        conn.execute(insert(Annotation), rows)
    if report_dir:
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / "report.html").write_text("<!doctype html><title>organic report</title><h1>The organic-data report</h1>")
        (report_dir / "report.json").write_text(json.dumps({"users": 7, "conversations": 11, "messages": 48, "bot_messages": 24,
                                                            "thumbs_up": 17, "thumbs_down": 3}))
