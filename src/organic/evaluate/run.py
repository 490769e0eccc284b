"""``organic eval``: let each model answer the held-out contexts, judge the replies with the learned judge, and
report Table 9 per model with the judge's agreement with labels made by reading, the guards against gaming the
judge (length, copying, cut-off replies, perplexity on real human replies) and a paired test against the first model.

    held = held_out_contexts(engine, share=0.2, limit=300)
    results = evaluate_models({"base": base, "cringe-it3": it3}, held.contexts, human_reference(200), reward)
    write_eval_report(results, Path("runs/eval"))   # eval.json (every reply, label and P(bad)) and eval.md

Held out means what ``organic.examples.held_out`` says, with the same share and seed as training used, so no
evaluated context was trained on. Every model samples with the same seed, so identical weights give identical
replies. ``eval.json`` keeps the contexts and every model's replies: the ``/compare`` page can take a batch of
blind pairwise comparisons from it.
"""

from __future__ import annotations

import json
import time
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import numpy as np

from organic.stats import Proportion
from organic.evaluate.breakdown import Breakdown, breakdown, render_markdown
from organic.generate.base import GenerationSettings
from organic.generate.batch import generate_replies, reply_nll
from organic.taxonomy import CrowdLabel

Pair = tuple[list[dict], str]  # a context and a reply to it


class HeldOut(NamedTuple):
    """What the held-out conversations offer: contexts to answer and good replies (in their contexts) to score."""

    contexts: list[list[dict]]
    good: list[Pair]
    conversations: frozenset[str] | set[str] = frozenset()  # the external ids of the conversations the contexts come from


def held_out_contexts(engine, share: float = 0.2, limit: int = 200, *, seed: int = 0, filters=None,
                      sources: tuple[str, ...] | None = None, per_conversation: int | None = None) -> HeldOut:
    """Up to ``limit`` distinct contexts that end with a user turn (at most ``per_conversation`` from one
    conversation, when given, so that they span more conversations), and up to ``limit`` good bot replies (labelled
    by ``examples.label_of``; only from ``sources`` such as ("thumb", "crowd") when given, to leave out replies
    only the reward model called good), from the conversations ``held_out(id, share, seed)`` keeps out of
    training, in store order."""
    from organic.examples import examples, held_out
    from organic.store.read import iter_conversations

    held, seen = HeldOut([], [], set()), set()
    for convo in iter_conversations(engine, filters):
        if not held_out(convo.external_id, share, seed):
            continue
        taken = 0
        for ex in examples([convo]):
            key = json.dumps(ex.context)
            if ex.context and ex.context[-1]["role"] == "user" and key not in seen and len(held.contexts) < limit \
                    and (per_conversation is None or taken < per_conversation):
                seen.add(key)
                held.contexts.append(ex.context)
                held.conversations.add(convo.external_id)
                taken += 1
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


def evaluate_models(model_folders: Mapping[str, Path], contexts: Sequence[list[dict]], human_replies: Sequence[Pair],
                    reward=None, *, judge=None, max_new_tokens: int = 48, batch_size: int = 8, seed: int = 0,
                    engine: str = "transformers", progress: Callable[[int], None] | None = None) -> dict:
    """For each model: its replies to ``contexts`` (sampled by ``generate.batch.generate_replies``, same seed for
    all), the learned judge's labels and P(bad) (``judge``, default the shipped one), the Table 9 breakdown, the
    guards against gaming the judge (reply length, share copied from the user, share cut off, perplexity on
    ``human_replies``: real human replies in their contexts) and, with a ``reward`` model, its mean P(good). The
    first model is the baseline: every other one gets a paired McNemar test of its bad rate against it, on the
    same contexts. ``engine`` is the generation engine (``generate.batch.ENGINES``). ``progress(n)`` is called as replies are generated. Returns the JSON-ready results that
    ``write_eval_report`` writes."""
    from organic.evaluate.judge import Judge, agreement_line, load_reference
    from organic.evaluate.signals import text_signals

    judge = judge or Judge.shipped()
    lm = load_reference(judge) if judge.uses_lm else None
    contexts = [list(c) for c in contexts]
    settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=0.7, top_p=0.9, seed=seed)
    results = {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": settings.to_json() | {"engine": engine},
        "judge": {"info": judge.info, "agreement": agreement_line(judge), "reference": judge.reference},
        "contexts": contexts,
        "human_replies": len(human_replies),
        "models": {},
    }
    baseline = None
    for name, folder in model_folders.items():
        clock = time.perf_counter()
        replies = generate_replies(Path(folder), contexts, settings, batch_size=batch_size, progress=progress, engine=engine)
        seconds = {"generate": time.perf_counter() - clock}
        texts = [r.text for r in replies]
        verdicts = judge.judge(contexts, texts, lm=lm)
        seconds["judge"] = time.perf_counter() - clock - sum(seconds.values())
        bad = [not v.label.is_good for v in verdicts]
        ppl, tokens = perplexity(Path(folder), human_replies, batch_size=batch_size)
        seconds["perplexity"] = time.perf_counter() - clock - sum(seconds.values())
        copied = [text_signals(c, t)["user_trigram_share"] for c, t in zip(contexts, texts)]
        results["models"][name] = {
            "folder": str(folder),
            "replies": texts,
            "labels": [v.label.value for v in verdicts],
            "p_bad": [round(v.p_bad, 4) for v in verdicts],
            "breakdown": breakdown(v.label for v in verdicts).to_json(),
            "guards": {"words": _mean([len(t.split()) for t in texts]), "copied_from_user": _mean(copied),
                       "cut": Proportion(sum(r.cut for r in replies), len(replies)).to_json(),
                       "perplexity_human": ppl, "perplexity_tokens": tokens},
            "paired": None if baseline is None else mcnemar(baseline[1], bad, baseline[0], name),
            "reward": _reward(reward, contexts, texts),
            "seconds": {k: round(v, 1) for k, v in seconds.items()},
        }
        baseline = baseline or (name, bad)
    return results


