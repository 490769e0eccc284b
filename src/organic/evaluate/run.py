"""``organic eval``: let each model answer the held-out contexts, judge the replies, and report Table 9 per model
with perplexity on held-out good replies (the fluency guard) and the reward model's mean P(good).

    held = held_out_contexts(engine, share=0.2, limit=200)
    results = evaluate_models({"base": base, "cringe-it3": it3}, held.contexts, held.good, reward, max_new_tokens=48)
    write_eval_report(results, Path("runs/eval"))   # eval.json (every reply, label and score) and eval.md

Held out means what ``organic.learn.data.held_out`` says, with the same share and seed as training used, so no
evaluated context was trained on. Every model samples with the same seed, so identical weights give identical
replies. ``eval.json`` keeps the contexts and every model's replies: the ``/compare`` page can take a batch of
blind pairwise comparisons from it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import numpy as np

from organic.analyze.stats import Proportion
from organic.evaluate.breakdown import Breakdown, breakdown, render_markdown
from organic.evaluate.judges import Thresholds, judge_many, reply_nll
from organic.taxonomy import CrowdLabel

Pair = tuple[list[dict], str]  # a context and a reply to it


class HeldOut(NamedTuple):
    """What the held-out conversations offer: contexts to answer and good replies (in their contexts) to score."""

    contexts: list[list[dict]]
    good: list[Pair]


def held_out_contexts(engine, share: float = 0.2, limit: int = 200, *, seed: int = 0, filters=None,
                      sources: tuple[str, ...] | None = None) -> HeldOut:
    """Up to ``limit`` distinct contexts that end with a user turn, and up to ``limit`` good bot replies (labelled
    by ``learn.data.label_of``; only from ``sources`` such as ("thumb", "crowd") when given, to leave out replies
    only the reward model called good), from the conversations ``held_out(id, share, seed)`` keeps out of
    training, in store order."""
    from organic.learn.data import examples, held_out
    from organic.store.read import iter_conversations

    held, seen = HeldOut([], []), set()
    for convo in iter_conversations(engine, filters):
        if not held_out(convo.external_id, share, seed):
            continue
        for ex in examples([convo]):
            key = json.dumps(ex.context)
            if ex.context and ex.context[-1]["role"] == "user" and key not in seen and len(held.contexts) < limit:
                seen.add(key)
                held.contexts.append(ex.context)
            if ex.label == 1 and ex.reply.strip() and len(held.good) < limit and (sources is None or ex.source in sources):
                held.good.append((ex.context, ex.reply))
        if len(held.contexts) >= limit and len(held.good) >= limit:
            break
    return held


def perplexity(folder: Path, pairs: Sequence[Pair], *, batch_size: int = 8) -> tuple[float | None, int]:
    """Token-level perplexity of the model in ``folder`` on the replies of ``pairs`` given their contexts:
    exp(total NLL / total reply tokens), EOS included, context masked; and the number of tokens. None without pairs."""
    if not pairs:
        return None, 0
    scored = reply_nll(folder, [c for c, _ in pairs], [r for _, r in pairs], batch_size=batch_size)
    total, tokens = sum(s for s, _ in scored), sum(n for _, n in scored)
    return math.exp(total / tokens), tokens


def evaluate_models(model_folders: Mapping[str, Path], contexts: Sequence[list[dict]], good_replies_for_ppl: Sequence[Pair],
                    reward=None, *, max_new_tokens: int = 48, batch_size: int = 8, seed: int = 0,
                    reference_model: Path | None = None, thresholds: Thresholds | None = None,
                    progress: Callable[[int], None] | None = None) -> dict:
    """For each model: its replies to ``contexts`` (sampled as ``learn.iterate.generate_replies`` does, same seed
    for all), the judges' labels and scores, the Table 9 breakdown, perplexity on ``good_replies_for_ppl`` and, with
    a ``reward`` model (``learn.reward.RewardModel``), the mean P(good) of its replies. ``progress(n)`` is called as
    replies are generated. Returns the JSON-ready results that ``write_eval_report`` writes."""
    from organic.learn.iterate import generate_replies

    thresholds = thresholds or Thresholds()
    contexts = [list(c) for c in contexts]
    results = {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {"max_new_tokens": max_new_tokens, "seed": seed, "reference_model": str(reference_model) if reference_model else None,
                     "thresholds": asdict(thresholds)},
        "contexts": contexts,
        "good_replies": len(good_replies_for_ppl),
        "models": {},
    }
    for name, folder in model_folders.items():
        replies = generate_replies(Path(folder), contexts, max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed,
                                   progress=progress)
        judged = judge_many(contexts, replies, thresholds=thresholds, reference_model=reference_model)
        ppl, tokens = perplexity(Path(folder), good_replies_for_ppl, batch_size=batch_size)
        results["models"][name] = {
            "folder": str(folder),
            "replies": replies,
            "judges": [j.to_json() for j in judged],
            "breakdown": breakdown(j.label for j in judged).to_json(),
            "perplexity": ppl,
            "perplexity_tokens": tokens,
            "reward": _reward(reward, contexts, replies),
        }
    return results


def _reward(reward, contexts: list[list[dict]], replies: list[str]) -> dict | None:
    if reward is None or not replies:
        return None
    p = np.asarray(reward.predict_proba(contexts, replies), dtype=float)
    return {"mean_p_good": float(p.mean()), "std_error": float(p.std(ddof=1) / math.sqrt(len(p))) if len(p) > 1 else None,
            "judged_good": Proportion(int((p >= reward.config.threshold).sum()), len(p)).to_json()}


def render_table(results: dict) -> str:
    """Table 9 of ``evaluate_models`` results in Markdown: one row per model, each label's percent [95% Wilson
    interval] (count), the bad rate, perplexity on the good held-out replies and the reward model's mean P(good)."""
    tables, extra = {}, {}
    for name, model in results["models"].items():
        data = model["breakdown"]
        tables[name] = Breakdown({label: data[label.value]["count"] for label in CrowdLabel}, data["n"])
        reward = model.get("reward")
        extra[name] = {"Perplexity": "" if model["perplexity"] is None else f"{model['perplexity']:.2f}",
                       "Reward P(good)": "" if reward is None else f"{reward['mean_p_good']:.3f}"}
    return render_markdown(tables, extra)


