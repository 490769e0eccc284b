"""``evaluate_models`` end to end on tiny random Llamas: replies, labels, Table 9, perplexity, reward, report files;
and the held-out contexts read from the store."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from organic.evaluate.run import (
    evaluate_models,
    held_out_contexts,
    mcnemar,
    perplexity,
    render_table,
    resolve_models,
    write_eval_report,
)
from organic.evaluate.judge import assess
from organic.examples import Example
from organic.learn.reward import RewardConfig, RewardModel
from organic.taxonomy import CrowdLabel
from support import FIXTURES
from synthetic_judge import small_judge
from tiny_models import tiny_llama_folder

CONTEXTS = [
    [{"role": "user", "content": "hello how are you"}],
    [{"role": "user", "content": "what is the capital of australia"}],
    [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "go away"}],
]
GOOD = [([{"role": "user", "content": "how are you"}], "fine thanks"),
        ([{"role": "user", "content": "what is the capital of australia"}], "canberra")]


@pytest.fixture(scope="module")
def reward() -> RewardModel:
    context = [{"role": "user", "content": "how are you"}]
    rows = [("I am fine, thanks for asking!", 1), ("Doing well, and you?", 1), ("Great, thank you.", 1),
            ("go away", 0), ("the the the the", 0), ("asdf qwer", 0)]
    return RewardModel.of(RewardConfig()).fit([Example(context, reply, label, f"c{i}", "u", "thumb") for i, (reply, label) in enumerate(rows)])


def test_two_identical_models_get_identical_results(tmp_path, reward):
    first = tiny_llama_folder(tmp_path / "a", seed=0)
    second = shutil.copytree(first, tmp_path / "b")
    seen = []
    results = evaluate_models({"a": first, "b": second}, CONTEXTS, GOOD, reward, judge=small_judge(), max_new_tokens=4,
                              progress=seen.append)
    assert sum(seen) == 2 * len(CONTEXTS)
    a, b = results["models"]["a"], results["models"]["b"]
    assert len(a["replies"]) == len(CONTEXTS) and a["replies"] == b["replies"]  # the same seed for every model
    assert a["labels"] == b["labels"] and a["p_bad"] == b["p_bad"]
    assert all(CrowdLabel.parse(label) for label in a["labels"]) and all(0 <= p <= 1 for p in a["p_bad"])
    assert a["breakdown"]["n"] == 3 and sum(a["breakdown"][c.value]["count"] for c in CrowdLabel) == 3
    g = a["guards"]
    assert math.isfinite(g["perplexity_human"]) and g["perplexity_human"] > 1 and g["perplexity_human"] == pytest.approx(b["guards"]["perplexity_human"])
    assert g["perplexity_tokens"] == 3 + 2  # "fine thanks" + EOS, "canberra" + EOS
    assert g["words"]["mean"] == pytest.approx(sum(len(r.split()) for r in a["replies"]) / 3)
    assert g["cut"]["n"] == 3 and 0 <= g["copied_from_user"]["mean"] <= 1
    assert a["paired"] is None and b["paired"]["against"] == "a"
    assert b["paired"]["fixed"] == b["paired"]["broken"] == 0 and b["paired"]["p_value"] == 1.0  # identical verdicts
    assert 0 <= a["reward"]["mean_p_good"] <= 1 and a["reward"]["judged_good"]["n"] == 3
    assert results["contexts"] == CONTEXTS and results["human_replies"] == 2

    other = tiny_llama_folder(tmp_path / "c", seed=1)
    assert perplexity(other, GOOD)[0] != pytest.approx(g["perplexity_human"])  # different weights, different fluency
    assert perplexity(other, []) == (None, 0)

    json_path, md_path = write_eval_report(results, tmp_path / "report")
    assert json.loads(json_path.read_text())["models"]["a"]["replies"] == a["replies"]
    table = md_path.read_text()
    assert render_table(results) in table
    assert "| Model | n | Good |" in table and "| Words | Copied | Cut % | PPL human |" in table
    rows = [line for line in table.splitlines() if line.startswith("| a |") or line.startswith("| b |")]
    assert len(rows) == 2 and f"{g['perplexity_human']:.2f}" in rows[0] and f"{a['reward']['mean_p_good']:.3f}" in rows[0]
    assert "+0.0 [+0.0, +0.0], p=1" in rows[1]


def test_mcnemar_against_hand_counts():
    before = [True] * 10 + [False] * 10
    after = [False] * 8 + [True] * 2 + [False] * 9 + [True]  # 8 fixed, 1 broken
    result = mcnemar(before, after, "base", "new")
    assert (result["fixed"], result["broken"], result["n"]) == (8, 1, 20)
    assert result["bad_rate_change"] == pytest.approx(-35.0)  # 10/20 bad -> 3/20 bad
    assert result["p_value"] == pytest.approx(2 * (1 + 9) / 2**9)  # two-sided exact binomial, 1 of 9
    low, high = result["ci95"]
    assert low < -35.0 < high < 0
    with pytest.raises(ValueError, match="same contexts"):
        mcnemar([True], [True, False])


def test_without_reward_or_human_replies_those_columns_stay_empty(tmp_path):
    folder = tiny_llama_folder(tmp_path / "a")
    results = evaluate_models({"only": folder}, CONTEXTS[:1], [], None, judge=small_judge(), max_new_tokens=2)
    model = results["models"]["only"]
    assert model["reward"] is None and model["guards"]["perplexity_human"] is None
    assert set(model["seconds"]) == {"generate", "judge", "perplexity"} and min(model["seconds"].values()) >= 0
    results["crowd_agreement"] = assess([CrowdLabel.GOOD, CrowdLabel.REPEATING], [CrowdLabel.GOOD, CrowdLabel.OTHER])
    _, md_path = write_eval_report(results, tmp_path / "report")
    report = md_path.read_text()
    assert [line for line in report.splitlines() if line.startswith("| only |")][0].endswith("|  |  |  |")
    assert "On 2 bot replies with a crowd majority label: good/bad kappa 1.0, recall on bad 1.0" in report
    assert "Seconds per model (generate / judge / perplexity): only " in report


def test_held_out_contexts_come_from_held_out_conversations(engine):
    from organic.formats.ingest import import_bb3x

    import_bb3x(engine, [FIXTURES / "bb3x_sample.jsonl"])
    everything = held_out_contexts(engine, share=1.0, limit=100)
    assert everything.contexts and all(c[-1]["role"] == "user" for c in everything.contexts)
    assert len({json.dumps(c) for c in everything.contexts}) == len(everything.contexts)
    assert ([{"role": "user", "content": "Hi! I just got back from hiking in the Alps."}],
            "That sounds amazing! Which trail did you take?") in everything.good  # a thumbs up
    crowd_only = held_out_contexts(engine, share=1.0, sources=("crowd",))
    assert crowd_only.contexts == everything.contexts and all(pair in everything.good for pair in crowd_only.good)
    assert len(crowd_only.good) < len(everything.good)
    contexts, good, conversations = held_out_contexts(engine, share=0.0)
    assert contexts == [] and good == [] and conversations == set()
    assert len(held_out_contexts(engine, share=1.0, limit=1).contexts) == 1
    one_each = held_out_contexts(engine, share=1.0, per_conversation=1)  # spread over conversations
    assert len(one_each.contexts) == len(one_each.conversations) == len(everything.conversations) < len(everything.contexts)


def test_models_are_named_from_the_command_line(tmp_path, engine):
    from organic.store.versions import register_version

    folder = tiny_llama_folder(tmp_path / "tiny")
    (folder / "VERSION").write_text("tiny-v1\n")
    register_version(engine, "registered", path=str(folder))
    home = tmp_path / "home"
    assert resolve_models([str(folder)], engine, home) == {"tiny-v1": folder}
    assert resolve_models(["mine=" + str(folder), "registered"], engine, home) == {"mine": folder, "registered": folder}
    with pytest.raises(ValueError, match="both named"):
        resolve_models([str(folder), str(folder)], engine, home)
    with pytest.raises(FileNotFoundError, match="unknown model"):
        resolve_models([str(tmp_path / "missing")], engine, home)


def test_cli_eval_writes_table9_for_each_model(database_url, tmp_path):
    from typer.testing import CliRunner

    from organic.cli import app
    from support import FIXTURES
    from tiny_models import tiny_llama_folder

    small_judge(tmp_path / "judge")
    runner = CliRunner()
    assert runner.invoke(app, ["import", "bb3x", str(FIXTURES / "bb3x_sample.jsonl"), "--database-url", database_url]).exit_code == 0
    a, b = tiny_llama_folder(tmp_path / "a", seed=0), tiny_llama_folder(tmp_path / "b", seed=1)
    result = runner.invoke(app, ["eval", "--model", f"first={a}", "--model", f"second={b}", "--held-out-share", "1",
                                 "--contexts", "4", "--max-new-tokens", "4", "--out", str(tmp_path / "eval"),
                                 "--judge", str(tmp_path / "judge"), "--human-replies", "3", "--database-url", database_url])
    assert result.exit_code == 0, result.output
    assert "first" in result.output and "second" in result.output
    assert (tmp_path / "eval" / "eval.json").is_file() and (tmp_path / "eval" / "eval.md").is_file()
    none = runner.invoke(app, ["eval", "--model", f"x={a}", "--held-out-share", "0", "--judge", str(tmp_path / "judge"),
                               "--database-url", database_url])
    assert none.exit_code == 2 and "no held-out contexts" in none.output
