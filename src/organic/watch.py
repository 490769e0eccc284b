"""``organic loop --watch``: the loop as a service next to ``organic serve``, on the same store.

    Watcher(settings, engine, out, WatchConfig(LoopConfig(), every=200)).run()    # polls until stopped

The watcher polls the store. When ``every`` new ratings and answers to "what should I have said?" have arrived
since the last round began, it runs a round, one step at a time, with the loop's own stages (``organic.loop``):

1. ``analyze``: the analysis report and troll detection;
2. ``reward``: the reward model on the thumbs of users not flagged; the round stops when there is too little data
   or when its held-out ROC AUC is under the gate (``learn.iterate.check_reward_auc``, ``--min-reward-auc``), and
   otherwise its verdicts go onto the unrated replies, as in ``organic loop``;
3. ``train``: CRINGE iteration(s) from the serving model; the round stops when training diverged (a loss or the
   weights became NaN or infinite, or the loss rose: ``diverged``). The candidate is registered as model version
   ``watch-<round>``;
4. ``eval``: the candidate against the serving model on held-out contexts of the store, judged by the evaluator;
5. ``gate``: the offline gate (``offline_gate``): the judged bad rate not significantly worse (paired McNemar
   test), the guards within bounds (reply length, copying from the user, perplexity on real human replies), and
   no more replies the safety layer would block; a candidate that fails ends the round as ``rejected``;
6. ``ab``: an A/B with ``ab_share`` of new conversations for the candidate (``store.versions.set_serving``);
7. ``decide``: once, when both versions have ``min_thumbs`` thumbs in conversations begun since the A/B started,
   promote the candidate when its thumbs-down rate per bot message is lower with p < ``alpha`` (Fisher exact,
   ``evaluate.live.live_ab``, as ``organic ab-report``) and its replies were not significantly more often replaced
   for safety; otherwise go back to the plan before the A/B (worse, or no significant difference).

A step that cannot go on ends the round as ``stopped`` with the reason; the next round starts after ``every`` more
ratings. Each step's end is stored in the round's row (``store.rounds``) with an audit log entry by "watcher" in one
transaction, together with the serving plan when the step changes it, on the condition that the plan in force is
still the one the step looked at (a plan an operator changed meanwhile stops the round and stays). The console at
``/admin`` shows the log. A store that fails for a moment (a lost connection, a locked database) is tried again
(``RETRY_S``); one that keeps failing leaves the round running at its step, logged, for the next look to resume. A
watcher killed mid-round resumes at the first unfinished step, and a step reuses what a killed run had finished on
disk (a reward model with its held-out metrics, a candidate folder with its ``organic_training.json``, an
``eval.json``); ``decide`` stores its decision before the plan changes, so that a restart completes the same change
instead of testing again. Run one watcher per store: two would each start rounds.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from sqlalchemy import Engine

from organic.loop import LoopConfig, finite
from organic.settings import Settings
from organic.store import rounds
from organic.store.models import WatchRound, utcnow
from organic.store.versions import PlanChanged, same_plan

WHO = "watcher"  # the audit log's "who" for everything the watcher does
STEPS = ("analyze", "reward", "train", "eval", "gate", "ab", "decide")
RETRY_S = (1.0, 3.0, 10.0)  # pauses before trying a step again after the store failed for a moment


@dataclass
class WatchConfig:
    """What starts a round, the bounds of its gates and how its A/B is decided; ``loop`` trains and evaluates."""

    loop: LoopConfig = field(default_factory=LoopConfig)  # training and evaluation, as `organic loop` (engine, steps...)
    every: int = 200  # new ratings + feedback answers since the last round began that start a round
    ab_share: float = 0.1  # the candidate's share of new conversations in its A/B
    min_thumbs: int = 100  # thumbs each version needs in the A/B before it is decided
    alpha: float = 0.05  # significance of every test (offline McNemar, live Fisher)
    poll_s: float = 30.0  # seconds between looks at the store
    min_labels: int = 20  # thumbs and crowd labels (users not flagged, training conversations) the reward model needs
    max_words_ratio: float = 2.0  # guard: the candidate's mean reply length within [1/r, r] times the serving model's
    max_copied_increase: float = 0.1  # guard: mean share of trigrams copied from the user, at most this much higher
    max_perplexity_ratio: float = 1.25  # guard: perplexity on real human replies at most this many times the serving's
    max_loss_rise: float = 1.5  # diverged: the mean loss of the last quarter of the steps over this times the first's


def check_config(config: WatchConfig) -> None:
    """Raise ``ValueError`` naming the options that are out of range."""
    from organic.generate.batch import ENGINES

    problems = [message for bad, message in (
        (config.loop.engine not in ENGINES, f"unknown engine {config.loop.engine!r}; choose one of: {', '.join(ENGINES)}"),
        (config.every < 1, f"--every must be at least 1 (new ratings and feedback answers per round), not {config.every}"),
        (not 0 < config.ab_share < 1, f"--ab-share must be between 0 and 1 (the candidate's share of new conversations), not {config.ab_share}"),
        (config.min_thumbs < 1, f"--min-thumbs must be at least 1, not {config.min_thumbs}"),
        (not config.poll_s > 0, f"--poll must be more than 0 seconds, not {config.poll_s}"),
        (config.loop.iterations < 1, f"--iterations must be at least 1, not {config.loop.iterations}"),
    ) if bad]
    if problems:
        raise ValueError("; ".join(problems))


def open_store(url: str) -> Engine:
    """The engine of an existing store at ``url``; ``ValueError`` with what is wrong when there is none there (a
    watcher watches a deployment's store: it never creates one)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

    from organic.store import connect

    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database in (None, "", ":memory:"):
                raise ValueError("an in-memory SQLite store cannot be shared with a server: give the store's file or URL")
            if not Path(parsed.database).is_file():
                raise ValueError(f"no store at {parsed.database}: give the --database-url of the store `organic serve` uses")
        return connect(url)
    except (ArgumentError, NoSuchModuleError) as error:
        raise ValueError(f"cannot open the store {make_url(url).render_as_string(hide_password=True) if isinstance(error, NoSuchModuleError) else repr(url)}: {error}") from None
    except OperationalError as error:
        raise ValueError(f"cannot open the store {make_url(url).render_as_string(hide_password=True)}: "
                         f"{str(error.orig).strip() or error}") from None


# one round ------------------------------------------------------------------------------------------------
class Stop(Exception):
    """A step found that the round cannot go on: it ends as ``status`` (stopped, or rejected by the gate)."""

    def __init__(self, reason: str, status: str = "stopped", details: dict | None = None):
        super().__init__(reason)
        self.reason, self.status, self.details = reason, status, details


@dataclass
class Done:
    """A finished step: a sentence for the log, what it found, and the round's columns it sets. A step that changes
    the serving plan names its audit ``action`` (ab, promote, rollback, as the console's) and the plan
    ``before`` and ``after``, and ``serve`` (shares, note, based_on): the change, made as the step's end is stored."""

    message: str
    details: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, Any] = field(default_factory=dict)
    action: str | None = None
    plan: dict[str, Any] = field(default_factory=dict)
    serve: tuple[dict[str, float], str, int] | None = None


