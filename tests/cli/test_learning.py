"""`organic train` from the store: one method, then iterative CRINGE registering each iteration as a model version."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from organic.cli import app
from organic.store import ModelVersion, connect
from tiny_models import tiny_llama_folder

GOOD = ["fine thanks", "canberra is the capital", "hello there", "good thanks how are you"]
BAD = ["go away", "sydney is the capital", "bad bad bad", "the dog the dog the dog"]


def fill_store(database_url: str, path) -> None:
    lines = []
    for i in range(24):
        user = ["hello how are you", "what is the capital of australia", "hi there"][i % 3]
        good = i % 2 == 0
        lines.append(json.dumps({"user_pseudo_id": f"u{i}", "convo_id": f"c{i}", "message_history": [
            {"text": user, "sender": "human"},
            {"text": (GOOD if good else BAD)[i % 4], "sender": "bot", "isLiked": good, "isDisliked": not good}]}))
    path.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, ["import", "bb3x", str(path), "--database-url", database_url])
    assert result.exit_code == 0, result.output


def test_train_then_iterate_cringe_registers_versions(database_url, tmp_path):
    fill_store(database_url, tmp_path / "data.jsonl")
    base = tiny_llama_folder(tmp_path / "base")
    runner = CliRunner()
    args = ["--model", str(base), "--max-steps", "1", "--batch-size", "4", "--database-url", database_url]
    sft = runner.invoke(app, ["train", "--method", "sft", "--out", str(tmp_path / "sft"), "--name", "sft-test", *args])
    assert sft.exit_code == 0, sft.output
    assert (tmp_path / "sft" / "VERSION").read_text().strip() == "sft-test"

    reward = runner.invoke(app, ["reward", "train", "--out", str(tmp_path / "rm"), "--database-url", database_url])
    assert reward.exit_code == 0, reward.output
    iterated = runner.invoke(app, ["train", "--method", "cringe", "--iterations", "2", "--name", "cringe",
                                   "--reward-model", str(tmp_path / "rm"), "--contexts-per-iteration", "3",
                                   "--out", str(tmp_path / "cringe"), *args])
    assert iterated.exit_code == 0, iterated.output
    with Session(connect(database_url)) as s:
        versions = {v.name: v for v in s.scalars(select(ModelVersion))}
    first, second = versions["cringe-it1"], versions["cringe-it2"]
    assert second.parent_id == first.id and first.method == "cringe" and first.status == "candidate"
    assert second.metrics["iteration"] == 2 and second.metrics["generated_examples"] % 2 == 0
    assert (tmp_path / "cringe" / "iteration-2" / "VERSION").read_text().strip() == "cringe-it2"
    assert versions["sft-test"].path == str((tmp_path / "sft").resolve())


def test_train_arguments_are_checked(database_url, tmp_path):
    runner = CliRunner()
    bad = runner.invoke(app, ["train", "--method", "ppo", "--database-url", database_url])
    assert bad.exit_code == 2 and "unknown method 'ppo'" in bad.output
    bad = runner.invoke(app, ["train", "--method", "sft", "--iterations", "3", "--database-url", database_url])
    assert bad.exit_code == 2 and "needs --method cringe and --reward-model" in bad.output
    empty = runner.invoke(app, ["train", "--method", "dpo", "--model", str(tiny_llama_folder(tmp_path / "m")),
                                "--database-url", database_url])
    assert empty.exit_code == 2 and "no training data for dpo" in empty.output


def troll_conversations() -> list[str]:
    """Three conversations of a user whose messages are mostly unsafe (what `organic trolls` flags), each with a
    liked reply, a disliked reply and a harmless-looking answer to "what should I have said?"."""
    unsafe = {"duo_safety": "__notok__", "string_matcher": "__ok__"}
    ok = {"duo_safety": "__ok__", "string_matcher": "__ok__"}
    return [json.dumps({"user_pseudo_id": "troll", "convo_id": f"t{k}", "message_history": [
        {"text": "you are garbage", "sender": "human", "safety": unsafe},
        {"text": f"troll liked reply {k}", "sender": "bot", "isLiked": True, "isDisliked": False},
        {"text": "i hate you", "sender": "human", "safety": unsafe},
        {"text": f"troll disliked reply {k}", "sender": "bot", "isLiked": False, "isDisliked": True},
        {"text": f"troll answer {k}", "sender": "human", "safety": ok, "isDislikeFeedback": True}]}) for k in range(3)]


def test_exclude_trolls_leaves_the_flagged_users_examples_out(database_url, tmp_path, monkeypatch):
    import organic.learn.train
    from organic.analyze import trolls

    fill_store(database_url, tmp_path / "data.jsonl")
    (tmp_path / "trolls.jsonl").write_text("\n".join(troll_conversations()) + "\n")
    imported = CliRunner().invoke(app, ["import", "bb3x", str(tmp_path / "trolls.jsonl"), "--database-url", database_url])
    assert imported.exit_code == 0, imported.output
    monkeypatch.setitem(trolls.FEATURIZERS, "minilm", trolls.tfidf)  # the same scoring, on quicker features
    received = []

    def train(method, examples, base, out, config):  # what the CLI hands to training
        received.append(examples)
        out.mkdir(parents=True, exist_ok=True)
        return {"train_loss": 0.0, "steps": 0}

    monkeypatch.setattr(organic.learn.train, "train", train)
    base = tiny_llama_folder(tmp_path / "base")
    args = ["train", "--method", "cringe", "--model", str(base), "--no-balance", "--database-url", database_url]
    for flag in ([], ["--exclude-trolls"]):
        result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / f"out{len(flag)}"), *flag])
        assert result.exit_code == 0, result.output
    everyone, filtered = received
    assert {e.source for e in everyone if e.user_pseudo_id == "troll"} == {"thumb", "feedback"}  # 6 replies, 3 answers
    assert not [e for e in filtered if e.user_pseudo_id == "troll" or e.reply.startswith("troll")]
    assert [e for e in everyone if e.user_pseudo_id != "troll"] == filtered  # no one else is left out
