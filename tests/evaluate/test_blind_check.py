"""scripts/blind_check.py: blind items hide the model, the key maps them back, and the score puts the bad rate by
reading next to the judge's on the same replies. The labels here are test data, not judgements of real replies."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "scripts" / "blind_check.py"


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_blind_items_hide_the_model_and_the_score_pairs_reading_with_the_judge(tmp_path):
    contexts = [[{"role": "user", "content": f"question {i}"}] for i in range(6)]
    models = {"base": {"replies": [f"base reply {i}" for i in range(6)], "labels": ["nonsensical"] * 6},
              "tuned": {"replies": [f"tuned reply {i}" for i in range(6)], "labels": ["good"] * 6}}
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "eval.json").write_text(json.dumps({"contexts": contexts, "models": models}))
    assert "not in the eval" in run("make", tmp_path, "--models", "base", "nope").stderr
    made = run("make", tmp_path, "--models", "base", "tuned", "--n", "4")
    assert made.returncode == 0, made.stderr
    items = [json.loads(line) for line in (tmp_path / "blind" / "items.jsonl").read_text().splitlines()]
    key = json.loads((tmp_path / "blind" / "key.json").read_text())
    assert len(items) == 8 and set(items[0]) == {"id", "context", "reply"}  # no model name in what readers see
    assert {key[i["id"]]["model"] for i in items} == {"base", "tuned"}
    assert "no labels yet" in run("score", tmp_path).stderr
    with (tmp_path / "blind" / "labels.jsonl").open("w") as f:  # reading says: base bad on 3 of 4, tuned on 1
        for item in items:
            where = key[item["id"]]
            bad = where["model"] == "base" and where["context"] != min(k["context"] for k in key.values())
            bad = bad or (where["model"] == "tuned" and where["context"] == max(k["context"] for k in key.values()))
            f.write(json.dumps({"id": item["id"], "label": "repeating" if bad else "good", "labeller": "test"}) + "\n")
    scored = run("score", tmp_path)
    assert scored.returncode == 0, scored.stderr
    report = json.loads((tmp_path / "blind" / "report.json").read_text())
    assert report["contexts"] == 4
    assert report["models"]["base"]["read_bad"]["count"] == 3 and report["models"]["base"]["judged_bad"]["count"] == 4
    assert report["models"]["tuned"]["read_bad"]["count"] == 1 and report["models"]["tuned"]["judged_bad"]["count"] == 0
    assert report["models"]["tuned"]["paired_by_reading"]["bad_rate_change"] == -50.0


def test_score_refuses_labels_for_unknown_items(tmp_path):
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "eval.json").write_text(json.dumps({"contexts": [[{"role": "user", "content": "hi"}]],
                                                               "models": {"a": {"replies": ["x"], "labels": ["good"]}}}))
    assert run("make", tmp_path, "--models", "a").returncode == 0
    (tmp_path / "blind" / "labels.jsonl").write_text(json.dumps({"id": "forged", "label": "good"}) + "\n")
    assert "unknown id 'forged'" in run("score", tmp_path).stderr
    [item] = [json.loads(line) for line in (tmp_path / "blind" / "items.jsonl").read_text().splitlines()]
    twice = json.dumps({"id": item["id"], "label": "good"}) + "\n"
    (tmp_path / "blind" / "labels.jsonl").write_text(twice * 2)
    assert "a second label" in run("score", tmp_path).stderr
    (tmp_path / "blind" / "labels.jsonl").write_text(twice)
    results = json.loads((tmp_path / "eval" / "eval.json").read_text())
    results["models"]["a"]["replies"] = ["not what was read"]
    (tmp_path / "eval" / "eval.json").write_text(json.dumps(results))
    assert "differ from those that were read" in run("score", tmp_path).stderr


def test_fold_adds_read_items_to_the_labelled_set_once_split_by_conversation(tmp_path):
    opener = {"role": "user", "content": "hello there"}
    contexts = [[opener, {"role": "assistant", "content": "hi"}, {"role": "user", "content": f"question {i}"}] for i in range(3)]
    contexts.append([{"role": "user", "content": "another chat"}])
    models = {"base": {"replies": [f"reply {i}" for i in range(4)], "labels": ["good"] * 4}}
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "eval.json").write_text(json.dumps({"contexts": contexts, "models": models, "settings": {"max_new_tokens": 32}}))
    into = tmp_path / "set"
    into.mkdir()
    (into / "items.jsonl").write_text(json.dumps({"id": "old", "conversation": "c", "split": "train", "context": [], "reply": "x",
                                                  "source": {"model": "human"}}) + "\n")
    (into / "labels.jsonl").write_text(json.dumps({"id": "old", "label": "good", "labeller": "a"}) + "\n")
    assert run("make", tmp_path, "--models", "base", "--n", "4").returncode == 0
    assert "no labels yet" in run("fold", tmp_path, "--into", into).stderr
    key = json.loads((tmp_path / "blind" / "key.json").read_text())
    (tmp_path / "blind" / "labels.jsonl").write_text("".join(json.dumps({"id": i, "label": "nonsensical", "labeller": "reader-1"}) + "\n"
                                                             for i in key))
    for _ in range(2):  # a second fold adds nothing
        folded = run("fold", tmp_path, "--into", into)
        assert folded.returncode == 0, folded.stderr
    items = [json.loads(line) for line in (into / "items.jsonl").read_text().splitlines()]
    labels = [json.loads(line) for line in (into / "labels.jsonl").read_text().splitlines()]
    assert len(items) == 5 and len(labels) == 5 and items[0]["id"] == "old"
    new = [i for i in items if i["id"] != "old"]
    assert all(i["source"] == {"model": "base", "run": tmp_path.name, "max_new_tokens": 32} for i in new)
    shared = {(i["conversation"], i["split"]) for i in new if i["context"][0] == opener}
    assert len(shared) == 1  # one opening message: one conversation, one split
    assert {row["labeller"] for row in labels[1:]} == {"reader-1"} and all(row["pass"] == 1 for row in labels[1:])


def test_a_second_check_reads_only_what_the_first_did_not_and_both_score_together(tmp_path):
    contexts = [[{"role": "user", "content": f"question {i}"}] for i in range(4)]
    models = {m: {"replies": [f"{m} reply {i}" for i in range(4)], "labels": ["good"] * 4} for m in ("base", "tuned")}
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "eval.json").write_text(json.dumps({"contexts": contexts, "models": models}))
    assert run("make", tmp_path, "--models", "base", "--n", "2").returncode == 0
    assert "no blind check to exclude" in run("make", tmp_path, "--models", "base", "--folder", "b2", "--exclude", "nope").stderr
    made = run("make", tmp_path, "--models", "base", "tuned", "--n", "4", "--folder", "b2", "--exclude", "blind")
    assert made.returncode == 0, made.stderr
    first = json.loads((tmp_path / "blind" / "key.json").read_text())
    second = json.loads((tmp_path / "b2" / "key.json").read_text())
    pairs = lambda key: {(w["model"], w["context"]) for w in key.values()}  # noqa: E731
    assert not pairs(first) & pairs(second) and pairs(first) | pairs(second) == {(m, i) for m in models for i in range(4)}
    for folder, key in (("blind", first), ("b2", second)):  # reading says: base bad everywhere, tuned nowhere
        (tmp_path / folder / "labels.jsonl").write_text("".join(
            json.dumps({"id": i, "label": "nonsensical" if w["model"] == "base" else "good", "labeller": "t"}) + "\n"
            for i, w in key.items()))
    scored = run("score", tmp_path, "--folder", "b2", "--with", "blind")
    assert scored.returncode == 0, scored.stderr
    report = json.loads((tmp_path / "b2" / "report.json").read_text())
    assert report["contexts"] == 4 and report["models"]["base"]["read_bad"]["count"] == 4
    assert report["models"]["tuned"]["read_bad"]["count"] == 0
