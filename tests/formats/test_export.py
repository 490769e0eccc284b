"""Exports: the flat table (JSONL, Parquet, HF datasets), TRL training sets, filters, deletion, release."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pyarrow.parquet as pq
import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from support import FIXTURES, both_databases
from organic.cli import app
from organic.formats.export import export
from organic.formats.ingest import import_bb3x
from organic.formats.rows import SCHEMA, write_parquet
from organic.store import Conversation, User
from organic.store.read import Filters, count_conversations, iter_conversations
from organic.store.users import delete_user, list_users


@pytest.fixture
def filled(engine):
    import_bb3x(engine, [FIXTURES / "bb3x_sample.jsonl"], allow_release=True)  # the public release: its users agreed
    return engine


def jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_flat_jsonl_and_parquet_hold_the_same_rows(filled, tmp_path):
    export(filled, "jsonl", tmp_path / "m.jsonl")
    export(filled, "parquet", tmp_path / "m.parquet")
    rows = jsonl(tmp_path / "m.jsonl")
    table = pq.read_table(tmp_path / "m.parquet")
    assert table.schema.names == SCHEMA.names and table.num_rows == len(rows) == 18
    assert table.column("text").to_pylist() == [r["text"] for r in rows]
    wrong = next(r for r in rows if r["text"] == "The capital of Australia is Sydney.")
    assert (wrong["is_disliked"], wrong["dislike_type"], wrong["sender"]) == (True, "nonsensical", "bot")
    first_bot = next(r for r in rows if r["conversation_id"] == "c-001" and r["sender"] == "bot")
    assert json.loads(first_bot["crowd_labels"]) == {"good": 2, "off_topic": 1}
    assert json.loads(first_bot["traces"])["search_query"] == "alps hiking trails"


def test_the_parquet_writer_batches_rows_and_writes_an_empty_table_for_none(tmp_path):
    rows = [{"conversation_id": "c", "position": i, "text": str(i)} for i in range(5)]
    assert write_parquet(tmp_path / "some.parquet", iter(rows), batch_rows=2) == 5
    assert pq.read_table(tmp_path / "some.parquet").column("position").to_pylist() == [0, 1, 2, 3, 4]
    assert write_parquet(tmp_path / "none.parquet", iter([])) == 0
    empty = pq.read_table(tmp_path / "none.parquet")
    assert empty.num_rows == 0 and empty.schema == SCHEMA


def test_hf_export_is_a_dataset_dict_by_split(filled, tmp_path):
    from datasets import load_from_disk

    with filled.begin() as conn:
        conn.execute(update(Conversation).where(Conversation.external_id == "c-002").values(split="test"))
        conn.execute(update(Conversation).where(Conversation.external_id != "c-002").values(split="train"))
    mine = tmp_path / "hf.parts"  # a folder of the user's that happens to have the staging folder's old name
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    export(filled, "hf", tmp_path / "hf")
    data = load_from_disk(str(tmp_path / "hf"))
    assert sorted(data) == ["test", "train"]
    assert data["test"].num_rows == 5 and data["train"].num_rows == 13
    assert set(data["test"]["conversation_id"]) == {"c-002"}
    assert (mine / "notes.txt").read_text() == "keep me"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".hf.parts-")]  # no staging left behind


def test_trl_training_sets(filled, tmp_path):
    for fmt in ("sft", "kto", "dpo"):
        export(filled, fmt, tmp_path / f"{fmt}.jsonl")
    sft, kto, dpo = (jsonl(tmp_path / f"{f}.jsonl") for f in ("sft", "kto", "dpo"))
    # positives: two liked replies, the crowd-Good first reply, the user's own answer; canned replies never appear
    replies = [row["messages"][-1]["content"] for row in sft]
    assert "You're right, it's Canberra. Thanks for teaching me!" in replies
    assert "Canberra is the capital, not Sydney." in replies  # the answer to "what should I have said?"
    assert not any("talk about music" in r for r in replies)
    assert all(row["messages"][-1]["role"] == "assistant" and row["messages"][0]["role"] == "user" for row in sft)
    labels = {row["completion"][0]["content"]: row["label"] for row in kto}
    assert labels["The capital of Australia is Sydney."] is False
    assert labels["That sounds amazing! Which trail did you take?"] is True
    assert not any(text.startswith("Hey, do you want to talk") for text in labels)
    assert dpo == [{
        "prompt": [{"role": "user", "content": "What's the capital of Australia?"}],
        "chosen": [{"role": "assistant", "content": "Canberra is the capital, not Sydney."}],
        "rejected": [{"role": "assistant", "content": "The capital of Australia is Sydney."}],
    }]


@both_databases
def test_filters(filled):
    with filled.begin() as conn:
        old = datetime(2022, 9, 1, tzinfo=timezone.utc)
        conn.execute(update(Conversation).where(Conversation.external_id.in_(["c-001", "c-002"])).values(created_at=old, split="test"))
        conn.execute(update(User).where(User.pseudo_id == "u-bob").values(allow_release=False, save_conversations=True))
    ids = lambda **kw: sorted(c.external_id for c in iter_conversations(filled, Filters(**kw)))  # noqa: E731
    assert ids(splits=["test"]) == ["c-001", "c-002"]
    assert ids(until=datetime(2023, 1, 1, tzinfo=timezone.utc)) == ["c-001", "c-002"]
    assert ids(since=datetime.now(timezone.utc) - timedelta(days=1)) == ["c-003", "c-004", "c-005", "c-006"]
    assert ids(consent="release") == ["c-001", "c-003", "c-004", "c-005", "c-006"]
    assert ids(model_version="blenderbot3-175b") == []  # imported without a version name
    assert ids(model_version="nope") == []
    with pytest.raises(ValueError, match="unknown consent filter"):
        ids(consent="maybe")


def test_model_version_filter(engine):
    import_bb3x(engine, [FIXTURES / "bb3x_sample.jsonl"], model_version="bb3-175b")
    import_bb3x(engine, [FIXTURES / "bb3x_snake_case.jsonl"], model_version="bb3x-175b")
    assert [c.external_id for c in iter_conversations(engine, Filters(model_version="bb3x-175b"))] == ["c-007"]
    convo = next(iter_conversations(engine, Filters(model_version="bb3x-175b")))
    assert [m.model_version for m in convo.messages] == [None, "bb3x-175b"]


@both_databases
def test_deleted_user_is_gone_from_store_exports_and_later_imports(filled, tmp_path):
    assert delete_user(filled, "u-bob") == 1
    export(filled, "bb3x", tmp_path / "after.jsonl")
    assert "u-bob" not in (tmp_path / "after.jsonl").read_text()
    assert "Canberra" not in (tmp_path / "after.jsonl").read_text()
    report = import_bb3x(filled, [FIXTURES / "bb3x_sample.jsonl"])
    assert report.counts.deleted == 1 and report.counts.conversations == 0
    assert count_conversations(filled) == 5
    assert delete_user(filled, "nobody") is None


def test_cli_export_and_user_delete(database_url, tmp_path):
    runner = CliRunner()
    assert runner.invoke(app, ["import", "bb3x", str(FIXTURES / "bb3x_sample.jsonl"), "--database-url", database_url]).exit_code == 0
    out = tmp_path / "train.parquet"
    result = runner.invoke(app, ["export", "--format", "parquet", "--out", str(out), "--database-url", database_url])
    assert result.exit_code == 0, result.output
    assert pq.read_table(out).num_rows == 18
    bad = runner.invoke(app, ["export", "--format", "xml", "--out", str(out), "--database-url", database_url])
    assert bad.exit_code == 2 and "unknown format 'xml'" in bad.output
    bad = runner.invoke(app, ["export", "--split", "dev", "--out", str(out), "--database-url", database_url])
    assert bad.exit_code == 2 and "unknown split dev" in bad.output
    deleted = runner.invoke(app, ["user", "delete", "u-alice", "--database-url", database_url])
    assert deleted.exit_code == 0 and "1 conversations removed" in deleted.output
    again = runner.invoke(app, ["user", "delete", "u-alice", "--database-url", database_url])
    assert again.exit_code == 1 and "no user 'u-alice'" in again.output


@both_databases
def test_release_takes_consented_users_scrubs_pii_and_writes_a_data_card(engine, tmp_path):
    source = tmp_path / "pii.jsonl"
    convo = {"user_pseudo_id": "u-zoe", "convo_id": "c-pii", "message_history": [
        {"text": "Hi, my name is Jessica Miller and my email is jess.miller@example.com", "sender": "human"},
        {"text": "Nice to meet you! Do you like Taylor Swift?", "sender": "bot",
         "memories": {"partner's persona": ["My name is Jessica Miller."]}},
        {"text": "Call me at (555) 123-4567, I live at 42 Maple Street.", "sender": "human"},
    ]}
    source.write_text(json.dumps(convo) + "\n")
    import_bb3x(engine, [source], allow_release=True)
    import_bb3x(engine, [FIXTURES / "bb3x_sample.jsonl"])  # release is opt-in: these users are saved, not released
    out = tmp_path / "release.jsonl"
    summary = export(engine, "bb3x", out, release=True, salt=b"fixed salt for the test")
    released = jsonl(out)
    assert len(released) == 1 and released[0]["convo_id"] != "c-pii"  # the other users did not allow release
    text = out.read_text()
    for secret in ("Jessica", "Miller", "jess.miller@example.com", "123-4567", "Maple", "u-zoe"):
        assert secret not in text, secret
    assert "Taylor Swift" in text and "[PII:" in text and " Street" in text
    assert released[0]["user_pseudo_id"] != "u-zoe"
    assert summary.pii["email"] == 1 and summary.pii["phone"] == 1 and summary.pii["name"] >= 2
    card = (tmp_path / "release.jsonl.DATA_CARD.md").read_text()
    assert "CC BY 4.0" in card and "1 conversations, 3 messages" in card and "allow public release" in card
    with pytest.raises(ValueError, match="drop --consent"):
        export(engine, "bb3x", out, Filters(consent="saved"), release=True)


@both_databases
def test_consent_travels_through_an_export_and_a_reimport(engine, tmp_path, database_url):
    """A backup restore must not publish a user who only chose "save": the BB3x export carries each user's
    consent and the import keeps it; a line without it is never released unless --allow-release asserts it."""
    from organic.store import connect

    import_bb3x(engine, [FIXTURES / "bb3x_sample.jsonl"], allow_release=True)
    with engine.begin() as conn:
        conn.execute(update(User).where(User.pseudo_id == "u-bob").values(allow_release=False, save_conversations=True))
    backup = tmp_path / "backup.jsonl"
    export(engine, "bb3x", backup)
    assert all(line["organic_consent"]["age_confirmed"] for line in jsonl(backup))
    restored = connect(f"sqlite:///{tmp_path / 'restored.db'}")
    import_bb3x(restored, [backup], allow_release=True)  # even when asserting release for lines without a record
    users = {u.pseudo_id: u for u in list_users(restored)}
    assert users["u-bob"].allow_release is False and users["u-bob"].save_conversations is True
    assert users["u-alice"].allow_release is True
    out = tmp_path / "release.jsonl"
    export(restored, "bb3x", out, release=True, salt=b"salt")
    released = jsonl(out)  # ids are re-hashed in a release: bob's conversation is told by its size and text
    assert len(released) == 5 and "Canberra" not in out.read_text()  # bob's conversation is not released
    public = connect(f"sqlite:///{tmp_path / 'public.db'}")
    import_bb3x(public, [FIXTURES / "bb3x_sample.jsonl"])  # no consent record, nothing asserted: saved, not released
    assert not any(u.allow_release for u in list_users(public)) and all(u.save_conversations for u in list_users(public))


def test_a_malformed_consent_record_is_refused(tmp_path):
    from organic.formats.bb3x import parse_conversation

    line = json.loads((FIXTURES / "bb3x_sample.jsonl").read_text().splitlines()[0])
    for bad in ({"allow_release": "yes"}, {"age_confirmed": True, "save_conversations": False, "allow_release": True}, []):
        with pytest.raises(ValueError, match="organic_consent"):
            parse_conversation(line | {"organic_consent": bad})


ORIGINAL_IDS = ["u-orig-7c1e", "c-orig-5a9d3f", "h-orig-11aa", "b-orig-22bb", "h-orig-misplaced",
                31337001, 42424201, 90909001, 80808001]


def _values(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _values(v)
    elif isinstance(value, list):
        for v in value:
            yield from _values(v)
    else:
        yield value


@both_databases
def test_release_rehashes_conversation_and_message_ids(engine, tmp_path):
    """No user, conversation or message id of the store survives into a release, in any format, not even an
    integer id or an id filed under the other sender's name; within a release one id maps to one hash."""
    source = tmp_path / "ids.jsonl"
    lines = [
        {"user_pseudo_id": "u-orig-7c1e", "convo_id": "c-orig-5a9d3f", "message_history": [
            {"text": "hello", "sender": "human", "human_message_id": "h-orig-11aa"},
            {"text": "hi there", "sender": "bot", "bot_message_id": "b-orig-22bb"}]},
        {"user_pseudo_id": 31337001, "convo_id": 42424201, "message_history": [
            {"text": "ids can be numbers", "sender": "human", "human_message_id": 90909001},
            {"text": "fine", "sender": "bot", "bot_message_id": 80808001, "human_message_id": "h-orig-misplaced"}]},
    ]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    import_bb3x(engine, [source], allow_release=True)
    backup = tmp_path / "backup.jsonl"
    export(engine, "bb3x", backup)  # not a release: the ids are the store's, as a backup needs them
    assert "c-orig-5a9d3f" in backup.read_text() and "80808001" in backup.read_text()

    salt = b"fixed salt for the id test"
    for fmt in ("bb3x", "jsonl"):
        out = tmp_path / f"release.{fmt}.jsonl"
        export(engine, fmt, out, release=True, salt=salt)
        lines_out = out.read_text(encoding="utf-8").splitlines()
        assert lines_out
        for line in lines_out:
            for original in ORIGINAL_IDS:
                assert str(original) not in line, (fmt, original)
            assert not set(_values(json.loads(line))) & set(ORIGINAL_IDS)

    convos, rows = jsonl(tmp_path / "release.bb3x.jsonl"), jsonl(tmp_path / "release.jsonl.jsonl")
    assert {c["convo_id"] for c in convos} == {r["conversation_id"] for r in rows}
    assert all(re.fullmatch(r"[0-9a-f]{16}", c["convo_id"]) for c in convos)
    message_ids = [r["message_id"] for r in rows]
    assert len(set(message_ids)) == len(message_ids) == 4
    bb3x_ids = {m.get("bot_message_id") or m.get("human_message_id") for c in convos for m in c["message_history"]}
    assert set(message_ids) <= bb3x_ids  # the same message has the same hash in both formats

    again = tmp_path / "again.jsonl"
    export(engine, "jsonl", again, release=True, salt=b"another release")
    assert not {r["conversation_id"] for r in jsonl(again)} & {r["conversation_id"] for r in rows}
