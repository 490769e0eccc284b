"""The ``hf`` kind of reward model: a Hugging Face sequence-classification model fine-tuned with
``transformers.Trainer`` on "context [SEP] reply" pairs (label 1 good, 0 not good)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

from organic.examples import Example, context_text
from organic.generate.loading import model_loading


def _pairs(tokenizer, contexts, replies, turns: int):
    return tokenizer([context_text(c, turns) for c in contexts], list(replies), truncation=True, max_length=256)


def train_hf(config, examples: Sequence[Example]):
    if not config.model:
        raise ValueError("a reward model of kind 'hf' needs --model: a local folder with a Hugging Face model")
    with model_loading():
        tokenizer = AutoTokenizer.from_pretrained(config.model)
        model = AutoModelForSequenceClassification.from_pretrained(config.model, num_labels=2)
    encoded = _pairs(tokenizer, [e.context for e in examples], [e.reply for e in examples], config.context_turns)
    data = Dataset.from_dict({**encoded, "labels": [e.label for e in examples]})
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, num_train_epochs=config.epochs, learning_rate=config.learning_rate,
                                 per_device_train_batch_size=16, report_to="none", save_strategy="no", seed=config.seed,
                                 use_cpu=not torch.cuda.is_available())
        Trainer(model=model, args=args, train_dataset=data, processing_class=tokenizer).train()
    model.tokenizer = tokenizer
    return model


def predict_hf(model, config, contexts, replies) -> np.ndarray:
    tokenizer = model.tokenizer
    model.eval()
    probs = []
    for start in range(0, len(replies), 32):
        batch = _pairs(tokenizer, contexts[start : start + 32], replies[start : start + 32], config.context_turns)
        batch = tokenizer.pad(batch, return_tensors="pt").to(model.device)
        with torch.no_grad():
            probs.append(torch.softmax(model(**batch).logits, dim=-1)[:, 1].cpu().numpy())
    return np.concatenate(probs)


def load_hf(folder: Path):
    with model_loading():
        model = AutoModelForSequenceClassification.from_pretrained(folder)
        model.tokenizer = AutoTokenizer.from_pretrained(folder)
    return model
