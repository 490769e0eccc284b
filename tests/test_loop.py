"""`organic loop` end to end at toy size: a tiny random Llama, a handful of simulated people."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from organic.cli import app
from tiny import tiny_llama_folder


def test_loop_runs_every_stage_and_writes_one_report(tmp_path, monkeypatch):
    import organic.simulate.run as run
    from organic.taxonomy import CrowdLabel

    # the helpers' judge: a reply is good when it has "good" in it (the tiny model's words are random)
    monkeypatch.setattr(run, "_default_judge", lambda: lambda context, reply: CrowdLabel.GOOD if "good" in reply else CrowdLabel.NONSENSICAL)
    base = tiny_llama_folder(tmp_path / "base")
    result = CliRunner().invoke(app, [
        "loop", "--out", str(tmp_path / "loop"), "--model", str(base), "--users", "16", "--troll-share", "0.25",
        "--turns", "2", "--rating-rate", "1", "--iterations", "2", "--baseline", "sft", "--max-steps", "1",
        "--batch-size", "4", "--max-new-tokens", "6", "--eval-contexts", "4",
    ])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "loop" / "loop.json").read_text())
    assert summary["simulation"]["people"] == 16 and summary["simulation"]["trolls"] == 4
    assert set(summary["eval"]["models"]) == {"base", "cringe-it1", "cringe-it2", "cringe-unfiltered", "sft"}
    for model in summary["eval"]["models"].values():
        assert model["breakdown"]["n"] == len(model["replies"]) > 0
    report = (tmp_path / "loop" / "README.md").read_text()
    assert "cringe-it2" in report and "Troll detection" in report
    assert (tmp_path / "loop" / "analysis" / "report.html").is_file()
