"""BB3x -> store -> BB3x gives back every field of every message, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from support import FIXTURES, both_databases
from organic.formats.bb3x import TRACE_KEYS, to_bb3x
from organic.formats.export import export
from organic.formats.ingest import import_bb3x
from organic.store import Annotation, Conversation, Feedback, Message, User
from organic.store.read import iter_conversations

SNAKE_TO_CAMEL = {
    "is_liked": "isLiked", "is_disliked": "isDisliked", "is_safety_controlled_response": "isSafetyControlledResponse",
    "is_dislike_feedback": "isDislikeFeedback", "chat_id": "convo_id",
}
SENDERS = {"Human": "human", "Chatbot": "bot"}


def normalise(convo: dict) -> dict:
    """Key spelling is allowed to change (snake_case -> camelCase); values are not."""
    out = {SNAKE_TO_CAMEL.get(k, k): v for k, v in convo.items()}
    out["message_history"] = [
        {SNAKE_TO_CAMEL.get(k, k): (SENDERS.get(v, v) if k == "sender" else v) for k, v in m.items()}
        for m in convo["message_history"]
    ]
    return out


def lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def assert_same_fields(original: dict, exported: dict) -> None:
    original = normalise(original)
    for key, value in original.items():
        if key != "message_history":
            assert exported[key] == value, key
    assert len(exported["message_history"]) == len(original["message_history"])
    for i, (before, after) in enumerate(zip(original["message_history"], exported["message_history"])):
        for key, value in before.items():
            assert key in after, f"message {i}: field {key} lost"
            assert after[key] == value, f"message {i}: field {key}: {after[key]!r} != {value!r}"


@both_databases
@pytest.mark.parametrize("fixture", ["bb3x_sample.jsonl", "bb3x_snake_case.jsonl"])
def test_round_trip_gives_back_every_field(engine, tmp_path, fixture):
    source = FIXTURES / fixture
    report = import_bb3x(engine, [source])
    assert not report.errors
    out = tmp_path / "out.jsonl"
    export(engine, "bb3x", out)
    originals, exported = lines(source), lines(out)
    assert [c["convo_id"] for c in exported] == [normalise(c)["convo_id"] for c in originals]
    for before, after in zip(originals, exported):
        assert_same_fields(before, after)


@both_databases
def test_exported_messages_have_the_whole_schema(engine, tmp_path):
    import_bb3x(engine, [FIXTURES / "bb3x_sample.jsonl"])
    out = tmp_path / "out.jsonl"
    export(engine, "bb3x", out)
    minimal = next(c for c in lines(out) if c["convo_id"] == "c-004")  # only text and sender were given
    human, bot = minimal["message_history"]
    assert {"human_message_id", "isDislikeFeedback", "safety", "reward", "mturk"} <= human.keys()
    assert {"bot_message_id", "isLiked", "isDisliked", "dislike_type", "isSafetyControlledResponse",
            "previous_interaction_failure", "from_model_crash", *TRACE_KEYS} <= bot.keys()
    assert bot["isLiked"] is False and bot["from_model_crash"] is False and bot["memories"] is None


@both_databases
def test_import_is_idempotent(engine):
    first = import_bb3x(engine, [FIXTURES / "bb3x_sample.jsonl"])
    second = import_bb3x(engine, [FIXTURES / "bb3x_sample.jsonl"])
    assert first.counts.conversations == 6 and first.counts.messages == 18
    assert second.counts.conversations == 0 and second.counts.existing == 6
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Conversation)).scalar_one() == 6
        assert conn.execute(select(func.count()).select_from(Message)).scalar_one() == 18
        assert conn.execute(select(func.count()).select_from(User)).scalar_one() == 6
        assert conn.execute(select(func.count()).select_from(Annotation)).scalar_one() == 6


@both_databases
def test_feedback_rows_and_flags(engine):
    import_bb3x(engine, [FIXTURES / "bb3x_sample.jsonl"])
    with Session(engine) as conn:
        rows = conn.execute(
            select(Message.text, Feedback.thumb, Feedback.reason, Feedback.feedback_message_id)
            .join(Feedback, Feedback.message_id == Message.id).order_by(Message.id)
        ).all()
        by_text = {r.text: r for r in rows}
        wrong = by_text["The capital of Australia is Sydney."]
        assert (wrong.thumb, wrong.reason) == ("down", "nonsensical")
        answer = conn.execute(select(Message).where(Message.id == wrong.feedback_message_id)).scalar_one()
        assert answer.text == "Canberra is the capital, not Sydney." and answer.is_dislike_feedback
        canned = conn.execute(select(Message).where(Message.previous_interaction_failure.is_not(None))
                              .order_by(Message.id)).scalars().all()
        assert [m.previous_interaction_failure for m in canned] == ["unsafe_Human", "unsafe_BlenderBot3", "unsafe_model_crash"]
        assert all(m.is_safety_controlled_response for m in canned)
        assert [m.from_model_crash for m in canned] == [False, False, True]
        assert {by_text[m.text].reason for m in canned if m.text in by_text} == {"agree_sensitive", "disagree_sensitive"}


@both_databases
def test_split_from_release_chunk_names(engine, tmp_path):
    folder = tmp_path / "release"
    folder.mkdir()
    sample = (FIXTURES / "bb3x_sample.jsonl").read_text(encoding="utf-8").splitlines()
    for number, line in [(0, sample[0]), (4, sample[1]), (57, sample[2])]:
        (folder / f"release_data_{number:02d}.jsonl").write_text(line + "\n", encoding="utf-8")
    import_bb3x(engine, [folder])
    splits = {c.external_id: c.split for c in iter_conversations(engine)}
    assert splits == {"c-001": "test", "c-002": "valid", "c-003": "train"}


def test_to_bb3x_uses_canonical_sender_names():
    from organic.formats.bb3x import parse_conversation

    record = parse_conversation(lines(FIXTURES / "bb3x_snake_case.jsonl")[0])
    assert [m["sender"] for m in to_bb3x(record)["message_history"]] == ["human", "bot"]
