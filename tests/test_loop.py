"""`organic loop` end to end at toy size: a tiny random Llama, a handful of simulated people."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from typer.testing import CliRunner

from organic.cli import app
from tiny_models import tiny_llama_folder

FIXTURES = Path(__file__).parent / "fixtures"


def test_loop_runs_every_stage_and_writes_one_report(tmp_path, monkeypatch, tiny_model_dir):
    import organic.loop as loop
    import organic.simulate.run as simulation
    from synthetic_judge import small_judge

    # small judges that need no reference model: the tiny model's words are random anyway
    small_judge(tmp_path / "rater", seed=1, name="rater")
    small_judge(tmp_path / "evaluator", seed=2, name="evaluator")
    rated_by = []  # the judge the simulated people rate with: the rater, never the evaluator
    real_rater = simulation.judge_rater
    monkeypatch.setattr(simulation, "judge_rater", lambda judge: rated_by.append(judge.info["name"]) or real_rater(judge))
    # and a reward-model gate no reward model passes: the loop must fall back to one iteration and say why
    monkeypatch.setattr(loop, "LoopConfig", functools.partial(loop.LoopConfig, rater_judge=tmp_path / "rater",
                                                              evaluator_judge=tmp_path / "evaluator", min_reward_auc=1.01))
    result = CliRunner().invoke(app, [
        "loop", "--out", str(tmp_path / "loop"), "--model", str(tiny_model_dir), "--users", "16", "--troll-share", "0.25",
        "--turns", "2", "--rating-rate", "1", "--iterations", "2", "--baseline", "sft", "--max-steps", "1",
        "--batch-size", "4", "--max-new-tokens", "6", "--eval-contexts", "4", "--seeds", "2", "--engine", "ct2-int8",
        "--held-out-share", "0.5",  # conversations are held out by a hash of their random ids: at 0.2, none was 1 run in 35
    ])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "loop" / "loop.json").read_text())
    assert summary["simulation"]["people"] == 16 and summary["simulation"]["trolls"] == 4
    # it2 refused by the gate; the second seed's chain is evaluated at its last iteration
    assert set(summary["eval"]["models"]) == {"base", "cringe-it1", "cringe-it1-seed1", "cringe-unfiltered", "sft"}
    assert summary["eval"]["settings"]["engine"] == "ct2-int8" and "engine ct2-int8" in (tmp_path / "loop" / "README.md").read_text()
    assert (tmp_path / "loop" / "models" / "cringe-seed1" / "iteration-1").is_dir()
    assert "under the gate of 1.01" in summary["notes"]["reward_gate"]
    for model in summary["eval"]["models"].values():
        assert model["breakdown"]["n"] == len(model["replies"]) > 0
    report = (tmp_path / "loop" / "README.md").read_text()
    assert "cringe-it1" in report and "Troll detection" in report and "two instruments, not one" in report
    assert "Note: the reward model's held-out ROC AUC" in report
    assert rated_by == ["rater"] and summary["eval"]["judge"]["info"]["name"] == "evaluator"  # two instruments
    assert summary["eval"]["raters_vs_evaluator"]["n"] == sum(len(m["replies"]) for m in summary["eval"]["models"].values())
    assert all(m["guards"]["perplexity_human"] > 1 for m in summary["eval"]["models"].values())
    assert (tmp_path / "loop" / "analysis" / "report.html").is_file()


def test_loop_from_store_learns_from_an_imported_release_without_simulating(tmp_path, monkeypatch):
    import organic.loop as loop
    from synthetic_judge import small_judge
    from organic.store import connect
    from organic.store.read import iter_conversations

    small_judge(tmp_path / "rater", seed=1)
    small_judge(tmp_path / "evaluator", seed=2)
    monkeypatch.setattr(loop, "LoopConfig", functools.partial(loop.LoopConfig, rater_judge=tmp_path / "rater",
                                                              evaluator_judge=tmp_path / "evaluator"))
    url = deployment_store(tmp_path)
    stored = sum(1 for _ in iter_conversations(connect(url)))
    base = tiny_llama_folder(tmp_path / "base")
    args = ["loop", "--out", str(tmp_path / "loop"), "--model", str(base), "--iterations", "1", "--baseline", "sft",
            "--max-steps", "1", "--batch-size", "2", "--max-new-tokens", "4", "--eval-contexts", "3", "--held-out-share", "0.3"]
    refused = CliRunner().invoke(app, [*args, "--from-store"])
    assert refused.exit_code == 2 and "give its --database-url" in refused.output
    result = CliRunner().invoke(app, [*args, "--from-store", "--database-url", url])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "loop" / "loop.json").read_text())
    assert summary["simulation"] is None and not (tmp_path / "loop" / "people.json").exists()
    assert sum(1 for _ in iter_conversations(connect(url))) == stored and summary["analysis"]["conversations"] > 0  # nobody added
    assert set(summary["eval"]["models"]) == {"base", "cringe-it1", "cringe-unfiltered", "sft"}
    assert summary["eval"]["contexts"] and summary["eval_conversations"] >= 1
    assert "From the store: " in (tmp_path / "loop" / "README.md").read_text()
    assert "simulate" not in summary["timings_s"]


def deployment_store(tmp_path: Path) -> str:
    """A SQLite store holding the sample release six times over, as other people's conversations; its URL."""
    from organic.formats.ingest import import_bb3x
    from organic.store import connect

    url = f"sqlite:///{tmp_path / 'deployment.db'}"
    release = tmp_path / "release.jsonl"
    with release.open("w") as f:
        for k in range(6):
            for line in (FIXTURES / "bb3x_sample.jsonl").read_text().splitlines():
                convo = json.loads(line)
                convo["convo_id"], convo["user_pseudo_id"] = f"{convo['convo_id']}-{k}", f"{convo['user_pseudo_id']}-{k}"
                for message in convo["message_history"]:
                    for key in ("human_message_id", "bot_message_id"):
                        if message.get(key):
                            message[key] = f"{message[key]}-{k}"
                f.write(json.dumps(convo) + "\n")
    import_bb3x(connect(url), [release])
    return url


