"""Shared fixtures: a tiny random Llama with SmolLM2's tokenizer (``prepared_home`` is in tests/conftest.py)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from organic.generate import BUNDLED_MODEL

torch.set_num_threads(1)  # the test machine's cores are shared


@pytest.fixture(scope="session")
def tiny_model_dir(prepared_home, tmp_path_factory):
    """A randomly initialised 2-layer Llama (hidden size 16) with SmolLM2's real tokenizer and chat template."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(prepared_home / "models" / BUNDLED_MODEL)
    tokenizer.save_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True, initializer_range=0.5,  # peaked logits: greedy choices are never near-ties
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder
