"""The learned judge: P(bad) and a single taxonomy label for a reply in its context, fitted on replies labelled by
reading (``evaluate/labelled.py``), over the signals of ``evaluate/signals.py``.

    judge = Judge.shipped()                          # fitted on the committed labelled set; no training step
    verdicts = judge.judge(contexts, replies)        # [Verdict(label=CrowdLabel..., p_bad=0.83), ...]

Two logistic regressions over standardised signals, small enough to ship as JSON:
- good vs bad, with the threshold on P(bad) chosen on the dev split (best Cohen's kappa);
- which bad category, fitted on the bad replies only. When the safety layer finds offensive language in a reply
  judged bad, the category is ``inappropriate``: the guide puts it first, and there are too few rude replies in
  the labelled set to learn it.
Missing signals (no earlier turn, no reference model) are filled with the training mean, so they weigh nothing.
The likelihood signals need the base model (``reference``, SmolLM2-135M-Instruct for the shipped judge); a
judge fitted with ``use_lm=False`` needs no model at all and is many times faster.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from organic.evaluate.signals import GROUPS, LM_NAMES, NAMES, signals
from organic.taxonomy import CrowdLabel

SHIPPED = Path(__file__).parent / "judge_model"  # fitted on the whole train split: `organic judge` and `organic eval`
RATER = SHIPPED / "rater"  # one half of the train split, no likelihood signals: the simulated people's instrument
EVALUATOR = SHIPPED / "evaluator"  # the other half: what `organic loop` evaluates with, never seen by the raters
PARTS = ("all", "rater", "evaluator")  # what `organic judge train --part` fits on
BAD = tuple(c for c in CrowdLabel if not c.is_good)


class Verdict(NamedTuple):
    label: CrowdLabel
    p_bad: float


@dataclass
class Judge:
    features: list[str]  # signal names used, in order
    mean: list[float]  # standardisation, from the training items
    scale: list[float]
    coef: list[float]  # good (0) vs bad (1)
    intercept: float
    threshold: float  # P(bad) at or above which a reply is judged bad (chosen on dev)
    categories: list[str]  # bad categories the second model can give
    category_coef: list[list[float]]
    category_intercept: list[float]
    reference: str | None = None  # the base model the likelihood signals were measured with (None: not used)
    info: dict = field(default_factory=dict)  # what it was fitted on and how it did on dev

    @property
    def uses_lm(self) -> bool:
        return any(f in LM_NAMES for f in self.features)

    # scoring ---------------------------------------------------------------------------------------------
    def _standard(self, x: np.ndarray) -> np.ndarray:
        x = x[:, [NAMES.index(f) for f in self.features]]
        mean = np.asarray(self.mean)
        x = np.where(np.isnan(x), mean, x)
        return (x - mean) / np.asarray(self.scale)

    def p_bad_of(self, x: np.ndarray) -> np.ndarray:
        """P(bad) for rows of signals (``signals`` columns)."""
        return self._p_bad(self._standard(x))

    def _p_bad(self, z: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(z @ np.asarray(self.coef) + self.intercept)))

    def verdicts_of(self, x: np.ndarray) -> list[Verdict]:
        z = self._standard(x)
        p = self._p_bad(z)
        scores = z @ np.asarray(self.category_coef).T + np.asarray(self.category_intercept)
        offensive = x[:, NAMES.index("offensive")] > 0
        out = []
        for p_i, s, rude in zip(p, scores, offensive):
            if p_i < self.threshold:
                out.append(Verdict(CrowdLabel.GOOD, float(p_i)))
            else:
                label = CrowdLabel.INAPPROPRIATE if rude else CrowdLabel(self.categories[int(np.argmax(s))])
                out.append(Verdict(label, float(p_i)))
        return out

    def judge(self, contexts: Sequence[Sequence[dict]], replies: Sequence[str], *, lm=None, reference_model: Path | None = None,
              batch_size: int = 8) -> list[Verdict]:
        """A verdict per reply. The likelihood signals use ``lm`` (a loaded ``(model, tokenizer)``), else
        ``reference_model``, else the judge's own reference model prepared under ORGANIC_HOME."""
        if not replies:
            return []
        if self.uses_lm and lm is None and reference_model is None:
            reference_model = reference_folder(self.reference)
        x = signals(contexts, replies, reference_model=reference_model if self.uses_lm else None,
                    lm=lm if self.uses_lm else None, batch_size=batch_size)
        states = [NAMES.index(f) for f in self.features if f in GROUPS["state"]]
        if states and np.isnan(x[:, states]).all():
            raise ValueError(f"this judge reads the hidden states of its reference model ({self.reference}, width "
                             f"{len(GROUPS['state'])}); the model given has another width: judge with that model")
        return self.verdicts_of(x)

    def weights(self) -> dict[str, dict[str, float]]:
        """Per group, the absolute standardised coefficient of each signal of the good/bad model (larger: more
        weight), largest first."""
        coef = dict(zip(self.features, self.coef))
        return {g: dict(sorted(((n, round(abs(coef[n]), 3)) for n in names if n in coef), key=lambda kv: -kv[1]))
                for g, names in GROUPS.items() if any(n in coef for n in names)}

    # persistence -----------------------------------------------------------------------------------------
    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "judge.json"
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def load(cls, folder: Path) -> Judge:
        path = Path(folder) / "judge.json"
        if not path.is_file():
            raise FileNotFoundError(f"{folder} holds no judge (no judge.json); run `organic judge train --out {folder}` first")
        data = json.loads(path.read_text())
        unknown = set(data.get("features", [])) - set(NAMES)
        if unknown:
            raise ValueError(f"{path} uses signals this version does not compute: {', '.join(sorted(unknown))}; retrain it")
        return cls(**data)

    @classmethod
    def shipped(cls) -> Judge:
        """The judge fitted on the committed labelled set (``organic judge train`` with the defaults)."""
        return cls.load(SHIPPED)