def _mean(values: Sequence[float]) -> dict:
    """Mean with its 95% interval (normal approximation)."""
    a = np.asarray(values, dtype=float)
    if not len(a):
        return {"mean": None, "ci95": None}
    half = 1.96 * a.std(ddof=1) / math.sqrt(len(a)) if len(a) > 1 else 0.0
    return {"mean": round(float(a.mean()), 4), "ci95": [round(float(a.mean() - half), 4), round(float(a.mean() + half), 4)]}


def mcnemar(before: Sequence[bool], after: Sequence[bool], name_before: str = "A", name_after: str = "B") -> dict:
    """Exact McNemar test of two models' bad/good verdicts on the same contexts: of the discordant contexts (bad
    for one model only), is the split 50/50? Reports the change in bad rate with its 95% interval (Newcombe's
    paired method via the discordant counts, normal approximation)."""
    from scipy.stats import binomtest

    if len(before) != len(after):
        raise ValueError(f"paired test needs the same contexts: got {len(before)} and {len(after)} verdicts")
    fixed = sum(b and not a for b, a in zip(before, after))  # bad before, good after
    broken = sum(a and not b for b, a in zip(before, after))  # good before, bad after
    n = len(before)
    diff = (broken - fixed) / n if n else 0.0
    half = 1.96 * math.sqrt(max(fixed + broken - (broken - fixed) ** 2 / n, 0.0)) / n if n else 0.0
    return {"against": name_before, "model": name_after, "n": n, "fixed": fixed, "broken": broken,
            "bad_rate_change": round(100 * diff, 2), "ci95": [round(100 * (diff - half), 2), round(100 * (diff + half), 2)],
            "p_value": float(binomtest(fixed, fixed + broken, 0.5).pvalue) if fixed + broken else 1.0}


def _reward(reward, contexts: list[list[dict]], replies: list[str]) -> dict | None:
    if reward is None or not replies:
        return None
    p = np.asarray(reward.predict_proba(contexts, replies), dtype=float)
    return {"mean_p_good": float(p.mean()), "std_error": float(p.std(ddof=1) / math.sqrt(len(p))) if len(p) > 1 else None,
            "judged_good": Proportion(int((p >= reward.config.threshold).sum()), len(p)).to_json()}


def render_table(results: dict) -> str:
    """Table 9 of ``evaluate_models`` results in Markdown: one row per model, each label's percent [95% Wilson
    interval] (count) and the bad rate, then the guards (mean words, share of trigrams copied from the user,
    share cut off, perplexity on real human replies), the paired test against the first model and the reward
    model's mean P(good)."""
    tables, extra = {}, {}
    for name, model in results["models"].items():
        data, g, paired, reward = model["breakdown"], model["guards"], model["paired"], model.get("reward")
        tables[name] = Breakdown({label: data[label.value]["count"] for label in CrowdLabel}, data["n"])
        extra[name] = {"Words": f"{g['words']['mean']:.1f}" if g["words"]["mean"] is not None else "",
                       "Copied": f"{g['copied_from_user']['mean']:.3f}" if g["copied_from_user"]["mean"] is not None else "",
                       "Cut %": f"{g['cut']['percent']:.0f}",
                       "PPL human": "" if g["perplexity_human"] is None else f"{g['perplexity_human']:.2f}",
                       "Bad vs first (pts, 95% CI, p)": "" if paired is None else
                       f"{paired['bad_rate_change']:+.1f} [{paired['ci95'][0]:+.1f}, {paired['ci95'][1]:+.1f}], p={paired['p_value']:.3g}",
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
        f"{len(results['contexts'])} held-out contexts, one reply per model ({settings['engine']}, sampled at temperature "
        f"{settings['temperature']}, top-p {settings['top_p']}, seed {settings['seed']}, at most {settings['max_new_tokens']} new "
        "tokens), labelled by the learned judge (`organic.evaluate.judge`).",
        results["judge"]["agreement"],
        "Each cell: percent of replies [95% Wilson interval] (count). Bad = every label but Good. Guards: Words = mean "
        "words per reply; Copied = mean share of the reply's word trigrams found in the user's turns; Cut % = replies "
        f"stopped by the token limit; PPL human = perplexity on {results['human_replies']} real human replies given their "
        "contexts (reply tokens only; lower is more fluent). Bad vs first: change of the bad rate against the first "
        "row on the same contexts, exact McNemar p.", "",
        render_table(results),
    ]
    timed = {name: m["seconds"] for name, m in results["models"].items() if m.get("seconds")}
    if timed:
        lines += ["", "Seconds per model (generate / judge / perplexity): " + "; ".join(
            f"{name} {t['generate']:.0f} / {t['judge']:.0f} / {t['perplexity']:.0f}" for name, t in timed.items()) + "."]
    crowd = results.get("crowd_agreement") or {}
    if crowd.get("n"):
        lines += ["", "## The judge against crowd labels in the store", "",
                  f"On {crowd['n']} bot replies with a crowd majority label: good/bad kappa {crowd['kappa_binary']}, recall on bad "
                  f"{crowd['recall_bad']}, judged bad {crowd['judged_bad']['percent']:.1f}% vs crowd bad {crowd['labelled_bad']['percent']:.1f}%."]
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
