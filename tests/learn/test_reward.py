"""The reward model: learns good vs not good replies in context, reports its metrics, writes BB3x verdicts."""

from __future__ import annotations

import random

import numpy as np
import pytest

from organic.examples import Example, parse_reward
from organic.learn.reward import RewardConfig, RewardModel, evaluate, expected_calibration_error, verdict_string

TOPICS = {
    "hiking": ("I went hiking in the mountains this weekend.", "Which trail did you hike? The mountain views must have been great."),
    "cooking": ("I baked bread for the first time today.", "Homemade bread is the best! Did the dough rise well?"),
    "music": ("I just started learning the guitar.", "Guitar is fun to learn. Which songs are you practising?"),
    "dogs": ("We adopted a puppy from the shelter.", "Congratulations on the puppy! What breed is it?"),
    "football": ("My team won the football match last night.", "What a result! Who scored the winning goal?"),
    "books": ("I'm reading a mystery novel right now.", "Mystery novels are gripping. Have you guessed the culprit yet?"),
    "travel": ("We are planning a trip to Japan.", "Japan is wonderful. Are you visiting Kyoto or Tokyo?"),
    "coffee": ("I drink three cups of coffee every morning.", "That's a lot of coffee! Do you prefer espresso or filter?"),
}
BAD = ["Whatever. I don't care about that.", "Shut up, you are boring.", "The stock market closed at 4pm.",
       "Buy cheap watches at my website now!!!", "asdf qwerty zxcv", "I like turtles. Turtles turtles turtles."]