def reference_folder(name: str | None) -> Path:
    from organic.generate import prepare_model
    from organic.settings import get_settings

    settings = get_settings()
    return prepare_model(name or settings.model, settings.home)


# fitting -----------------------------------------------------------------------------------------------------
def fit(x: np.ndarray, labels: Sequence[CrowdLabel], *, features: Sequence[str] = NAMES, c: float = 1.0,
        reference: str | None = None) -> Judge:
    """Both models on rows of signals and their labels; the threshold is 0.5 until ``tune_threshold``."""
    from sklearn.linear_model import LogisticRegression

    features = [f for f in features if not np.all(np.isnan(x[:, NAMES.index(f)]))]
    cols = x[:, [NAMES.index(f) for f in features]]
    mean = np.nanmean(cols, axis=0)
    cols = np.where(np.isnan(cols), mean, cols)
    scale = cols.std(axis=0)
    scale[scale == 0] = 1.0
    z = (cols - mean) / scale
    bad = np.array([not label.is_good for label in labels])
    if bad.all() or not bad.any():
        raise ValueError("the judge needs both good and bad labelled replies to learn from")
    binary = LogisticRegression(C=c, max_iter=5000, class_weight="balanced").fit(z, bad)
    kinds = [label.value for label in labels if not label.is_good]
    present = sorted({k for k in kinds if kinds.count(k) >= 3} - {CrowdLabel.INAPPROPRIATE.value})
    if len(present) >= 2:
        rows = [i for i, label in enumerate(labels) if label.value in present]
        multi = LogisticRegression(C=c, max_iter=5000, class_weight="balanced").fit(z[rows], [labels[i].value for i in rows])
        coef, intercept = multi.coef_, multi.intercept_
        if len(multi.classes_) == 2:  # sklearn keeps one row for two classes: the score of the second
            coef, intercept = np.vstack([-coef[0] / 2, coef[0] / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
        categories, cat_coef, cat_intercept = [str(k) for k in multi.classes_], coef.tolist(), intercept.tolist()
    else:  # one category (or none) to choose from
        categories = present or [CrowdLabel.OTHER.value]
        cat_coef, cat_intercept = [[0.0] * len(features)], [0.0]
    return Judge(list(features), mean.tolist(), scale.tolist(), binary.coef_[0].tolist(), float(binary.intercept_[0]), 0.5,
                 categories, cat_coef, cat_intercept, reference if any(f in LM_NAMES for f in features) else None)


def tune_threshold(judge: Judge, x: np.ndarray, labels: Sequence[CrowdLabel], *, max_rate_gap: float = 0.03) -> float:
    """The P(bad) threshold with the best good/bad Cohen's kappa on these (dev) items among those whose judged bad
    rate is within ``max_rate_gap`` of the labelled one (a Table 9 needs the rate right, not only the ranking);
    the best kappa overall when none is."""
    from organic.stats import cohen_kappa

    p = judge.p_bad_of(x)
    truth = [not label.is_good for label in labels]
    rate = float(np.mean(truth))
    grid = np.arange(0.1, 0.91, 0.02)
    kappa = {t: cohen_kappa(list(p >= t), truth) for t in grid}
    close = [t for t in grid if abs(float(np.mean(p >= t)) - rate) <= max_rate_gap]
    judge.threshold = round(float(max(close or grid, key=lambda t: (round(kappa[t], 3), -abs(float(np.mean(p >= t)) - rate)))), 2)
    return judge.threshold


# how well a judge agrees with labels made by reading ---------------------------------------------------------
FOCUS = (CrowdLabel.NONSENSICAL, CrowdLabel.IGNORING, CrowdLabel.REPEATING)  # the categories a 135M model fails on


def assess(truth: Sequence[CrowdLabel], judged: Sequence[CrowdLabel]) -> dict:
    """Agreement of judged labels with labels made by reading: good/bad Cohen's kappa, recall on bad replies,
    the labelled and judged bad rates (with a 95% interval for the labelled one), the single-label kappa, and
    per-category recall (of the replies read as that category, the share the judge called bad, and the share it
    gave exactly that category)."""
    from organic.stats import Proportion, cohen_kappa

    n = len(truth)
    if not n:
        return {"n": 0}
    bad_t = [not t.is_good for t in truth]
    bad_j = [not j.is_good for j in judged]
    caught = sum(t and j for t, j in zip(bad_t, bad_j))
    out = {
        "n": n,
        "kappa_binary": round(cohen_kappa(bad_j, bad_t), 3) if len(set(bad_t)) > 1 or len(set(bad_j)) > 1 else None,
        "recall_bad": round(caught / sum(bad_t), 3) if any(bad_t) else None,
        "precision_bad": round(caught / sum(bad_j), 3) if any(bad_j) else None,
        "labelled_bad": Proportion(sum(bad_t), n).to_json(),
        "judged_bad": Proportion(sum(bad_j), n).to_json(),
        "kappa_label": round(cohen_kappa([j.value for j in judged], [t.value for t in truth]), 3),
        "categories": {},
    }
    for category in BAD:
        rows = [j for t, j in zip(truth, judged) if t is category]
        if rows:
            out["categories"][category.value] = {"n": len(rows), "recall_bad": round(sum(not j.is_good for j in rows) / len(rows), 3),
                                                 "recall_exact": round(sum(j is category for j in rows) / len(rows), 3)}
    return out


def crowd_agreement(engine, judge: Judge, *, limit: int = 1000, lm=None) -> dict:
    """The judge against the crowd majority labels in the store (``assess``); ``{"n": 0}`` when there are none."""
    from itertools import islice

    from organic.evaluate.judges import crowd_items
    from organic.store.read import iter_conversations

    contexts, replies, crowd = (list(islice(x, limit)) for x in crowd_items(iter_conversations(engine)))
    if not crowd:
        return {"n": 0}
    return assess(crowd, [v.label for v in judge.judge(contexts, replies, lm=lm)])


def instruments_agreement(rater: Judge, results: dict) -> dict:
    """How often the raters' judge agrees with the evaluator's labels on every reply of ``evaluate_models``
    results: the evaluator taken as the reference (``assess``). Low agreement shows the two are different
    instruments; it is not a quality figure of either."""
    contexts = results["contexts"]
    theirs, mine = [], []
    for model in results["models"].values():
        theirs += [CrowdLabel(label) for label in model["labels"]]
        mine += [v.label for v in rater.judge(contexts, model["replies"])]
    return assess(theirs, mine)


def cross_validated_kappa(x: np.ndarray, items, features, c: float, folds: int = 5) -> float:
    """Good/bad Cohen's kappa of out-of-fold verdicts (folds grouped by conversation), each fold's threshold
    tuned on its own training part."""
    from sklearn.model_selection import GroupKFold

    from organic.stats import cohen_kappa

    labels = [i.label for i in items]
    judged = np.zeros(len(items), dtype=bool)
    for train_rows, test_rows in GroupKFold(folds).split(x, groups=[i.conversation for i in items]):
        judge = fit(x[train_rows], [labels[n] for n in train_rows], features=features, c=c)
        tune_threshold(judge, x[train_rows], [labels[n] for n in train_rows])
        judged[test_rows] = judge.p_bad_of(x[test_rows]) >= judge.threshold
    return round(cohen_kappa(list(judged), [not label.is_good for label in labels]), 3)


def model_group(item) -> str:
    """base, trained or human: the kind of writer behind a labelled item, for per-kind agreement."""
    model = item.model
    return model if model in ("base", "human") else "trained"


def labeller_agreement(items) -> dict:
    """Cohen's kappa between the main and the independent second pass, on the items that have both."""
    from organic.stats import cohen_kappa

    both = [(i.label, i.second) for i in items if i.second is not None]
    if not both:
        return {"n": 0}
    a, b = zip(*both)
    return {"n": len(both), "kappa_binary": round(cohen_kappa([x.is_good for x in a], [x.is_good for x in b]), 3),
            "kappa_label": round(cohen_kappa([x.value for x in a], [x.value for x in b]), 3),
            "agreement_binary": round(sum(x.is_good == y.is_good for x, y in both) / len(both), 3),
            "bad_rate_first": round(sum(not x.is_good for x in a) / len(a), 3),
            "bad_rate_second": round(sum(not y.is_good for y in b) / len(b), 3)}


def item_signals(items, reference_model: Path | None, cache: Path | None = None) -> np.ndarray:
    """Signals of labelled items, kept in ``cache`` (an .npz keyed by item id) when given: only items the cache
    lacks (or, when ``reference_model`` is given, lacks the likelihood signals of) are computed, then added."""
    rows: dict[str, np.ndarray] = {}
    if cache and cache.is_file():
        stored = np.load(cache, allow_pickle=False)
        if list(stored["names"]) == list(NAMES):  # a cache of other signals is computed again
            rows = dict(zip(stored["ids"].tolist(), stored["x"]))
    lm_column = NAMES.index("nll_context")
    missing = [i for i in items if i.id not in rows or (reference_model is not None and np.isnan(rows[i.id][lm_column]))]
    if missing:
        x = signals([i.context for i in missing], [i.reply for i in missing], reference_model=reference_model)
        rows |= dict(zip((i.id for i in missing), x))
        if cache:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, ids=np.array(list(rows)), names=np.array(NAMES), x=np.array(list(rows.values())))
    return np.array([rows[i.id] for i in items])


def train_judge(out: Path, *, items=None, use_lm: bool = True, part: str = "all", reference: str | None = None,
                cache: Path | None = None) -> dict:
    """Fit judges on the train split of the labelled set (``part``: all of it, or only its ``rater`` or
    ``evaluator`` half), choose the regularisation and the signal set (with or without likelihood) and the
    threshold on dev, score the chosen judge and the old rule judges on test, save the judge to ``out`` and return
    the report (also written as ``report.json`` and ``report.md``)."""
    from organic.evaluate import labelled
    from organic.evaluate.judges import judge_many

    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; choose one of: {', '.join(PARTS)}")
    items = items if items is not None else labelled.load()
    ceiling = labeller_agreement(items)  # over every doubly labelled item, whichever half it is in
    items = [i for i in items if part == "all" or i.split != "train" or labelled.half_of(i.conversation) == part]
    by = {s: [i for i in items if i.split == s] for s in ("train", "dev", "test")}
    if not by["train"] or not by["dev"]:
        raise ValueError(f"the labelled set needs train and dev items; has {', '.join(f'{k} {len(v)}' for k, v in by.items())}")
    folder = reference_folder(reference) if use_lm else None
    x = item_signals(items, folder, cache)
    rows = {s: np.array([n for n, i in enumerate(items) if i.split == s]) for s in by}
    y = {s: [i.label for i in by[s]] for s in by}
    feature_sets = {"all signals": list(NAMES),
                    "without the model's states": [n for n in NAMES if n not in GROUPS["state"]]} if use_lm else {}
    feature_sets["without the reference model"] = [n for n in NAMES if n not in LM_NAMES]
    # choose the signal set and C by 5-fold cross-validation over train + dev, grouped by conversation (steadier
    # than the small dev split alone); then fit on train and set the threshold on dev
    tuning = np.concatenate([rows["train"], rows["dev"]])
    candidates = []
    for set_name, features in feature_sets.items():
        for c in (0.003, 0.01, 0.03, 0.1):
            cv = cross_validated_kappa(x[tuning], [items[n] for n in tuning], features, c)
            candidate = fit(x[rows["train"]], y["train"], features=features, c=c, reference=reference)
            tune_threshold(candidate, x[rows["dev"]], y["dev"])
            dev = assess(y["dev"], [v.label for v in candidate.verdicts_of(x[rows["dev"]])])
            candidates.append({"signals": set_name, "c": c, "cv_kappa_binary": cv, "threshold": round(candidate.threshold, 2),
                               "dev_kappa_binary": dev["kappa_binary"], "dev_recall_bad": dev["recall_bad"], "judge": candidate})
    best = max(candidates, key=lambda r: (r["cv_kappa_binary"], r["dev_kappa_binary"] or -1))
    judge = best["judge"]
    judge.info = {"part": part, "fitted_on": {s: len(v) for s, v in by.items()}, "signals": best["signals"], "c": best["c"],
                  "labellers": sorted({i.labeller for i in items})}
    report = {"chosen": judge.info | {"threshold": judge.threshold}, "weights": judge.weights(),
              "candidates": [{k: v for k, v in r.items() if k != "judge"} for r in candidates],
              "labellers": ceiling, "test": {}}
    test = by["test"]
    if test:
        verdicts = judge.verdicts_of(x[rows["test"]])
        rules = {"rules": judge_many([i.context for i in test], [i.reply for i in test])}
        for group in ("all", "base", "trained", "human"):
            keep = [n for n, i in enumerate(test) if group == "all" or model_group(i) == group]
            if not keep:
                continue
            truth = [test[n].label for n in keep]
            report["test"][group] = {"learned judge": assess(truth, [verdicts[n].label for n in keep])}
            report["test"][group] |= {name: assess(truth, [r[n].label for n in keep]) for name, r in rules.items()}
        report["test_by_model"] = {}
        for model in dict.fromkeys(i.model for i in test):
            keep = [n for n, i in enumerate(test) if i.model == model]
            report["test_by_model"][model] = assess([test[n].label for n in keep], [verdicts[n].label for n in keep])
    judge.info["test"] = {g: v["learned judge"] for g, v in report["test"].items()}
    judge.save(out)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(render_report(report))
    return report


def agreement_line(judge: Judge) -> str:
    """One sentence: the judge's agreement with labels made by reading, on the labelled test split."""
    test = judge.info.get("test", {}).get("all")
    if not test:
        return "The judge has no recorded agreement with labels made by reading."
    cats = ", ".join(f"{c.label.lower()} {test['categories'][c.value]['recall_bad']:.2f}" for c in FOCUS if c.value in test["categories"])
    return (f"Judge agreement with labels made by reading ({test['n']} held-out test replies): good/bad kappa "
            f"{test['kappa_binary']:.2f}, recall on bad {test['recall_bad']:.2f} (per category: {cats}); "
            f"judged bad {test['judged_bad']['percent']:.1f}% vs read bad {test['labelled_bad']['percent']:.1f}%.")


def render_report(report: dict) -> str:
    lines = ["# The learned judge against labels made by reading", ""]
    agree = report["labellers"]
    if agree.get("n"):
        lines += [f"Two independent labelling passes over {agree['n']} items (the ceiling): good/bad kappa {agree['kappa_binary']:.2f}, "
                  f"single-label kappa {agree['kappa_label']:.2f}, raw good/bad agreement {agree['agreement_binary']:.2f}.", ""]
    chosen = report["chosen"]
    lines += [f"Chosen by 5-fold cross-validation over train + dev (grouped by conversation): {chosen['signals']}, "
              f"C = {chosen['c']}; fitted on {chosen['fitted_on']['train']} train items, threshold P(bad) >= "
              f"{chosen['threshold']:.2f} set on {chosen['fitted_on']['dev']} dev items. Test items were used for nothing but this table.", "",
              "| test items | judge | n | kappa good/bad | recall bad | precision bad | judged bad % | read bad % [95% CI] | "
              + " | ".join(f"recall {c.label.lower()}" for c in FOCUS) + " |",
              "|---|---|---|---|---|---|---|---|" + "---|" * len(FOCUS)]
    fmt = lambda v: "" if v is None else f"{v:.2f}"  # noqa: E731
    for group, judges in report["test"].items():
        for name, a in judges.items():
            cats = [a["categories"].get(c.value) for c in FOCUS]
            lb = a["labelled_bad"]
            lines.append(f"| {group} | {name} | {a['n']} | {fmt(a['kappa_binary'])} | {fmt(a['recall_bad'])} | {fmt(a['precision_bad'])} | "
                         f"{a['judged_bad']['percent']:.1f} | {lb['percent']:.1f} [{lb['ci95'][0]:.1f}, {lb['ci95'][1]:.1f}] | "
                         + " | ".join("" if c is None else f"{c['recall_bad']:.2f} ({c['n']})" for c in cats) + " |")
    lines += ["", "Per-category recall: of the replies read as that category, the share the judge called bad (n read).", ""]
    if report.get("test_by_model"):
        lines += ["The learned judge on each writer's test replies (what a Table 9 row rests on):", "",
                  "| writer | n | read bad % | judged bad % | kappa good/bad |", "|---|---|---|---|---|"]
        lines += [f"| {model} | {a['n']} | {a['labelled_bad']['percent']:.1f} | {a['judged_bad']['percent']:.1f} | {fmt(a['kappa_binary'])} |"
                  for model, a in report["test_by_model"].items()]
        lines.append("")
    best: dict[str, dict] = {}
    for c in report["candidates"]:
        if c["signals"] not in best or c["cv_kappa_binary"] > best[c["signals"]]["cv_kappa_binary"]:
            best[c["signals"]] = c
    lines += ["## What carries weight", "",
              "Signal sets, each at its best regularisation (good/bad kappa, 5-fold cross-validation over train + dev): "
              + "; ".join(f"{name} {c['cv_kappa_binary']:.2f}" for name, c in best.items()) + ".", "",
              "Per signal, |standardised coefficient| of the chosen good/bad model:", ""]
    for group, weights in report["weights"].items():
        shown = list(weights.items())[:6]
        lines.append(f"- {group}: " + ", ".join(f"{k} {v:.2f}" for k, v in shown) + (f", ... ({len(weights)} in all)" if len(weights) > 6 else ""))
    return "\n".join(lines) + "\n"


# judging a file ----------------------------------------------------------------------------------------------
def parse_line(line: str) -> dict:
    """One input line: ``{"context": [{"role": "user"|"assistant"|"system", "content": str}, ...], "reply": str}``
    (other keys are kept); raises ValueError with what is wrong."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object with context and reply, got {type(row).__name__}")
    if not isinstance(row.get("reply"), str):
        raise ValueError("reply: expected a string")
    context = row.get("context")
    if not isinstance(context, list):
        raise ValueError("context: expected a list of {role, content} messages")
    for n, message in enumerate(context):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant", "system") \
                or not isinstance(message.get("content"), str):
            raise ValueError(f"context[{n}]: expected {{\"role\": \"user\" | \"assistant\" | \"system\", \"content\": string}}")
    return row


def judge_file(path: Path, out: Path, judge: Judge, *, chunk: int = 256, on_error=None, progress=None) -> tuple[int, int]:
    """Judge every good line of the JSONL file ``path`` into ``out`` (each line plus ``label`` and ``p_bad``), in
    input order. A malformed line is reported through ``on_error(f"{path}:{line}: message")`` and skipped.
    Returns (judged, skipped)."""
    lm = load_reference(judge) if judge.uses_lm else None
    judged = skipped = 0
    with path.open(encoding="utf-8", errors="replace") as source, out.open("w", encoding="utf-8") as sink:
        pending: list[dict] = []

        def flush() -> None:
            nonlocal judged
            if not pending:
                return
            verdicts = judge.judge([[m for m in r["context"] if m["role"] != "system"] for r in pending],
                                   [r["reply"] for r in pending], lm=lm)
            for row, verdict in zip(pending, verdicts):
                sink.write(json.dumps(row | {"label": verdict.label.value, "p_bad": round(verdict.p_bad, 4)}, ensure_ascii=False) + "\n")
            judged += len(pending)
            if progress:
                progress(len(pending))
            pending.clear()

        for number, line in enumerate(source, 1):
            if not line.strip():
                continue
            try:
                pending.append(parse_line(line))
            except ValueError as error:
                skipped += 1
                if on_error:
                    on_error(f"{path}:{number}: {error}")
            if len(pending) >= chunk:
                flush()
        flush()
    return judged, skipped


def load_reference(judge: Judge):
    """The loaded ``(model, tokenizer)`` of the judge's reference model, for its likelihood signals."""
    from organic.generate.loading import load_causal_lm

    return load_causal_lm(reference_folder(judge.reference))
