"""Iterative CRINGE, as BB3x was made: train, then let the new model answer the training contexts, label its
replies with the reward model and the safety layer, and train again from that checkpoint on the original
data plus the new examples (at most 2 copies of an identical positive, positives and negatives balanced).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from organic.learn.data import Example
from organic.learn.reward import RewardModel
from organic.learn.train import TrainConfig, train
from organic.safety import check_many


def generate_replies(folder: Path, contexts: list[list[dict]], *, max_new_tokens: int = 48, batch_size: int = 8,
                     seed: int = 0, progress: Callable[[int], None] | None = None) -> list[str]:
    """One sampled reply per context from the model in ``folder`` (batched, left-padded)."""
    tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    torch.manual_seed(seed)
    replies = []
    for start in range(0, len(contexts), batch_size):
        chats = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False)
                 for c in contexts[start : start + batch_size]]
        batch = tokenizer(chats, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=True, temperature=0.7, top_p=0.9,
                                 pad_token_id=tokenizer.pad_token_id)
        replies += [t.strip() for t in tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)]
        if progress:
            progress(len(chats))
    return replies


def label_replies(contexts: list[list[dict]], replies: list[str], reward: RewardModel, *, iteration: int) -> list[Example]:
    """Generated replies as examples: good when the reward model says ok and the safety layer finds nothing."""
    p_good = reward.predict_proba(contexts, replies)
    verdicts = check_many(replies)
    return [
        Example(context, reply, int(p >= reward.config.threshold and not verdict.blocked and bool(reply.strip())),
                f"iteration-{iteration}-{i}", "generated", "reward")
        for i, (context, reply, p, verdict) in enumerate(zip(contexts, replies, p_good, verdicts))
    ]


def dedupe_and_balance(new: list[Example], *, max_copies: int = 2, seed: int = 0) -> list[Example]:
    """At most ``max_copies`` of an identical positive, then as many positives as negatives."""
    copies: dict[tuple, int] = {}
    kept = []
    for ex in new:
        key = (json.dumps(ex.context), ex.reply)
        copies[key] = copies.get(key, 0) + 1
        if ex.label == 0 or copies[key] <= max_copies:
            kept.append(ex)
    rng = random.Random(seed)
    good, bad = [e for e in kept if e.label == 1], [e for e in kept if e.label == 0]
    n = min(len(good), len(bad))
    return rng.sample(good, n) + rng.sample(bad, n)


def iterate_cringe(examples: list[Example], base: Path, out_root: Path, reward: RewardModel, iterations: int,
                   config: TrainConfig | None = None, *, contexts_per_iteration: int = 64,
                   on_iteration: Callable[[int, Path, dict], None] | None = None) -> list[Path]:
    """``iterations`` rounds of CRINGE; returns the model folder of each. ``on_iteration(i, folder, metrics)``
    runs after each (the CLI registers a model version there)."""
    config = config or TrainConfig()
    contexts = _unique_contexts(examples)[:contexts_per_iteration]
    data, current, folders = list(examples), base, []
    for i in range(1, iterations + 1):
        added: list[Example] = []
        if i > 1:  # the first round trains on the original data; later rounds add the previous model's replies
            replies = generate_replies(current, contexts, seed=config.seed + i)
            added = dedupe_and_balance(label_replies(contexts, replies, reward, iteration=i), seed=config.seed + i)
            data = data + added
        folder = out_root / f"iteration-{i}"
        metrics = train("cringe", data, current, folder, config)
        metrics |= {"iteration": i, "generated_examples": len(added), "generated_good": sum(e.label for e in added)}
        (folder / "organic_training.json").write_text(json.dumps({**metrics, "base": str(current)}, indent=2))
        if on_iteration:
            on_iteration(i, folder, metrics)
        current = folder
        folders.append(folder)
    return folders


def _unique_contexts(examples: list[Example]) -> list[list[dict]]:
    seen, out = set(), []
    for ex in examples:
        key = json.dumps(ex.context)
        if ex.context and key not in seen:
            seen.add(key)
            out.append(ex.context)
    return out