class Round:
    """A round being advanced: its row, and what its steps share (loaded from its folder when first needed)."""

    def __init__(self, engine: Engine, config: WatchConfig, row: WatchRound):
        self.engine, self.config, self.row = engine, config, row

    @property
    def folder(self) -> Path:
        return Path(self.row.folder)

    @property
    def details(self) -> dict[str, Any]:
        return self.row.details or {}

    @property
    def incumbent_folder(self) -> Path:
        return Path(self.details["incumbent_folder"])

    @property
    def iterations(self) -> int:
        return self.details["iterations"]  # as the round began: a restart with other options finds the same folders

    @property
    def candidate_folder(self) -> Path:
        return self.folder / "cringe" / f"iteration-{self.iterations}"

    @cached_property
    def flagged(self) -> set[str]:
        return set(json.loads((self.folder / "trolls.json").read_text()))

    @cached_property
    def reward(self):
        from organic.learn.reward import RewardModel

        return RewardModel.load(self.folder / "reward_model")

    @cached_property
    def reward_auc(self) -> float:
        from organic.learn.reward import held_out_auc

        return held_out_auc(self.folder / "reward_model")

    @cached_property
    def results(self) -> dict[str, Any]:
        return json.loads((self.folder / "eval" / "eval.json").read_text())

    def save(self, **changes: Any) -> None:
        self.row = rounds.save(self.engine, self.row.id, **changes)


def analyze(r: Round) -> Done:
    """The analysis report and troll detection; the flagged users are kept in ``trolls.json`` for the next steps."""
    from organic.loop import analyze_store

    analysis, scores, flagged = analyze_store(r.engine, r.folder)
    (r.folder / "trolls.json").write_text(json.dumps(sorted(flagged)))
    headline = {k: analysis[k] for k in ("users", "conversations", "bot_messages", "thumbs_up", "thumbs_down")}
    return Done(f"{analysis['bot_messages']} bot replies, {analysis['thumbs_up']} thumbs up and {analysis['thumbs_down']} "
                f"down; {len(flagged)} of {len(scores)} rating users flagged as trolls",
                {"analysis": headline, "flagged": len(flagged), "users": len(scores)})