def write_eval_report(results: dict, out_dir: Path) -> tuple[Path, Path]:
    """``eval.json`` (everything) and ``eval.md`` (``render_table`` with a note on how it was made) in
    ``out_dir``; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "eval.json", out_dir / "eval.md"
    json_path.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    settings = results["settings"]
    lines = [
        "# Evaluation", "",
        f"{len(results['contexts'])} held-out contexts, one reply per model (sampled, seed {settings['seed']}, "
        f"at most {settings['max_new_tokens']} new tokens), labelled by the automatic judges (`organic.evaluate.judges`"
        + (f", reference model {settings['reference_model']}" if settings["reference_model"] else "") + ").",
        "Each cell: percent of replies [95% Wilson interval] (count). Bad = every label but Good.",
        f"Perplexity: on {results['good_replies']} held-out good replies given their contexts (reply tokens only); "
        "lower is more fluent. Reward P(good): the reward model's mean probability that a reply is good.", "",
        render_table(results),
    ]
    crowd = results.get("crowd_agreement") or {}
    if crowd.get("n"):
        lines += ["", "## The judges against crowd labels", "",
                  f"On {crowd['n']} bot replies with a crowd majority label. Single label: accuracy {crowd['label']['accuracy']:.3f}, Cohen's kappa {crowd['label']['kappa']:.3f}; "
                  f"Good vs Bad: accuracy {crowd['good_vs_bad']['accuracy']:.3f}, kappa {crowd['good_vs_bad']['kappa']:.3f}.", "",
                  "| Judge | Accuracy | Cohen's kappa | Judge flags | Crowd labels |", "|---|---|---|---|---|"]
        lines += [f"| {CrowdLabel(name).label} | {row['accuracy']:.3f} | {row['kappa']:.3f} | {row['judge_flags']} | {row['crowd_labels']} |"
                  for name, row in crowd["judges"].items()]
    md_path.write_text("\n".join(lines) + "\n")
    return json_path, md_path


def resolve_models(specs: Sequence[str], engine, home: Path) -> dict[str, Path]:
    """Model folders by name from ``--model`` values: ``NAME=FOLDER``, a registered model version's name (its
    stored path), the bundled model's name, or a folder (named by its ``VERSION`` file, else folder@hash)."""
    from sqlalchemy import select

    from organic.generate import prepare_model
    from organic.generate.transformers_backend import model_version
    from organic.store.models import ModelVersion

    folders: dict[str, Path] = {}
    for spec in specs:
        name, _, target = spec.partition("=") if "=" in spec else ("", "", spec)
        with engine.connect() as conn:
            stored = conn.execute(select(ModelVersion.path).where(ModelVersion.name == target)).scalar()
        if stored and Path(stored).is_dir():
            folder, name = prepare_model(stored, home), name or target
        else:
            folder = prepare_model(target, home)  # FileNotFoundError / ValueError say what to do
            name = name or model_version(folder)
        if name in folders:
            raise ValueError(f"two --model values are both named {name!r}; name them: --model NAME=FOLDER")
        folders[name] = folder
    return folders


def comparison_items(results: dict, models: Sequence[str] | None = None, limit: int | None = None) -> list[dict]:
    """Blind pairwise comparison items from ``eval.json`` results: for each pair of models (or only the two
    ``models`` named), each context with both replies, at most ``limit`` per pair. Pairs of identical replies are
    left out: they can only tie."""
    from itertools import combinations

    contexts, names = results["contexts"], list(results["models"])
    if len(names) < 2:
        raise ValueError(f"the results hold {len(names)} model(s); pairwise comparison needs two or more")
    if models is not None:
        missing = [m for m in models if m not in results["models"]]
        if missing or len(set(models)) != 2:
            raise ValueError(f"name two different models of the results ({', '.join(names)}); got {list(models)}")
        names = list(models)
    items = []
    for a, b in combinations(names, 2):
        pairs = zip(contexts, results["models"][a]["replies"], results["models"][b]["replies"])
        kept = [{"context": context, "model_a": a, "model_b": b, "reply_a": ra, "reply_b": rb,
                 "source": f"eval {results.get('created_at', '')}".strip()}
                for context, ra, rb in pairs if ra.strip() != rb.strip()]
        items += kept[:limit]
    return items
