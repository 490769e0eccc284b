"""Bad input is reported with file and line, skipped or stops the import, and loses nothing accepted."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from support import FIXTURES, both_databases
from organic.cli import app
from organic.formats.ingest import import_bb3x
from organic.store.read import count_conversations, iter_conversations

BAD = FIXTURES / "bb3x_bad_lines.jsonl"


@both_databases
def test_bad_lines_are_reported_and_skipped(engine):
    report = import_bb3x(engine, [BAD], batch_size=1)
    assert [(e.path.name, e.line) for e in report.errors] == [(BAD.name, 2), (BAD.name, 3), (BAD.name, 4)]
    assert "malformed JSON" in report.errors[0].message
    assert "message_history.0.text" in report.errors[1].message and "string" in report.errors[1].message
    assert "unknown sender 'robot'" in report.errors[2].message
    assert sorted(c.external_id for c in iter_conversations(engine)) == ["c-001", "c-002"]


@both_databases
def test_stop_on_error_keeps_what_came_before(engine):
    report = import_bb3x(engine, [BAD], stop_on_error=True)  # one big batch: the good line is still written
    assert report.stopped and len(report.errors) == 1 and report.errors[0].line == 2
    assert [c.external_id for c in iter_conversations(engine)] == ["c-001"]


@pytest.mark.parametrize("line, message", [
    ('[1, 2]', "expected a JSON object"),
    ('{"user_pseudo_id": "u", "message_history": []}', "convo_id"),
    ('{"user_pseudo_id": "u", "convo_id": "c", "message_history": [{"text": "x", "sender": "bot", "isLiked": "yes"}]}', "isLiked"),
    ('{"user_pseudo_id": "u", "convo_id": "c", "message_history": [{"text": "x", "sender": "bot", "isLiked": true, "isDisliked": true}]}', "both liked and disliked"),
    ('{"user_pseudo_id": "u", "convo_id": "c", "message_history": [{"text": "x", "sender": "bot", "isDisliked": true, "dislike_type": "boring"}]}', "unknown DislikeReason 'boring'"),
    ('{"user_pseudo_id": "u", "convo_id": "c", "message_history": [{"text": "x", "sender": "bot", "previous_interaction_failure": "oops"}]}', "previous_interaction_failure"),
    ('{"user_pseudo_id": "u", "convo_id": "c", "message_history": [{"text": "x", "sender": "bot", "mturk": {"great": 1}}]}', "unknown CrowdLabel 'great'"),
])
def test_each_kind_of_bad_line_says_what_is_wrong(engine, tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    report = import_bb3x(engine, [path])
    assert len(report.errors) == 1 and report.errors[0].line == 1
    assert message in report.errors[0].message
    assert count_conversations(engine) == 0


def test_cli_exits_non_zero_when_lines_were_skipped(database_url):
    result = CliRunner().invoke(app, ["import", "bb3x", str(BAD), "--database-url", database_url])
    assert result.exit_code == 1
    assert f"{BAD}:2: malformed JSON" in result.output and f"{BAD}:4:" in result.output
    assert "imported 2 conversations" in result.output
    clean = CliRunner().invoke(app, ["import", "bb3x", str(FIXTURES / "bb3x_sample.jsonl"), "--database-url", database_url])
    assert clean.exit_code == 0, clean.output
    assert "imported 4 conversations" in clean.output and "2 already in the store" in clean.output


def test_cli_missing_file_is_a_clear_error(database_url, tmp_path):
    result = CliRunner().invoke(app, ["import", "bb3x", str(tmp_path / "nope.jsonl"), "--database-url", database_url])
    assert result.exit_code == 2 and "no such file or folder" in result.output
