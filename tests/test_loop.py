"""`organic loop` end to end at toy size: a tiny random Llama, a handful of simulated people."""

from __future__ import annotations

import functools
import json

from typer.testing import CliRunner

from organic.cli import app
from tiny import tiny_llama_folder


def test_loop_runs_every_stage_and_writes_one_report(tmp_path, monkeypatch):
    import organic.loop as loop
    from judging import small_judge

    # small judges that need no reference model: the tiny model's words are random anyway
    small_judge(tmp_path / "rater", seed=1)
    small_judge(tmp_path / "evaluator", seed=2)
    # and a reward-model gate no reward model passes: the loop must fall back to one iteration and say why
    monkeypatch.setattr(loop, "LoopConfig", functools.partial(loop.LoopConfig, rater_judge=tmp_path / "rater",
                                                              evaluator_judge=tmp_path / "evaluator", min_reward_auc=1.01))
    base = tiny_llama_folder(tmp_path / "base")
    result = CliRunner().invoke(app, [
        "loop", "--out", str(tmp_path / "loop"), "--model", str(base), "--users", "16", "--troll-share", "0.25",
        "--turns", "2", "--rating-rate", "1", "--iterations", "2", "--baseline", "sft", "--max-steps", "1",
        "--batch-size", "4", "--max-new-tokens", "6", "--eval-contexts", "4",
    ])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "loop" / "loop.json").read_text())
    assert summary["simulation"]["people"] == 16 and summary["simulation"]["trolls"] == 4
    assert set(summary["eval"]["models"]) == {"base", "cringe-it1", "cringe-unfiltered", "sft"}  # it2 refused by the gate
    assert "under the gate of 1.01" in summary["notes"]["reward_gate"]
    for model in summary["eval"]["models"].values():
        assert model["breakdown"]["n"] == len(model["replies"]) > 0
    report = (tmp_path / "loop" / "README.md").read_text()
    assert "cringe-it1" in report and "Troll detection" in report and "two instruments, not one" in report
    assert "Note: the reward model's held-out ROC AUC" in report
    assert summary["eval"]["raters_vs_evaluator"]["n"] == sum(len(m["replies"]) for m in summary["eval"]["models"].values())
    assert all(m["guards"]["perplexity_human"] > 1 for m in summary["eval"]["models"].values())
    assert (tmp_path / "loop" / "analysis" / "report.html").is_file()
