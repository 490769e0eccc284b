"""Offline batch work with a model folder: one lock around every load, refusal of half-loaded models, replies that
say whether they were cut, and likelihoods of given replies."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from transformers import AutoModelForCausalLM

from organic.generate import GenerationSettings
from organic.generate.batch import generate_replies, reply_likelihoods, reply_nll
from organic.generate.loading import check_loaded, load_causal_lm


def test_loads_from_eight_threads_run_one_at_a_time_and_stay_tied(tiny_model_dir, monkeypatch):
    real = AutoModelForCausalLM.from_pretrained.__func__
    inside, most = [0], [0]
    guard = threading.Lock()

    def counting(cls, *args, **kwargs):
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.05)  # widen the window in which an unlocked load would overlap another
        try:
            return real(cls, *args, **kwargs)
        finally:
            with guard:
                inside[0] -= 1

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", classmethod(counting))
    models, errors = [], []

    def load():
        try:
            models.append(load_causal_lm(tiny_model_dir, "cpu")[0])
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(models) == 8
    assert most[0] == 1  # never two loads at once
    for model in models:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # still tied
        assert all(p.device.type == "cpu" for p in model.parameters())


def test_a_model_left_on_meta_is_refused_with_a_way_out(tiny_model_dir):
    model, _ = load_causal_lm(tiny_model_dir, "cpu")
    model.lm_head.weight = torch.nn.Parameter(torch.empty_like(model.lm_head.weight, device="meta"))
    with pytest.raises(RuntimeError, match=r"lm_head.weight.*organic model prepare"):
        check_loaded(model, tiny_model_dir)
    with pytest.raises(FileNotFoundError, match="organic model prepare"):
        load_causal_lm(tiny_model_dir.parent / "nowhere")


def test_replies_say_how_many_tokens_and_whether_they_were_cut(tiny_model_dir):
    contexts = [[{"role": "user", "content": "Hello there"}], [{"role": "user", "content": "How are you doing today?"}]]
    short = generate_replies(tiny_model_dir, contexts, GenerationSettings(max_new_tokens=3, do_sample=False))
    longer = generate_replies(tiny_model_dir, contexts, GenerationSettings(max_new_tokens=6, do_sample=False))
    for s, l in zip(short, longer):
        assert s.tokens <= 3 and s.cut == (s.tokens == 3)
        if s.cut:  # greedy: the longer reply continues the shorter one
            assert l.text.startswith(s.text) and l.tokens > 3
    sampled = [generate_replies(tiny_model_dir, contexts, GenerationSettings(max_new_tokens=5, seed=7)) for _ in range(2)]
    assert sampled[0] == sampled[1]  # the seed makes sampling reproducible


def test_likelihoods_add_up_and_an_empty_context_scores_the_reply_alone(tiny_model_dir):
    contexts = [[{"role": "user", "content": "Hello there"}], []]
    scores = reply_likelihoods(tiny_model_dir, contexts, ["hi", "hi"])
    assert [(s.nll, s.tokens) for s in scores] == reply_nll(tiny_model_dir, contexts, ["hi", "hi"])
    for s in scores:
        assert s.tokens >= 2 and 0 < s.end_nll <= s.nll and 0 <= s.worst <= s.nll
    assert scores[0].nll != pytest.approx(scores[1].nll)  # the context changes the likelihood


def test_likelihoods_carry_the_reply_state_from_the_same_pass_when_asked(tiny_model_dir):
    import torch

    contexts = [[{"role": "user", "content": "Hello there"}], [{"role": "user", "content": "What is your name?"}]]
    plain = reply_likelihoods(tiny_model_dir, contexts, ["hi", "I am Sam."])
    with_state = reply_likelihoods(tiny_model_dir, contexts, ["hi", "I am Sam."], state_layer=2)
    assert all(s.state is None for s in plain)
    assert [s[:4] for s in with_state] == pytest.approx([s[:4] for s in plain])  # the same pass, the same likelihoods
    assert all(len(s.state) == 16 for s in with_state)  # the tiny model is 16 wide
    # the mean over the reply's tokens (and its end of turn) of the last layer's output, worked out by hand
    model, tokenizer = load_causal_lm(tiny_model_dir)
    from organic.examples import IGNORE_INDEX, tokenize_example

    row = tokenize_example(tokenizer, contexts[1], "I am Sam.", -1, 512)
    with torch.no_grad():
        hidden = model(input_ids=torch.tensor([row["input_ids"]]), output_hidden_states=True).hidden_states[2][0]
    reply = torch.tensor(row["labels"]) != IGNORE_INDEX
    assert with_state[1].state == pytest.approx(hidden[reply].mean(0).tolist(), abs=1e-5)