def test_only_conversations_not_held_out_train_and_flagged_users_never_do(tmp_path):
    """What every method and the reward model learn from comes from the training side of the held-out split, and
    the reward model is measured on the held-out side; flagged users' replies train nothing."""
    from organic.examples import held_out
    from organic.loop import LoopConfig, reward_labels, training_examples
    from organic.store import connect

    engine, config = connect(deployment_store(tmp_path)), LoopConfig(held_out_share=0.3, seed=0)
    train = training_examples(engine, config)
    fit, measured = reward_labels(engine, config, set())
    assert train and fit and measured
    assert not any(held_out(e.conversation_id, 0.3, 0) for e in train + fit)
    assert all(held_out(e.conversation_id, 0.3, 0) for e in measured)
    flagged = {train[0].user_pseudo_id, fit[-1].user_pseudo_id}
    kept = training_examples(engine, config, flagged) + reward_labels(engine, config, flagged)[0]
    assert kept and flagged.isdisjoint(e.user_pseudo_id for e in kept)


def test_loop_from_an_empty_store_says_there_is_nothing_to_learn_from(tmp_path):
    base = tiny_llama_folder(tmp_path / "base")
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = CliRunner().invoke(app, ["loop", "--out", str(tmp_path / "loop"), "--model", str(base), "--from-store",
                                      "--database-url", url])
    assert result.exit_code == 2 and "no bot replies to learn from" in result.output


def test_loop_without_held_out_conversations_stops_before_training(tmp_path):
    from organic.formats.ingest import import_bb3x
    from organic.store import connect

    url = f"sqlite:///{tmp_path / 'store.db'}"
    import_bb3x(connect(url), [FIXTURES / "bb3x_sample.jsonl"])
    result = CliRunner().invoke(app, ["loop", "--out", str(tmp_path / "loop"), "--model", str(tiny_llama_folder(tmp_path / "base")),
                                      "--from-store", "--database-url", url, "--held-out-share", "0.000001"])
    assert result.exit_code == 2 and "no held-out conversation to evaluate on" in result.output, result.output
    assert not (tmp_path / "loop" / "models").exists()  # nothing was trained for a table that could not be made


def test_loop_refuses_an_unknown_engine_or_no_seeds(tmp_path):
    for args, message in ((["--engine", "vllm-magic"], "unknown engine 'vllm-magic'"), (["--seeds", "0"], "at least 1")):
        result = CliRunner().invoke(app, ["loop", "--out", str(tmp_path / "loop"), *args])
        assert result.exit_code == 2 and message in result.output, result.output
