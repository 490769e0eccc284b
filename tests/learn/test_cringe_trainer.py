"""CringeTrainer on a tiny random Llama: it trains (full, LoRA, gradient accumulation) and logs its two loss parts."""

import pytest
import torch
from datasets import Dataset
from peft import LoraConfig, get_peft_model
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from organic.examples import tokenize_example
from organic.learn.cringe import CringeCollator, CringeConfig, CringeTrainer

WORDS = "<pad> <eos> <unk> <user> <assistant> hello there how are you fine go away".split()
TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}<assistant> {% endif %}"
)


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    return LlamaForCausalLM(config)


def word_tokenizer() -> PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer with a chat template, built in-process (no download)."""
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    wrapped.chat_template = TEMPLATE
    return wrapped


def rows() -> Dataset:
    """Two good and two bad replies of different lengths, plus a column the trainer must drop."""
    contexts_and_replies = [  # (context ids, reply ids ending in EOS, example label)
        ([3, 5, 4], [10, 9, 1], 1),
        ([3, 5, 4], [11, 12, 1], 0),
        ([3, 7, 8, 9, 4], [10, 1], 1),
        ([3, 7, 8, 9, 4], [11, 1], 0),
    ]
    return Dataset.from_list(
        [
            {"input_ids": ctx + reply, "labels": [-100] * len(ctx) + reply, "example_label": label, "note": "dropped"}
            for ctx, reply, label in contexts_and_replies
        ]
    )


def config(tmp_path, **overrides) -> CringeConfig:
    settings = dict(
        output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=2, learning_rate=1e-2,
        logging_steps=1, report_to="none", save_strategy="no", disable_tqdm=True, use_cpu=True,
    )  # fmt: skip
    return CringeConfig(**(settings | overrides))


def train(model, args, **kwargs) -> tuple[CringeTrainer, dict[str, torch.Tensor]]:
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer = CringeTrainer(model=model, args=args, train_dataset=rows(), **kwargs)
    trainer.train()
    return trainer, before


def test_collator_pads_on_the_right_and_carries_example_labels():
    batch = CringeCollator(pad_token_id=0, max_length=6)(rows().to_list()[1:3])
    assert batch["input_ids"].tolist() == [[3, 5, 4, 11, 12, 1], [3, 7, 8, 9, 4, 10]]
    assert batch["attention_mask"].tolist() == [[1] * 6, [1] * 6]
    assert batch["labels"].tolist() == [[-100, -100, -100, 11, 12, 1], [-100] * 5 + [10]]
    assert batch["example_labels"].tolist() == [0, 1]
    padded = CringeCollator(pad_token_id=0)(rows().to_list()[:3:2])
    assert padded["input_ids"][0].tolist() == [3, 5, 4, 10, 9, 1, 0]
    assert padded["attention_mask"][0].tolist() == [1] * 6 + [0]
    assert padded["labels"][0].tolist() == [-100, -100, -100, 10, 9, 1, -100]


def test_tokenize_example_learns_only_the_reply_and_drops_old_context_first():
    tokenizer = word_tokenizer()
    messages = [{"role": "user", "content": "hello there"}]
    row = tokenize_example(tokenizer, messages, "fine you", label=1, max_length=None)
    assert row == {"input_ids": [3, 5, 6, 4, 10, 9, 1], "labels": [-100] * 4 + [10, 9, 1], "example_label": 1}
    cut = tokenize_example(tokenizer, messages, "fine you", label=0, max_length=4)
    assert cut == {"input_ids": [4, 10, 9, 1], "labels": [-100, 10, 9, 1], "example_label": 0}


def test_trainer_changes_every_parameter_and_logs_both_parts(tmp_path):
    model = tiny_llama()
    trainer, before = train(model, config(tmp_path), processing_class=word_tokenizer())
    assert trainer.state.global_step == 3
    for name, p in model.named_parameters():
        assert not torch.equal(p, before[name]), f"{name} did not change"
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 3
    for entry in logged:
        assert entry["ce"] > 0 and entry["ct"] > 0
        assert entry["loss"] == pytest.approx(entry["ce"] + entry["ct"], rel=1e-3)
    metrics = trainer.evaluate(eval_dataset=rows())
    assert metrics["eval_loss"] == pytest.approx(metrics["eval_ce"] + metrics["eval_ct"], rel=1e-3)


def test_trainer_with_lora_changes_only_the_adapter(tmp_path):
    model = get_peft_model(tiny_llama(), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    _, before = train(model, config(tmp_path), data_collator=CringeCollator(pad_token_id=0))
    for name, p in model.named_parameters():
        if "lora_" in name:
            assert not torch.equal(p, before[name]), f"adapter weight {name} did not change"
        else:
            assert torch.equal(p, before[name]), f"frozen base weight {name} changed"


def test_trainer_with_gradient_accumulation(tmp_path):
    model = tiny_llama()
    args = config(tmp_path, per_device_train_batch_size=1, gradient_accumulation_steps=2)
    trainer, before = train(model, args, data_collator=CringeCollator(pad_token_id=0))
    assert trainer.state.global_step == 3
    for name, p in model.named_parameters():
        assert not torch.equal(p, before[name]), f"{name} did not change"
    # the logged loss is the mean over micro-batches, like ce and ct: scaled once for accumulation, not twice or never
    for entry in (entry for entry in trainer.state.log_history if "loss" in entry):
        assert entry["loss"] == pytest.approx(entry["ce"] + entry["ct"], rel=1e-3)


def test_trainer_needs_a_tokenizer_or_a_collator(tmp_path):
    with pytest.raises(ValueError, match="processing_class"):
        CringeTrainer(model=tiny_llama(), args=config(tmp_path), train_dataset=rows())
