"""Iterative CRINGE as BB3x ran it: several sampled candidates per context, labelled by the reward model with the
safety layer's veto, at most 2 copies of a positive over the whole set, 50/50, each round from the last checkpoint;
and no round at all with a reward model that cannot tell good from bad."""

from __future__ import annotations

import math

import numpy as np
import pytest

from organic.examples import Example
from organic.generate.base import Reply
from organic.learn import iterate
from organic.learn.iterate import iterate_cringe, label_replies
from organic.learn.reward import RewardConfig, evaluate
from organic.learn.train import TrainConfig
from tiny_models import tiny_llama_folder

CONTEXTS = [[{"role": "user", "content": text}] for text in ("hello how are you", "what is the capital of australia", "hi there")]
DATA = [Example(c, reply, label, f"c{i}{label}", "u", "thumb")
        for i, c in enumerate(CONTEXTS) for reply, label in (("fine thanks", 1), ("go away", 0))]
ABUSE = "you are a stupid idiot"


class StubReward:
    """A reward model with fixed opinions: ``good(i, reply)`` says which replies are good (p 0.9, else 0.1)."""

    def __init__(self, good):
        self.good, self.config = good, RewardConfig()

    def predict_proba(self, contexts, replies):
        return np.array([0.9 if self.good(i, r) else 0.1 for i, r in enumerate(replies)])


def test_each_iteration_samples_candidates_from_the_last_checkpoint_and_trains_from_it(tmp_path, monkeypatch):
    base = tiny_llama_folder(tmp_path / "base")
    trained_from, generated_by, metrics = [], [], {}
    real_train, real_generate = iterate.train, iterate.generate_replies

    def train(method, data, start, out, config):
        trained_from.append(start)
        return real_train(method, data, start, out, config)

    def generate(folder, contexts, settings, engine):
        generated_by.append((folder, len(contexts), settings.seed, engine))
        return real_generate(folder, contexts, settings, engine=engine)

    monkeypatch.setattr(iterate, "train", train)
    monkeypatch.setattr(iterate, "generate_replies", generate)
    out = tmp_path / "runs"
    folders = iterate_cringe(DATA, base, out, StubReward(lambda i, r: i % 2 == 0), 3,
                             TrainConfig(max_steps=1, batch_size=4, seed=7), reward_auc=0.8,
                             on_iteration=lambda i, folder, m: metrics.setdefault(i, m))
    assert folders == [out / "iteration-1", out / "iteration-2", out / "iteration-3"]
    assert trained_from == [base, out / "iteration-1", out / "iteration-2"]  # never restarted from the base model
    # 3 contexts x 4 candidates, on the engine asked for
    assert generated_by == [(out / "iteration-1", 12, 9, "transformers"), (out / "iteration-2", 12, 10, "transformers")]
    for i in (2, 3):
        m = metrics[i]
        assert m["generated_candidates"] == 12 and m["reward_auc"] == 0.8
        assert 0 < m["generated_good"] and m["generated_examples"] == 2 * m["generated_good"]
    assert metrics[1]["generated_examples"] == 0


def scripted(replies: list[str]):
    """A stand-in for ``generate_replies``: the replies in turn, for every context."""
    def generate(folder, contexts, settings, engine="transformers"):
        return [Reply(replies[i % len(replies)], 3, False) for i in range(len(contexts))]
    return generate


@pytest.fixture
def recorded(monkeypatch):
    """``iterate.train`` replaced by a recorder of (starting folder, data): the selection logic, without training."""
    calls = []

    def train(method, data, start, out, config):
        calls.append((start, list(data)))
        out.mkdir(parents=True)
        return {"train_loss": 0.0, "steps": 1}

    monkeypatch.setattr(iterate, "train", train)
    return calls


def test_candidates_are_capped_across_contexts_vetoed_by_safety_and_balanced(tmp_path, monkeypatch, recorded):
    # each context gets the same 4 candidates: one good reply, one the reward model likes but the safety layer
    # blocks, and two bad ones
    monkeypatch.setattr(iterate, "generate_replies", scripted(["fine thanks", ABUSE, "go away", "the dog the dog"]))
    reward = StubReward(lambda i, r: r in ("fine thanks", ABUSE))
    iterate_cringe(DATA, tmp_path / "base", tmp_path / "runs", reward, 2, TrainConfig(), reward_auc=0.9)
    (_, first), (start, second) = recorded
    assert first == DATA and start == tmp_path / "runs" / "iteration-1"
    new = second[len(DATA):]
    assert second[: len(DATA)] == DATA  # the original data plus the new examples
    positives = [e for e in new if e.label == 1]
    negatives = [e for e in new if e.label == 0]
    # "fine thanks" came 3 times, under 3 different contexts: 2 copies stay
    assert [e.reply for e in positives] == ["fine thanks", "fine thanks"]
    assert len({e.context[0]["content"] for e in positives}) == 2
    assert len(negatives) == 2 and all(e.user_pseudo_id == "generated" and e.source == "reward" for e in new)


def test_the_safety_layer_vetoes_what_the_reward_model_likes():
    replies = ["fine thanks", ABUSE, "", "go away"]
    labelled = label_replies(CONTEXTS[:1] * 4, replies, StubReward(lambda i, r: r != "go away"), iteration=2)
    assert [e.label for e in labelled] == [1, 0, 0, 0]  # abuse and an empty reply are never positives


def test_a_reward_model_under_the_auc_gate_labels_nothing(tmp_path, monkeypatch, recorded):
    monkeypatch.setattr(iterate, "generate_replies", scripted(["fine thanks", "go away"]))
    reward = StubReward(lambda i, r: True)  # calls everything good: chance on any held-out set
    auc = evaluate(reward, DATA)["roc_auc"]
    assert auc == 0.5
    with pytest.raises(ValueError, match=r"ROC AUC is 0\.500, under the gate of 0\.65.*ratings and crowd labels"):
        iterate_cringe(DATA, tmp_path / "base", tmp_path / "runs", reward, 3, reward_auc=auc)
    with pytest.raises(ValueError, match="could not be measured"):
        iterate_cringe(DATA, tmp_path / "base", tmp_path / "runs", reward, 2, reward_auc=math.nan)
    with pytest.raises(ValueError, match=r"under the gate of 0\.80"):
        iterate_cringe(DATA, tmp_path / "base", tmp_path / "runs", reward, 2, reward_auc=0.7, min_reward_auc=0.8)
    assert recorded == []  # refused before anything was trained or labelled
    iterate_cringe(DATA, tmp_path / "base", tmp_path / "one", reward, 1, reward_auc=auc)  # one round labels nothing
    iterate_cringe(DATA, tmp_path / "base", tmp_path / "gate", reward, 2, reward_auc=0.65)
    with pytest.warns(UserWarning, match="not given"):
        iterate_cringe(DATA, tmp_path / "base", tmp_path / "unchecked", reward, 2)
    assert len(recorded) == 5
