"""`organic analyze` and `organic trolls` on an imported store."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from organic.cli import app
from support import FIXTURES


def test_analyze_and_trolls_commands(database_url, tmp_path):
    runner = CliRunner()
    assert runner.invoke(app, ["import", "bb3x", str(FIXTURES / "bb3x_sample.jsonl"), "--database-url", database_url]).exit_code == 0
    result = runner.invoke(app, ["analyze", "--out", str(tmp_path / "report"), "--database-url", database_url])
    assert result.exit_code == 0, result.output
    figures = json.loads((tmp_path / "report" / "report.json").read_text())
    assert (figures["conversations"], figures["messages"], figures["thumbs_up"], figures["thumbs_down"]) == (5, 18, 2, 3)
    assert (tmp_path / "report" / "report.html").read_text().count("<img") >= 1
    from_file = runner.invoke(app, ["analyze", "--from", str(FIXTURES / "bb3x_sample.jsonl"), "--out", str(tmp_path / "f")])
    assert from_file.exit_code == 0 and json.loads((tmp_path / "f" / "report.json").read_text())["messages"] == 18
    trolls = runner.invoke(app, ["trolls", "--features", "tfidf", "--out", str(tmp_path / "users.jsonl"), "--database-url", database_url])
    assert trolls.exit_code == 0, trolls.output
    rows = [json.loads(line) for line in (tmp_path / "users.jsonl").read_text().splitlines()]
    assert {r["user"] for r in rows} >= {"u-alice", "u-bob"} and all("why" in r for r in rows)
    bad = runner.invoke(app, ["trolls", "--features", "bert", "--database-url", database_url])
    assert bad.exit_code == 2 and "unknown features" in bad.output
    missing = runner.invoke(app, ["analyze", "--from", str(tmp_path / "nope.parquet"), "--out", str(tmp_path / "x")])
    assert missing.exit_code == 2
