"""Iterative CRINGE, as BB3x was made: train, then let the new model answer the training contexts, label its
replies with the reward model and the safety layer, and train again from that checkpoint on the original
data plus the new examples; BB3x ran 3 iterations.

Each later iteration, as the paper ran it:
1. the previous iteration's model writes ``candidates`` sampled replies (default 4) to each training context;
2. a candidate is a positive when the reward model says ok *and* the safety layer blocks nothing, else a negative;
3. ``select_examples`` keeps at most 2 copies of any identical positive across the whole set (not per context)
   and balances positives and negatives 50/50;
4. CRINGE trains from the previous iteration's checkpoint on the original data plus every new example so far.

The reward model is checked before it labels anything: under ``min_reward_auc`` held-out ROC AUC (default 0.65)
its labels are close to noise, and training on them would teach the model whatever the reward model happens to
like, so ``iterate_cringe`` refuses to start.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from organic.examples import Example, select_examples
from organic.generate.base import GenerationSettings
from organic.generate.batch import generate_replies
from organic.learn.reward import RewardModel
from organic.learn.train import TrainConfig, train
from organic.safety import check_many

MIN_REWARD_AUC = 0.65  # the gate: a reward model under this held-out ROC AUC labels nothing
SAMPLING = GenerationSettings(max_new_tokens=48, temperature=0.7, top_p=0.9)  # candidates; seeded per iteration


def check_reward_auc(auc: float | None, minimum: float = MIN_REWARD_AUC) -> None:
    """Raise ``ValueError`` when the reward model's held-out ROC AUC is under ``minimum`` or was not measurable
    (a NaN: the held-out examples were all of one class). ``None`` (not measured) passes with a warning."""
    if auc is None:
        warnings.warn("iterative CRINGE: the reward model's held-out ROC AUC was not given, so its labels are "
                      "unchecked; pass reward_auc (organic.learn.reward.evaluate on held-out examples)", stacklevel=3)
        return
    if math.isnan(auc) or auc < minimum:
        measured = "could not be measured (its held-out examples are all of one class)" if math.isnan(auc) \
            else f"is {auc:.3f}"
        raise ValueError(
            f"the reward model's held-out ROC AUC {measured}, under the gate of {minimum:.2f}: its labels would be "
            "noise, so iterative CRINGE stops before labelling anything. Collect more ratings and crowd labels "
            "(annotator links: POST /api/admin/annotators), retrain it with `organic reward train`, and run again; "
            "or train a single iteration (--iterations 1), which needs no reward model")


def label_replies(contexts: list[list[dict]], replies: list[str], reward: RewardModel, *, iteration: int) -> list[Example]:
    """Generated replies as examples: good when the reward model says ok and the safety layer blocks nothing
    (the safety layer has a veto: a reply it would replace in serving is never a positive)."""
    p_good = reward.predict_proba(contexts, replies)
    verdicts = check_many(replies)
    return [
        Example(context, reply, int(p >= reward.config.threshold and not verdict.blocked and bool(reply.strip())),
                f"iteration-{iteration}-{i}", "generated", "reward")
        for i, (context, reply, p, verdict) in enumerate(zip(contexts, replies, p_good, verdicts))
    ]


def candidate_examples(folder: Path, contexts: list[list[dict]], reward: RewardModel, *, iteration: int,
                       candidates: int = 4, settings: GenerationSettings = SAMPLING, max_copies: int = 2,
                       seed: int = 0, engine: str = "transformers") -> tuple[list[Example], dict]:
    """The new examples of one iteration: ``candidates`` sampled replies per context from the model in ``folder``
    (one load, one batched pass over the contexts repeated), labelled, then ``select_examples`` (copies cap over
    the whole set, 50/50), generated on ``engine`` (``generate.batch.ENGINES``). Returns them and what happened on the way, for the iteration's metrics."""
    repeated = [context for context in contexts for _ in range(candidates)]
    replies = generate_replies(folder, repeated, settings, engine=engine)
    labelled = label_replies(repeated, [r.text for r in replies], reward, iteration=iteration)
    added = select_examples(labelled, max_copies=max_copies, balance=True, seed=seed)
    return added, {"candidates": len(labelled), "candidates_good": sum(e.label for e in labelled),
                   "candidates_distinct_good": len({e.reply for e in labelled if e.label == 1}),
                   "candidates_cut": sum(r.cut for r in replies)}


def iterate_cringe(examples: list[Example], base: Path, out_root: Path, reward: RewardModel, iterations: int,
                   config: TrainConfig | None = None, *, contexts_per_iteration: int = 64, candidates: int = 4,
                   generation: GenerationSettings = SAMPLING, max_copies: int = 2,
                   reward_auc: float | None = None, min_reward_auc: float = MIN_REWARD_AUC, engine: str = "transformers",
                   on_iteration: Callable[[int, Path, dict], None] | None = None) -> list[Path]:
    """``iterations`` rounds of CRINGE; returns the model folder of each. ``on_iteration(i, folder, metrics)``
    runs after each (the CLI registers a model version there).

    ``reward_auc`` is the reward model's ROC AUC on held-out examples (``organic.learn.reward.evaluate(reward,
    held_out)["roc_auc"]``); with more than one iteration it must reach ``min_reward_auc`` or nothing is trained
    (``check_reward_auc``). ``candidates`` replies are sampled per context with ``generation`` (its seed is
    replaced by ``config.seed + iteration``) on ``engine``; at most ``max_copies`` of an identical positive are kept.
    """
    config = config or TrainConfig()
    if iterations > 1:
        check_reward_auc(reward_auc, min_reward_auc)
    contexts = _unique_contexts(examples)[:contexts_per_iteration]
    data, current, folders = list(examples), base, []
    for i in range(1, iterations + 1):
        added: list[Example] = []
        found: dict = {}
        if i > 1:  # the first round trains on the original data; later rounds add the previous model's replies
            settings = replace(generation, seed=config.seed + i)
            added, found = candidate_examples(current, contexts, reward, iteration=i, candidates=candidates,
                                              settings=settings, max_copies=max_copies, seed=config.seed + i,
                                              engine=engine)
            data = data + added
        folder = out_root / f"iteration-{i}"
        metrics = train("cringe", data, current, folder, config)
        metrics |= {"iteration": i, "generated_examples": len(added), "generated_good": sum(e.label for e in added),
                    **{f"generated_{k}": v for k, v in found.items()}, "reward_auc": reward_auc}
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
