"""``organic train``: one entry point for CRINGE and the TRL baselines (SFT, KTO, DPO) on the same data.

Every method takes the same labelled examples (``organic.examples``) and the same model arguments, trains
through a ``transformers.Trainer`` subclass (so ``accelerate launch`` runs it on several GPUs unchanged), and
saves a plain model folder that ``organic serve --model FOLDER`` serves: a LoRA adapter is merged first.
Defaults are CPU-safe: float32, no bf16, no gradient checkpointing (both many times slower on a CPU).

    organic train --method cringe --out runs/cringe                         # this machine
    accelerate launch -m organic.cli train --method cringe --out runs/c     # several GPUs
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

from organic.examples import Example, tokenize_example
from organic.formats.trl import dpo_rows, kto_rows, sft_rows
from organic.generate.loading import check_loaded, model_loading
from organic.learn.cringe import CringeConfig, CringeTrainer

METHODS = ("cringe", "sft", "kto", "dpo")


@dataclass
class TrainConfig:
    """Arguments shared by every method."""

    epochs: float = 1.0  # passes over the training examples
    max_steps: int = -1  # stop after this many optimizer steps (-1: run the epochs)
    batch_size: int = 8  # examples per device per step
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-5  # AdamW
    max_length: int = 256  # tokens of context + reply; older context is dropped first
    lora: bool = False  # train a LoRA adapter (PEFT) instead of every weight; merged into the saved model
    lora_rank: int = 16
    beta: float = 0.1  # KTO / DPO: strength of the pull towards the reference model
    ct_weight: float = 1.0  # CRINGE: weight of the contrastive term
    seed: int = 0
    extra: dict = field(default_factory=dict)  # anything else for the method's TrainingArguments


def _common(config: TrainConfig, output_dir: str) -> dict:
    return dict(
        output_dir=output_dir, num_train_epochs=config.epochs, max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size, gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate, seed=config.seed, logging_steps=1, save_strategy="no", report_to="none",
        bf16=False, activation_checkpointing=False, use_cpu=not torch.cuda.is_available(), **config.extra,
    )


def _lora(config: TrainConfig):
    from peft import LoraConfig

    return LoraConfig(r=config.lora_rank, lora_alpha=2 * config.lora_rank, target_modules="all-linear", task_type="CAUSAL_LM")


def train(method: str, examples: list[Example], base: Path, out: Path, config: TrainConfig | None = None) -> dict:
    """Train ``method`` from the model folder ``base`` on ``examples``; save the result to ``out``.

    Returns the training metrics (loss, steps, runtime) and what the data held.
    """
    config = config or TrainConfig()
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    with model_loading():
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    check_loaded(model, base)
    data = _dataset(method, examples, tokenizer, config)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = _trainer(method, model, tokenizer, data, config, tmp)
        result = trainer.train()
        trained = trainer.model
    if hasattr(trained, "merge_and_unload"):  # a LoRA adapter: serve a plain model
        trained = trained.merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    trained.save_pretrained(out)
    tokenizer.save_pretrained(out)
    metrics = {"method": method, "examples": len(data), "train_loss": result.training_loss,
               "steps": result.global_step, "runtime_s": round(result.metrics.get("train_runtime", 0.0), 2),
               "losses": [float(e["loss"]) for e in trainer.state.log_history if "loss" in e],  # per logged step
               "positives": sum(e.label == 1 for e in examples), "negatives": sum(e.label == 0 for e in examples),
               "config": asdict(config)}
    (out / "organic_training.json").write_text(json.dumps({**metrics, "base": str(base)}, indent=2))
    return metrics


def _dataset(method: str, examples: list[Example], tokenizer, config: TrainConfig) -> Dataset:
    if method == "cringe":
        rows = [tokenize_example(tokenizer, e.context, e.reply, e.label, config.max_length)
                for e in examples if e.label in (0, 1)]
    else:
        rows = list({"sft": sft_rows, "kto": kto_rows, "dpo": dpo_rows}[method](examples))
    if not rows:
        need = {"cringe": "labelled replies", "sft": "good replies", "kto": "labelled replies",
                "dpo": "pairs (a disliked reply and the user's answer to 'what should I have said?')"}[method]
        raise ValueError(f"no training data for {method}: it needs {need}")
    return Dataset.from_list(rows)


def _trainer(method: str, model, tokenizer, data: Dataset, config: TrainConfig, output_dir: str):
    common = _common(config, output_dir)
    if method == "cringe":
        if config.lora:
            from peft import get_peft_model

            model = get_peft_model(model, _lora(config))
        args = CringeConfig(**common, max_length=config.max_length, ct_weight=config.ct_weight)
        return CringeTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    peft = _lora(config) if config.lora else None
    if method == "sft":
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(**common, max_length=config.max_length, assistant_only_loss=False, completion_only_loss=None)
        return SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer, peft_config=peft)
    if method == "kto":
        from trl import KTOConfig, KTOTrainer

        args = KTOConfig(**common, max_length=config.max_length, beta=config.beta)
        return KTOTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer, peft_config=peft)
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(**common, max_length=config.max_length, beta=config.beta)
    return DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer, peft_config=peft)