def reward(r: Round) -> Done:
    """The reward model (reused when a killed run saved it whole), refused on too little data or at chance."""
    from organic.generate.loading import written_aside
    from organic.learn.iterate import check_reward_auc
    from organic.learn.reward import RewardConfig, fit_and_save, score_store
    from organic.loop import reward_labels

    folder = r.folder / "reward_model"
    if not (folder / "held_out_metrics.json").is_file():
        train_labels, test_labels = reward_labels(r.engine, r.config.loop, r.flagged)
        if len(train_labels) < r.config.min_labels:
            raise Stop(f"too little data: {len(train_labels)} rated replies from users not flagged in the training "
                       f"conversations, and the reward model needs at least {r.config.min_labels}; waiting for more ratings")
        with written_aside(folder, "held_out_metrics.json") as aside:  # a killed fit leaves no half a model behind
            fit_and_save(train_labels, test_labels, aside, RewardConfig(seed=r.config.loop.seed))
    metrics = json.loads((folder / "held_out_metrics.json").read_text())
    try:
        check_reward_auc(r.reward_auc, r.config.loop.min_reward_auc)
    except ValueError as gate:
        raise Stop(str(gate), details={"metrics": finite(metrics)}) from None
    scored = score_store(r.engine, r.reward)
    return Done(f"reward model: held-out ROC AUC {r.reward_auc:.2f} on {metrics['n']} thumbs; its verdicts on {scored} "
                "unrated replies", {"metrics": finite(metrics), "scored": scored})


def train(r: Round) -> Done:
    """CRINGE from the serving model (not repeated when the candidate folder is complete), checked for divergence,
    registered as ``watch-<round>``."""
    from organic.loop import cringe_chain, training_examples
    from organic.store.versions import register_trained

    iterations, root = r.iterations, r.folder / "cringe"
    runs = _training_runs(root, iterations)
    if runs is None:
        examples = training_examples(r.engine, r.config.loop, r.flagged)
        try:
            cringe_chain(examples, r.incumbent_folder, root, r.reward, iterations, r.config.loop, seed=r.config.loop.seed,
                         reward_auc=r.reward_auc)
        except RuntimeError as error:  # CRINGE samples from the logits: NaN logits fail there, before any loss is logged
            if not re.search(r"\b(nan|inf)\b", str(error), re.IGNORECASE):
                raise
            raise Stop(f"training diverged: the model's outputs became NaN or infinite ({error}); the candidate is not "
                       "served") from None
        runs = _training_runs(root, iterations)
    for i, run in enumerate(runs, 1):
        broken = nonfinite_weights(root / f"iteration-{i}")
        why = diverged(run.get("losses") or [run["train_loss"]], r.config.max_loss_rise) or (
            f"the trained weights hold NaN or infinite values ({', '.join(broken[:3])}{', ...' if len(broken) > 3 else ''})"
            if broken else None)
        if why:
            raise Stop(f"training diverged in CRINGE iteration {i} of {iterations}: {why}; the candidate is not served",
                       details={"losses": [finite(run.get("losses")) for run in runs]})
    name = f"watch-{r.row.id}"
    metrics = finite({k: v for k, v in runs[-1].items() if k not in ("base", "config")})
    register_trained(r.engine, r.candidate_folder, name, parent=r.row.incumbent, method="cringe",
                     base_model=str(r.incumbent_folder), metrics=metrics, notes={"watch_round": r.row.id})
    return Done(f"candidate {name}: {iterations} CRINGE iteration(s) from {r.row.incumbent} on {runs[0]['examples']} "
                f"examples, final training loss {runs[-1]['train_loss']:.3g}",
                {"folder": str(r.candidate_folder), "train_loss": [finite(run["train_loss"]) for run in runs]},
                columns={"candidate": name})