def dataset(n: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        topic = rng.choice(list(TOPICS))
        user, good = TOPICS[topic]
        if rng.random() < 0.5:
            reply, label = good, 1
        else:  # a bad reply: nonsense, rude, spam, or a good reply to another topic (ignoring the user)
            other = rng.choice([t for t in TOPICS if t != topic])
            reply, label = rng.choice(BAD + [TOPICS[other][1]] * 3), 0
        out.append(Example([{"role": "user", "content": user}], reply, label, f"c{i}", f"u{i}", "thumb"))
    return out


@pytest.fixture(scope="module")
def trained():
    return RewardModel.of(RewardConfig()).fit(dataset(120, seed=0))


def test_embedding_reward_model_learns_from_labels(trained):
    metrics = evaluate(trained, dataset(80, seed=1))
    assert metrics["n"] == 80
    assert metrics["roc_auc"] > 0.9 and metrics["accuracy"] > 0.8
    assert 0 <= metrics["ece"] <= 1 and 0 <= metrics["brier"] <= 0.25


def test_verdicts_are_bb3x_reward_strings(trained):
    user, good = TOPICS["dogs"]
    verdicts = trained.verdicts([[{"role": "user", "content": user}]] * 2, [good, "Buy cheap watches at my website now!!!"])
    assert verdicts[0].startswith("Predicted class: __ok__ with probability: 0.")
    assert verdicts[1].startswith("Predicted class: __notok__ with probability: ")
    ok, p = parse_reward(verdicts[1])
    assert ok is False and 0.5 <= p <= 1


def test_verdict_string_reports_the_predicted_class_probability():
    assert verdict_string(0.93) == "Predicted class: __ok__ with probability: 0.93"
    assert verdict_string(0.2) == "Predicted class: __notok__ with probability: 0.80"
    assert verdict_string(0.6, threshold=0.7) == "Predicted class: __notok__ with probability: 0.40"


def test_save_and_load_give_the_same_probabilities(trained, tmp_path):
    examples = dataset(10, seed=2)
    contexts, replies = [e.context for e in examples], [e.reply for e in examples]
    loaded = RewardModel.load(trained.save(tmp_path / "reward"))
    np.testing.assert_allclose(loaded.predict_proba(contexts, replies), trained.predict_proba(contexts, replies))
    with pytest.raises(FileNotFoundError, match="organic reward train"):
        RewardModel.load(tmp_path / "nothing")


def test_one_class_only_is_a_clear_error():
    examples = [e for e in dataset(30, seed=3) if e.label == 1]
    with pytest.raises(ValueError, match="both good and bad"):
        RewardModel.of(RewardConfig()).fit(examples)


def test_expected_calibration_error_by_hand():
    y = np.array([1, 0, 1, 1])
    p = np.array([0.9, 0.9, 0.2, 0.2])  # two bins: {0.9, 0.9} observed 0.5 -> gap 0.4; {0.2, 0.2} observed 1 -> gap 0.8
    assert expected_calibration_error(y, p, bins=10) == pytest.approx(0.5 * 0.4 + 0.5 * 0.8)


def test_hf_reward_model_trains_a_sequence_classifier(tmp_path):
    """Any Hugging Face sequence-classification folder works; here a tiny random BERT with MiniLM's tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from organic.embeddings import model_path

    tokenizer = AutoTokenizer.from_pretrained(model_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, num_labels=2)
    BertForSequenceClassification(config).save_pretrained(tmp_path / "tiny")
    tokenizer.save_pretrained(tmp_path / "tiny")
    model = RewardModel.of(RewardConfig(kind="hf", model=str(tmp_path / "tiny"), epochs=1)).fit(dataset(24, seed=4))
    p = model.predict_proba([[{"role": "user", "content": "hi"}]] * 3, ["a", "b", "c"])
    assert p.shape == (3,) and ((0 <= p) & (p <= 1)).all()
    reloaded = RewardModel.load(model.save(tmp_path / "saved"))
    np.testing.assert_allclose(reloaded.predict_proba([[{"role": "user", "content": "hi"}]], ["a"]), p[:1], rtol=1e-5)


def test_cli_trains_and_scores_the_store(database_url, tmp_path):
    """`organic reward train` on thumbs from an imported store, then `score` writes verdicts on unrated replies."""
    import json

    from sqlalchemy import select
    from sqlalchemy.orm import Session
    from typer.testing import CliRunner

    from organic.cli import app
    from organic.store import Message, connect

    lines = []
    for i, ex in enumerate(dataset(60, seed=5)):
        bot = {"text": ex.reply, "sender": "bot", "isLiked": ex.label == 1, "isDisliked": ex.label == 0}
        if i % 5 == 0:
            bot = {"text": ex.reply, "sender": "bot"}  # unrated: the reward model will label it
        lines.append(json.dumps({"user_pseudo_id": f"u{i}", "convo_id": f"c{i}", "message_history": [
            {"text": ex.context[0]["content"], "sender": "human"}, bot]}))
    (tmp_path / "data.jsonl").write_text("\n".join(lines) + "\n")
    runner = CliRunner()
    assert runner.invoke(app, ["import", "bb3x", str(tmp_path / "data.jsonl"), "--database-url", database_url]).exit_code == 0
    trained = runner.invoke(app, ["reward", "train", "--out", str(tmp_path / "rm"), "--database-url", database_url])
    assert trained.exit_code == 0, trained.output
    assert "roc_auc" in trained.output and "trained on" in trained.output
    scored = runner.invoke(app, ["reward", "score", "--model", str(tmp_path / "rm"), "--database-url", database_url])
    assert scored.exit_code == 0 and "scored 60 bot replies" in scored.output
    with Session(connect(database_url)) as s:
        rewards = s.scalars(select(Message.reward).where(Message.sender == "bot")).all()
    assert all(r and r.startswith("Predicted class: __") for r in rewards)
    missing = runner.invoke(app, ["reward", "score", "--model", str(tmp_path / "none"), "--database-url", database_url])
    assert missing.exit_code == 2 and "organic reward train" in missing.output
    wrong = runner.invoke(app, ["reward", "train", "--kind", "forest", "--out", str(tmp_path / "rm2"), "--database-url", database_url])
    assert wrong.exit_code == 2 and "unknown kind of reward model 'forest'" in wrong.output
    assert not (tmp_path / "rm2").exists()
