"""The learned judge: its signals, fitting and persistence, agreement figures worked out by hand, the labelled set's
integrity, and ``organic judge`` on a small file with malformed lines."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from organic.cli import app
from organic.evaluate import labelled
from organic.evaluate.judge import Judge, assess, fit, parse_line, tune_threshold
from organic.evaluate.signals import LM_NAMES, NAMES, signals, text_signals
from organic.taxonomy import CrowdLabel as L
from synthetic_judge import small_judge, synthetic

RESULTS = Path(__file__).parents[2] / "docs" / "results"
HIKE = [{"role": "user", "content": "I just got back from a long hike in the mountains."}]


def test_text_signals_see_copying_cut_off_and_boilerplate():
    parrot = text_signals(HIKE, "I just got back from a long hike in the mountains")
    assert parrot["user_trigram_share"] == 1.0 and parrot["echo_question"] == 1.0 and parrot["unfinished"] == 1.0
    answer = text_signals(HIKE, "That sounds wonderful! Which trail did you take?")
    assert answer["user_trigram_share"] == 0.0 and answer["unfinished"] == 0.0 and answer["questions"] == 1.0
    assert answer["sentences"] == 2.0 and answer["boilerplate"] == 0.0
    assert text_signals(HIKE, "Hello! How can I assist you today?")["boilerplate"] == 1.0
    assert text_signals(HIKE, "I love hiking. I love hiking. I love hiking.")["rep3"] == pytest.approx(1 - 3 / 7)


def test_signals_without_a_reference_model_leave_likelihood_empty():
    x = signals([HIKE, HIKE], ["Which trail did you take?", "Taxes are due in April."])
    assert x.shape == (2, len(NAMES))
    lm = [NAMES.index(n) for n in LM_NAMES]
    assert np.isnan(x[:, lm]).all() and not np.isnan(np.delete(x, lm, axis=1)).any()
    sim = NAMES.index("sim_last")
    assert x[0, sim] > x[1, sim]  # the answer is closer to the hike than tax talk is


def test_fit_learns_the_deciding_signals_and_round_trips(tmp_path):
    x, labels = synthetic(600, 0)
    judge = fit(x, labels, c=1.0)
    assert not judge.uses_lm and judge.reference is None  # likelihood columns were empty, so they are dropped
    dev_x, dev_labels = synthetic(300, 1)
    tune_threshold(judge, dev_x, dev_labels)
    weights = judge.weights()
    top = max(((n, w) for g in weights.values() for n, w in g.items()), key=lambda kv: kv[1])[0]
    assert top in ("user_trigram_share", "sim_last")
    test_x, test_labels = synthetic(300, 2)
    verdicts = judge.verdicts_of(test_x)
    result = assess(test_labels, [v.label for v in verdicts])
    assert result["kappa_binary"] > 0.5  # chance is 0; two thresholds on two signals are not linear in P(bad)
    for category in ("repeating", "ignoring_last_turn"):  # caught, and then given the right category
        caught = result["categories"][category]
        assert caught["recall_bad"] > 0.6 and caught["recall_exact"] >= caught["recall_bad"] - 0.1
    again = Judge.load(tmp_path / "j") if judge.save(tmp_path / "j") else None
    assert [v.label for v in again.verdicts_of(test_x)] == [v.label for v in verdicts]
    np.testing.assert_allclose(again.p_bad_of(test_x), judge.p_bad_of(test_x))


def test_an_offensive_reply_judged_bad_is_inappropriate():
    x, labels = synthetic(400, 3)
    judge = fit(x, labels)
    row = x[[labels.index(L.REPEATING)]].copy()
    row[0, NAMES.index("offensive")] = 1.0
    assert judge.verdicts_of(row)[0].label is L.INAPPROPRIATE


def test_assess_against_hand_counts():
    truth = [L.GOOD] * 6 + [L.NONSENSICAL] * 2 + [L.REPEATING] * 2
    judged = [L.GOOD] * 5 + [L.OFF_TOPIC] + [L.NONSENSICAL, L.GOOD] + [L.REPEATING, L.NONSENSICAL]
    a = assess(truth, judged)
    # good/bad table: both bad 3, both good 5, judge-only bad 1, read-only bad 1: po = 0.8, pe = 0.4*0.4 + 0.6*0.6 = 0.52
    assert a["kappa_binary"] == pytest.approx((0.8 - 0.52) / 0.48, abs=1e-3)
    assert a["recall_bad"] == 0.75 and a["precision_bad"] == 0.75
    assert a["labelled_bad"]["count"] == 4 and a["judged_bad"]["count"] == 4
    assert a["categories"]["nonsensical"] == {"n": 2, "recall_bad": 0.5, "recall_exact": 0.5}
    assert a["categories"]["repeating"] == {"n": 2, "recall_bad": 1.0, "recall_exact": 0.5}


@pytest.mark.parametrize("line, message", [
    ("{not json", "not JSON"),
    ('["a list"]', "expected a JSON object"),
    ('{"context": []}', "reply: expected a string"),
    ('{"context": "hi", "reply": "x"}', "context: expected a list"),
    ('{"context": [{"role": "bot", "content": "hi"}], "reply": "x"}', r"context\[0\]"),
])
def test_parse_line_says_what_is_wrong(line, message):
    with pytest.raises(ValueError, match=message):
        parse_line(line)


@pytest.fixture
def judge_folder(tmp_path):
    small_judge(tmp_path / "judge")
    return tmp_path / "judge"


def test_judge_command_judges_good_lines_and_reports_bad_ones(tmp_path, judge_folder):
    lines = [
        json.dumps({"id": "a", "context": HIKE, "reply": "Which trail did you take?"}),
        "{broken",
        json.dumps({"id": "b", "context": HIKE + [{"role": "assistant", "content": "Nice!"}, {"role": "user", "content": "Do you hike?"}],
                    "reply": "I do, mostly on weekends."}),
        json.dumps({"id": "c", "context": [{"role": "robot", "content": "x"}], "reply": "y"}),
        "",
        json.dumps({"id": "d", "context": [], "reply": ""}),
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(app, ["judge", str(source), "--out", str(out), "--model", str(judge_folder)])
    assert result.exit_code == 1, result.output
    assert f"{source}:2: not JSON" in result.output and f"{source}:4: context[0]" in result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", "d"]
    assert all(L.parse(r["label"]) and 0.0 <= r["p_bad"] <= 1.0 and "context" in r for r in rows)

    clean = tmp_path / "clean.jsonl"
    clean.write_text(lines[0] + "\n")
    ok = CliRunner().invoke(app, ["judge", str(clean), "--out", str(out), "--model", str(judge_folder)])
    assert ok.exit_code == 0, ok.output and len(out.read_text().splitlines()) == 1


def test_judge_command_explains_a_missing_file_or_judge(tmp_path):
    missing = CliRunner().invoke(app, ["judge", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o")])
    assert missing.exit_code == 2 and "is not a file" in missing.output
    (tmp_path / "in.jsonl").write_text("{}\n")
    no_judge = CliRunner().invoke(app, ["judge", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "o"), "--model", str(tmp_path)])
    assert no_judge.exit_code == 2 and "organic judge train" in no_judge.output


# the committed labelled set and shipped judge ----------------------------------------------------------------
def test_labelled_set_is_whole_split_by_conversation_and_reserved():
    items = labelled.load()
    rows = [json.loads(line) for line in labelled.ITEMS.read_text().splitlines()]
    labels = [json.loads(line) for line in labelled.LABELS.read_text().splitlines()]
    assert len(items) >= 800 and {r["id"] for r in labels} <= {r["id"] for r in rows}
    assert all(r["labeller"] and r["pass"] in (1, 2) for r in labels)
    assert Counter(i.split for i in items)["test"] >= 250
    splits_of = {}
    for item in items:
        splits_of.setdefault(item.conversation, set()).add(item.split)
        assert item.split == labelled.split_of(item.conversation)
        if "run" in item.source:  # read in a blind check of that run (scripts/blind_check.py fold)
            assert item.conversation.startswith(item.source["run"] + ":") and (RESULTS / item.source["run"] / "blind").is_dir()
        else:  # made for the set from the conversations the simulator never draws
            assert labelled.reserved(item.conversation)
    assert all(len(s) == 1 for s in splits_of.values())
    assert sum(i.second is not None for i in items) >= 100
    train = {i.conversation for i in items if i.split == "train"}
    halves = Counter(labelled.half_of(c) for c in train)  # the simulated people's judge and the evaluator's, apart
    assert set(halves) == {"rater", "evaluator"} and 0.4 < halves["rater"] / len(train) < 0.6
    assert {"base", "human", "cringe", "sft", "kto"} <= {i.model for i in items}


@pytest.mark.slow
def test_shipped_judge_loads_offline_and_reports_its_agreement(prepared_home, monkeypatch):
    monkeypatch.setenv("ORGANIC_HOME", str(prepared_home))
    from organic.settings import get_settings

    get_settings.cache_clear()
    judge = Judge.shipped()
    assert judge.info["test"]["all"]["n"] >= 250
    verdicts = judge.judge([HIKE, HIKE], ["That sounds lovely! Where did you go?", "I just got back from a long hike in the"])
    assert all(isinstance(v.label, L) and 0.0 <= v.p_bad <= 1.0 for v in verdicts)


def test_a_judge_that_reads_model_states_refuses_a_model_of_another_width(tiny_model_dir):
    from organic.evaluate.signals import GROUPS

    x, labels = synthetic(300, 5)
    x[:, [NAMES.index(n) for n in GROUPS["state"]]] = np.random.default_rng(0).normal(size=(300, len(GROUPS["state"])))
    judge = fit(x, labels, reference="tiny")
    assert judge.uses_lm and judge.reference == "tiny"
    rows = signals([HIKE], ["Which trail?"], reference_model=tiny_model_dir)  # 16 wide, not 576: no states
    assert np.isnan(rows[0, [NAMES.index(n) for n in GROUPS["state"]]]).all()
    assert not np.isnan(rows[0, NAMES.index("nll_context")])  # the likelihoods are still measured
    with pytest.raises(ValueError, match="another width"):
        judge.judge([HIKE], ["Which trail?"], reference_model=tiny_model_dir)


def test_item_signals_compute_only_what_the_cache_lacks(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from organic.evaluate import judge as module

    calls = []

    def fake_signals(contexts, replies, reference_model=None):
        calls.append(list(replies))
        return np.array([[float(len(r))] * len(NAMES) for r in replies])

    monkeypatch.setattr(module, "signals", fake_signals)
    cache = tmp_path / "cache.npz"
    items = [SimpleNamespace(id=str(n), context=HIKE, reply="x" * n) for n in range(1, 4)]
    first = module.item_signals(items[:2], None, cache)
    both = module.item_signals(items, None, cache)
    assert calls == [["x", "xx"], ["xxx"]]  # the third item alone was computed the second time
    np.testing.assert_array_equal(both[:2], first)
    assert both[2, 0] == 3.0
    module.item_signals(list(reversed(items)), None, cache)
    assert len(calls) == 2  # everything cached, in any order


def test_train_judge_chooses_on_train_and_dev_and_reports_test_per_writer(tmp_path, monkeypatch):
    from organic.evaluate import judge as module

    x, labels = synthetic(360, 6)
    splits = ["train"] * 200 + ["dev"] * 80 + ["test"] * 80
    items = [labelled.Item(str(n), f"c{n // 2}", splits[n], HIKE, f"reply {n}", {"model": "base" if n % 3 else "kto"},
                           label, "test-reader", None) for n, label in enumerate(labels)]
    rows = {f"reply {n}": row for n, row in enumerate(x)}
    monkeypatch.setattr(module, "signals", lambda contexts, replies, reference_model=None: np.array([rows[r] for r in replies]))
    report = module.train_judge(tmp_path / "j", items=items, use_lm=False)
    assert report["chosen"]["fitted_on"] == {"train": 200, "dev": 80, "test": 80}
    assert {c["signals"] for c in report["candidates"]} == {"without the reference model"}  # no model: nothing else tried
    assert report["test"]["all"]["learned judge"]["kappa_binary"] > 0.3  # chance is 0
    by_model = report["test_by_model"]
    assert set(by_model) == {"base", "kto"} and by_model["base"]["n"] + by_model["kto"]["n"] == 80
    text = (tmp_path / "j" / "report.md").read_text()
    assert "| kto |" in text and "without the reference model" in text
    assert Judge.load(tmp_path / "j").info["test"]["all"]["n"] == 80
    rater = module.train_judge(tmp_path / "r", items=items, use_lm=False, part="rater")
    fitted = {i.conversation for i in items if i.split == "train" and labelled.half_of(i.conversation) == "rater"}
    assert rater["chosen"]["fitted_on"] == {"train": 2 * len(fitted), "dev": 80, "test": 80} and 0 < len(fitted) < 100