def evaluate(r: Round) -> Done:
    """Both models on the held-out contexts (``eval/eval.json``, reused when a killed run wrote it); the candidate's
    figures go into its model version's metrics, for the console's Models panel."""
    from organic.evaluate.judge import EVALUATOR, Judge
    from organic.generate.loading import written_aside
    from organic.loop import evaluate_store, held_out_set, record_eval

    if not (r.folder / "eval" / "eval.json").is_file():
        held = held_out_set(r.engine, r.config.loop)
        if not held.contexts:
            raise Stop(f"too little data: no held-out conversation (share {r.config.loop.held_out_share:.0%}) has a "
                       "context to answer; waiting for more conversations")
        judge = Judge.load(r.config.loop.evaluator_judge or EVALUATOR)
        with written_aside(r.folder / "eval", "eval.json") as aside:  # recorded on the version below, reused or not
            evaluate_store(r.engine, {r.row.incumbent: r.incumbent_folder, r.row.candidate: r.candidate_folder},
                           held.contexts, aside, reward=r.reward, judge=judge, versions={},
                           max_new_tokens=r.config.loop.max_new_tokens, engine=r.config.loop.engine)
    results = r.results
    model = results["models"][r.row.candidate]
    record_eval(r.engine, r.row.candidate, model)
    bad = {name: m["breakdown"]["bad"]["percent"] for name, m in results["models"].items()}
    paired = model["paired"]
    return Done(f"judged bad on {len(results['contexts'])} held-out contexts: {r.row.incumbent} {bad[r.row.incumbent]:.1f}%, "
                f"{r.row.candidate} {bad[r.row.candidate]:.1f}% (McNemar p = {paired['p_value']:.3g})",
                {"contexts": len(results["contexts"]), "bad_percent": bad, "paired": paired})


def gate(r: Round) -> Done:
    """The offline gate on the eval (``offline_gate``); a candidate that fails a check ends the round as rejected."""
    from organic.safety import check_many

    results = r.results
    unsafe = {name: sum(v.blocked for v in check_many(m["replies"])) for name, m in results["models"].items()}
    checks = offline_gate(results, r.row.incumbent, r.row.candidate, unsafe, r.config)
    failed = [c["why"] for c in checks if not c["ok"]]
    if failed:
        raise Stop("the candidate failed the offline gate: " + "; ".join(failed), status="rejected", details={"checks": checks})
    return Done("the candidate passed the offline gate: " + "; ".join(c["why"] for c in checks), {"checks": checks})


def ab(r: Round) -> Done:
    """An A/B: ``ab_share`` of new conversations for the candidate, the rest for the serving model. The plans before
    and after are kept in the round first (``decide`` goes back to ``before``); the change is stored with the step's
    end, if the plan in force is still the one looked at here."""
    from organic.store.versions import current_plan, serving, set_serving

    incumbent, candidate, share = r.row.incumbent, r.row.candidate, r.config.ab_share
    if "ab" not in r.details:
        before = serving(r.engine) or {incumbent: 1.0}
        if not same_plan(before, {incumbent: 1.0}):  # an operator promoted or started an A/B while the round trained
            raise Stop(f"the serving plan is {_plan(before)}, not {incumbent} alone as when the round began; "
                       "the watcher starts no A/B over it")
        r.save(details={"ab": {"before": before, "after": {incumbent: 1 - share, candidate: share},
                               "started": utcnow().isoformat()}})  # the A/B is judged on conversations from here on
    before, after = r.details["ab"]["before"], r.details["ab"]["after"]
    plan_id, now = current_plan(r.engine)
    if not now:  # no plan was ever set: store the one in force, so that a rollback has it to return to
        set_serving(r.engine, before, note=f"watch round {r.row.id}: the serving model before its A/B", based_on=plan_id)
        plan_id, now = current_plan(r.engine)
    if not same_plan(now, before) and not same_plan(now, after):
        raise Stop(f"the serving plan changed while the A/B was being set up (now {_plan(now)}); the watcher leaves it")
    return Done(f"A/B started: {candidate} gets {share:.0%} of new conversations, {incumbent} the rest (a running "
                "`organic serve` follows within ORGANIC_PLAN_REFRESH_S seconds)", dict(r.details["ab"]),
                action="ab", plan={"before": before, "after": after},
                serve=None if same_plan(now, after) else (after, f"watch round {r.row.id}: A/B", plan_id))


