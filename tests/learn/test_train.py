"""`organic train`: CRINGE and the TRL baselines on the same data, on a tiny random Llama."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from organic.examples import Example
from organic.learn.train import TrainConfig, _dataset, train
from tiny_models import tiny_llama_folder, word_tokenizer

USER = [{"role": "user", "content": "what is the capital of australia"}]


def data(pairs: bool = True) -> list[Example]:
    out = [
        Example(USER, "canberra is the capital", 1, "c1", "u1", "thumb"),
        Example(USER, "sydney is the capital", 0, "c2", "u2", "thumb"),
        Example([{"role": "user", "content": "hello how are you"}], "fine thanks", 1, "c3", "u3", "thumb"),
        Example([{"role": "user", "content": "hello how are you"}], "go away", 0, "c4", "u4", "thumb"),
    ]
    if pairs:  # a disliked reply and the user's answer in one conversation: a DPO pair
        out += [Example(USER, "sydney", 0, "c5", "u5", "thumb"), Example(USER, "canberra", 1, "c5", "u5", "feedback")]
    return out


def weights(folder):
    model = AutoModelForCausalLM.from_pretrained(folder)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("method", ["cringe", "sft", "kto", "dpo"])
def test_each_method_trains_and_saves_a_servable_model(method, tmp_path):
    base = tiny_llama_folder(tmp_path / "base")
    metrics = train(method, data(), base, tmp_path / "out", TrainConfig(max_steps=2, batch_size=2, learning_rate=1e-2))
    assert metrics["steps"] == 2 and metrics["examples"] > 0
    before, after = weights(base), weights(tmp_path / "out")
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before), "no weight changed"
    saved = json.loads((tmp_path / "out" / "organic_training.json").read_text())
    assert saved["method"] == method and saved["base"] == str(base)


@pytest.mark.parametrize("method", ["cringe", "sft"])
def test_lora_trains_an_adapter_and_saves_the_merged_model(method, tmp_path):
    base = tiny_llama_folder(tmp_path / "base")
    train(method, data(), base, tmp_path / "out", TrainConfig(max_steps=2, batch_size=2, learning_rate=5e-2, lora=True, lora_rank=4))
    before, after = weights(base), weights(tmp_path / "out")
    assert before.keys() == after.keys()  # merged: a plain model, no adapter keys
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all("proj" in k for k in changed)  # only the adapted linear layers moved
    assert torch.equal(before["model.embed_tokens.weight"], after["model.embed_tokens.weight"])


def test_missing_data_is_a_clear_error(tmp_path):
    base = tiny_llama_folder(tmp_path / "base")
    with pytest.raises(ValueError, match="no training data for dpo"):
        train("dpo", data(pairs=False), base, tmp_path / "out", TrainConfig(max_steps=1))
    with pytest.raises(ValueError, match="unknown method"):
        train("ppo", data(), base, tmp_path / "out")


def test_cringe_rows_carry_each_example_label():
    # a bad reply labelled good would turn CRINGE into SFT on disliked replies: the label must reach the row
    examples = data() + [Example(USER, "no idea", -1, "c6", "u6", "none")]
    rows = _dataset("cringe", examples, word_tokenizer(), TrainConfig())
    assert rows["example_label"] == [1, 0, 1, 0, 0, 1]  # in order; unlabelled replies are not CRINGE rows