def decide(r: Round) -> Done | None:
    """Promote, roll back, or wait for ``min_thumbs`` (None) on the A/B's thumbs (``ab_verdict``). The decision is stored before the
    plan changes, so a restart completes it; a plan someone else changed meanwhile ends the round untouched."""
    from organic.evaluate.live import live_ab
    from organic.store.versions import current_plan

    candidate, before, after = r.row.candidate, r.details["ab"]["before"], r.details["ab"]["after"]
    plan_id, now = current_plan(r.engine)
    if "decision" not in r.details:
        if not same_plan(now, after):
            raise Stop(f"someone changed the serving plan during the A/B (now {_plan(now)}); the watcher leaves it as it is")
        since = datetime.fromisoformat(r.details["ab"]["started"]) if "started" in r.details["ab"] else None
        verdict = ab_verdict(live_ab(r.engine, since=since), safety_replaced(r.engine, since), r.row.incumbent, candidate, r.config)
        if verdict["action"] is None:
            if r.details.get("waiting") != verdict:
                r.save(details={"waiting": verdict})
            return None
        r.save(details={"decision": verdict})
    decision = r.details["decision"]
    target = {candidate: 1.0} if decision["action"] == "promote" else before
    if not same_plan(now, after) and not same_plan(now, target):
        raise Stop(f"someone changed the serving plan while the decision was applied (now {_plan(now)}); the watcher leaves it")
    status = "promoted" if decision["action"] == "promote" else "rolled_back"
    return Done(decision["why"], {"verdict": decision}, columns={"status": status, "reason": decision["why"]},
                action=decision["action"], plan={"before": after, "after": target},
                serve=(target, f"watch round {r.row.id}: {decision['action']}", plan_id) if same_plan(now, after) else None)


STEP: dict[str, Callable[[Round], Done | None]] = {"analyze": analyze, "reward": reward, "train": train, "eval": evaluate,
                                                   "gate": gate, "ab": ab, "decide": decide}


# the gates, as pure functions of the figures ---------------------------------------------------------------
RISE_STEPS = 8  # fewer logged steps say nothing of a trend: one batch's loss swings with what it holds


def diverged(losses: list[float | None], max_rise: float = 1.5) -> str | None:
    """Why a training run's per-step ``losses`` say it diverged (a loss that is not a finite number; or, over at
    least ``RISE_STEPS`` steps, a mean over the last quarter more than ``max_rise`` times the first quarter's), else None."""
    for step, loss in enumerate(losses, 1):
        if loss is None or not math.isfinite(loss):
            return f"the loss was {loss} at step {step}"
    if len(losses) < RISE_STEPS:
        return None
    window = len(losses) // 4
    first, last = sum(losses[:window]) / window, sum(losses[-window:]) / window
    if first > 0 and last > max_rise * first:
        return f"the loss rose from {first:.3g} to {last:.3g} over {len(losses)} steps"
    return None


def nonfinite_weights(folder: Path) -> list[str]:
    """The tensors of the model saved in ``folder`` that hold a NaN or an infinity (a loss can stay finite while the
    gradients, and then the weights, blow up)."""
    import torch
    from safetensors import safe_open

    broken = []
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(file, "pt") as tensors:
            broken += [name for name in tensors.keys() if not torch.isfinite(tensors.get_tensor(name)).all()]
    return broken


def offline_gate(results: dict[str, Any], incumbent: str, candidate: str, unsafe: dict[str, int],
                 config: WatchConfig) -> list[dict[str, Any]]:
    """The offline gate's checks of ``candidate`` against ``incumbent`` in ``evaluate.run.evaluate_models`` results,
    each ``{"check", "ok", "why"}``: judged bad rate not higher with McNemar p < alpha; mean words within
    [1/max_words_ratio, max_words_ratio] times; share copied from the user at most max_copied_increase higher;
    perplexity on real human replies at most max_perplexity_ratio times; no more replies the safety layer blocks
    (``unsafe``: name -> count)."""
    a, b = results["models"][incumbent], results["models"][candidate]
    ga, gb, paired = a["guards"], b["guards"], b["paired"]
    worse = paired["bad_rate_change"] > 0 and paired["p_value"] < config.alpha
    checks = [_check("judged bad rate", not worse,
                     f"judged bad {a['breakdown']['bad']['percent']:.1f}% -> {b['breakdown']['bad']['percent']:.1f}% "
                     f"({paired['bad_rate_change']:+.1f} pts, McNemar p = {paired['p_value']:.3g}; worse only with p < {config.alpha})")]
    words_a, words_b = ga["words"]["mean"] or 0.0, gb["words"]["mean"] or 0.0
    ratio = words_b / words_a if words_a else (1.0 if not words_b else math.inf)
    checks.append(_check("reply length", 1 / config.max_words_ratio <= ratio <= config.max_words_ratio,
                         f"mean words {words_a:.1f} -> {words_b:.1f} ({ratio:.2f}x; bounds {1 / config.max_words_ratio:.2f}x"
                         f"-{config.max_words_ratio:.2f}x)"))
    copied_a, copied_b = ga["copied_from_user"]["mean"] or 0.0, gb["copied_from_user"]["mean"] or 0.0
    checks.append(_check("copying from the user", copied_b - copied_a <= config.max_copied_increase,
                         f"trigrams copied from the user {copied_a:.3f} -> {copied_b:.3f} (at most +{config.max_copied_increase})"))
    ppl_a, ppl_b = ga["perplexity_human"], gb["perplexity_human"]
    if ppl_a and ppl_b:
        checks.append(_check("perplexity on human replies", ppl_b <= config.max_perplexity_ratio * ppl_a,
                             f"perplexity on human replies {ppl_a:.2f} -> {ppl_b:.2f} (at most {config.max_perplexity_ratio}x)"))
    checks.append(_check("safety", unsafe[candidate] <= unsafe[incumbent],
                         f"replies the safety layer blocks {unsafe[incumbent]} -> {unsafe[candidate]} (no more)"))
    return checks


def ab_verdict(figures: dict[str, Any], replaced: dict[str, int], incumbent: str, candidate: str,
               config: WatchConfig) -> dict[str, Any]:
    """What the A/B says, from ``evaluate.live.live_ab`` figures and ``safety_replaced`` counts: ``{"action":
    "promote" | "rollback" | None, "why": ...}``. Nothing until each version has ``min_thumbs`` thumbs; then promote
    when the candidate's thumbs-down rate is lower with Fisher p < alpha and its safety replacements are not
    significantly more frequent; otherwise roll back (worse, or no significant difference). The test is made once,
    when both versions reach ``min_thumbs``: looking again at every poll would inflate the false-decision rate."""
    from scipy.stats import fisher_exact

    empty = {"bot_messages": 0, "thumbs_up": 0, "thumbs_down": 0, "down_rate": 0.0}
    vi, vc = figures["versions"].get(incumbent, empty), figures["versions"].get(candidate, empty)
    thumbs = {name: v["thumbs_up"] + v["thumbs_down"] for name, v in ((incumbent, vi), (candidate, vc))}
    if min(thumbs.values()) < config.min_thumbs:
        return {"action": None, "thumbs": thumbs,
                "why": f"waiting for {config.min_thumbs} thumbs on each version: {candidate} has {thumbs[candidate]}, "
                       f"{incumbent} {thumbs[incumbent]}"}
    p_down = next(c["down_rate_p"] for c in figures["comparisons"] if {c["a"], c["b"]} == {incumbent, candidate})
    rate_i, rate_c = (replaced.get(n, 0) / v["bot_messages"] if v["bot_messages"] else 0.0 for n, v in ((incumbent, vi), (candidate, vc)))
    p_safety = float(fisher_exact([[replaced.get(candidate, 0), vc["bot_messages"] - replaced.get(candidate, 0)],
                                   [replaced.get(incumbent, 0), vi["bot_messages"] - replaced.get(incumbent, 0)]]).pvalue)
    down = (f"thumbs down per bot message {vc['down_rate']:.1%} for {candidate} vs {vi['down_rate']:.1%} for {incumbent} "
            f"(Fisher p = {p_down:.3g}; {thumbs[candidate]} and {thumbs[incumbent]} thumbs)")
    safety = f"replies replaced for safety {rate_c:.1%} vs {rate_i:.1%} (Fisher p = {p_safety:.3g})"
    figures_ = {"thumbs": thumbs, "down_rate": {candidate: vc["down_rate"], incumbent: vi["down_rate"]}, "p_down": p_down,
                "safety_rate": {candidate: rate_c, incumbent: rate_i}, "p_safety": p_safety}
    safety_worse = rate_c > rate_i and p_safety < config.alpha
    if (vc["down_rate"] > vi["down_rate"] and p_down < config.alpha) or safety_worse:
        return {"action": "rollback", "why": f"{candidate} is worse: {down}; {safety}. Rolled back.", **figures_}
    if vc["down_rate"] < vi["down_rate"] and p_down < config.alpha:
        return {"action": "promote", "why": f"{candidate} is better: {down}; {safety}. Promoted.", **figures_}
    # one look, at a size fixed in advance: testing again at every poll would act on a no-better model sooner or later
    return {"action": "rollback", "why": f"no significant difference at {config.min_thumbs} thumbs each: {down}; {safety}. "
                                         f"The serving model stays.", **figures_}


def safety_replaced(engine: Engine, since: datetime | None = None) -> dict[str, int]:
    """Per model version, the bot replies the safety layer replaced because the model's own reply was unsafe (canned
    replies for an unsafe *user* message are left out: they say nothing of the model), in conversations begun at
    ``since`` or later when given."""
    from sqlalchemy import func, select

    from organic.store.models import Conversation, Message, ModelVersion
    from organic.taxonomy import InteractionFailure

    query = (select(ModelVersion.name, func.count(Message.id))
             .join(Conversation, Conversation.model_version_id == ModelVersion.id)
             .join(Message, Message.conversation_id == Conversation.id)
             .where(Message.sender == "bot", Message.previous_interaction_failure == InteractionFailure.UNSAFE_BOT.value)
             .group_by(ModelVersion.name))
    if since:
        query = query.where(Conversation.created_at >= since)
    with engine.connect() as conn:
        return {name: n for name, n in conn.execute(query)}


def _training_runs(root: Path, iterations: int) -> list[dict] | None:
    """The ``organic_training.json`` of each CRINGE iteration under ``root``, written when its model was saved whole;
    None unless the last iteration's is there and complete (then the candidate is not trained again)."""
    try:
        last = json.loads((root / f"iteration-{iterations}" / "organic_training.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):  # not trained yet, or killed while the file was written
        return None
    return [json.loads((root / f"iteration-{i}" / "organic_training.json").read_text()) for i in range(1, iterations)] + [last]


def transient(error: BaseException) -> bool:
    """Whether ``error`` is the store failing for a moment (a lost connection, a locked database): worth trying again."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    return isinstance(error, OperationalError | InterfaceError) or (isinstance(error, DBAPIError) and error.connection_invalidated)


def _said(error: BaseException) -> str:
    """A store error in a line: the driver's message, without the statement."""
    return f"{type(error).__name__}: {str(getattr(error, 'orig', None) or error).strip()}"


def _check(name: str, ok: bool, why: str) -> dict[str, Any]:
    return {"check": name, "ok": bool(ok), "why": why}


def _plan(plan: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0%}" for k, v in plan.items()) or "none"


# the service ------------------------------------------------------------------------------------------------
class Watcher:
    """Polls the store, starts a round when enough new feedback arrived, and advances the round in progress."""

    def __init__(self, settings: Settings, engine: Engine, out: Path, config: WatchConfig, console: Console | None = None):
        check_config(config)
        self.settings, self.engine, self.out, self.config = settings, engine, out.resolve(), config
        self.console = console or Console(stderr=True)
        self.begun: set[tuple[int, str]] = set()  # steps this process started: a restart counts a step again

    def run(self, *, once: bool = False, sleep: Callable[[float], None] = time.sleep) -> WatchRound | None:
        """Poll every ``poll_s`` seconds for ever; with ``once``, until a round this process worked on ends, and
        return it."""
        while True:
            row = self.tick()
            if once and row is not None and row.status != rounds.RUNNING:
                return row
            sleep(self.config.poll_s)

    def tick(self) -> WatchRound | None:
        """One look at the store: advance the round in progress, or start one when enough new feedback arrived;
        the round worked on, or None."""
        row = rounds.latest(self.engine)
        if row is None or row.status != rounds.RUNNING:
            count = rounds.feedback_count(self.engine)
            new = count - (row.mark if row else 0)
            if new < self.config.every:
                return None
            row = self.start(count, new)
            if row.status != rounds.RUNNING:
                return row
        return self.advance(Round(self.engine, self.config, row))

    def start(self, count: int, new: int) -> WatchRound:
        """A new round, training from the serving model (``serving_model``); stopped at once when there is none to train from."""
        message = f"{new} new ratings and feedback answers since the last round began (a round every {self.config.every})"
        try:
            incumbent, folder = serving_model(self.settings, self.engine)
        except (ValueError, FileNotFoundError) as error:
            row = rounds.start(self.engine, count, self.out, (WHO, "watch_start", {"message": message}))
            self.console.print(f"[bold]watch[/bold] round {row.id}: {escape(message)}")
            return self.stop(row, "start", Stop(str(error)))
        row = rounds.start(self.engine, count, self.out, (WHO, "watch_start", {"message": f"{message}; the serving model is {incumbent}"}),
                           incumbent=incumbent, details={"incumbent_folder": str(folder), "iterations": self.config.loop.iterations})
        Path(row.folder).mkdir(parents=True, exist_ok=True)
        self.console.print(f"[bold]watch[/bold] round {row.id}: {escape(message)}; the serving model is {escape(incumbent)}")
        return row

    def advance(self, r: Round) -> WatchRound:
        """Run the round's unfinished steps in order until it waits for thumbs in its A/B, ends, or finds the store
        failing after ``RETRY_S`` tries (then it stays at its step, for the next look to resume)."""
        done = STEPS.index(r.row.step) + 1 if r.row.step else 0
        for step in STEPS[done:]:
            if (r.row.id, step) not in self.begun:
                self.begun.add((r.row.id, step))
                starts = r.details.get("starts", {})
                r.save(details={"starts": {**starts, step: starts.get(step, 0) + 1}})
            for pause in (*RETRY_S, None):
                try:
                    finished = self.finish(r, step)
                    break
                except Stop as stop:
                    return self.stop(r.row, step, stop)
                except PlanChanged as changed:  # an operator changed the plan between the step's look and its change
                    return self.stop(r.row, step, Stop(f"someone changed the serving plan as the watcher was changing it "
                                                       f"({changed}); the watcher leaves it as it is"))
                except (ValueError, FileNotFoundError) as error:  # the loop's stages say what is missing this way
                    return self.stop(r.row, step, Stop(f"{step}: {error}"))
                except Exception as error:
                    if not transient(error):  # anything else ends the round too, said, rather than crash the service
                        self.console.print_exception()
                        return self.stop(r.row, step, Stop(f"{step} failed: {type(error).__name__}: {error}"))
                    if pause is None:
                        return self.unreachable(r, step, error)
                    self.console.print(f"[yellow]watch[/yellow] round {r.row.id}, {step}: the store failed "
                                       f"({escape(_said(error))}); trying again in {pause:g} s")
                    time.sleep(pause)
            if finished is None:
                return r.row
            self.console.print(f"[bold]watch[/bold] round {r.row.id}, {step}: {escape(finished.message)}")
        return r.row

    def finish(self, r: Round, step: str) -> Done | None:
        """Run ``step`` and store its end (with its change of the serving plan, if any); None while it waits."""
        finished = STEP[step](r)
        if finished is not None:
            entry = {"step": step, "message": finished.message, **finished.plan}
            r.save(step=step, details={step: finite(finished.details)}, audit_entry=(WHO, finished.action or f"watch_{step}", entry),
                   serve=finished.serve, **finished.columns)
        return finished

    def unreachable(self, r: Round, step: str, error: Exception) -> WatchRound:
        """The round left running at ``step`` after the store failed ``len(RETRY_S) + 1`` times, said in the audit log
        when the store takes it: the next look resumes the step."""
        reason = (f"{step}: the store failed {len(RETRY_S) + 1} times ({_said(error)}); the round stays at this step and "
                  "the watcher tries it again at its next look")
        self.console.print(f"[yellow]watch[/yellow] round {r.row.id}: {escape(reason)}")
        try:
            r.save(audit_entry=(WHO, "watch_error", {"step": step, "message": reason}))
        except Exception as again:  # said on the console only
            self.console.print(f"[yellow]watch[/yellow] round {r.row.id}: the audit log could not record it either ({escape(_said(again))})")
        return r.row

    def stop(self, row: WatchRound, step: str, stop: Stop) -> WatchRound:
        """End the round as ``stop.status`` with its reason, and say why."""
        action = "watch_reject" if stop.status == "rejected" else "watch_stop"
        row = rounds.save(self.engine, row.id, status=stop.status, reason=stop.reason,
                          details={step: finite(stop.details)} if stop.details else None,
                          audit_entry=(WHO, action, {"step": step, "message": stop.reason}))
        self.console.print(f"[yellow]watch[/yellow] round {row.id} {stop.status} at {step}: {escape(stop.reason)}")
        return row


def serving_model(settings: Settings, engine: Engine) -> tuple[str, Path]:
    """The model version new conversations mostly go to and its local folder: the largest share of the serving plan,
    or, when no plan was ever set, ``settings.model`` (as ``organic serve`` serves it), registered with its folder so
    that an A/B can name it."""
    from organic.generate import prepare_model
    from organic.generate.transformers_backend import model_version
    from organic.store.versions import register_version, serving, versions

    plan = serving(engine)
    known = {v.name: v for v in versions(engine)}
    if plan:
        name = max(plan, key=plan.get)
        path = known[name].path if name in known else None
        if not path or not Path(path).is_dir():
            raise ValueError(f"the serving model version {name!r} has no local model folder to train from "
                             f"(registered path: {path}); the watcher trains CRINGE from the serving model's folder")
        return name, prepare_model(path, settings.home)
    folder = prepare_model(settings.model, settings.home)
    name = model_version(folder)
    if name not in known or not known[name].path:
        register_version(engine, name, path=str(folder.resolve()), base_model=str(folder))
    return name, folder
