"""``organic loop``: the whole BB3 -> BB3x loop, end to end, on simulated people or on a real store.

    simulate -> analyze -> find trolls -> reward model -> CRINGE x N (and SFT, KTO, DPO on the same data) -> eval

It serves the base model behind the real HTTP server, lets simulated helpers and trolls chat and rate, finds
the trolls, trains the reward model on the helpers' thumbs, trains CRINGE iterations and the baselines on the
same filtered data (and one CRINGE without troll filtering, to measure what filtering buys), and evaluates
every model on held-out conversations, Table 9 style. One report compares them all. With ``from_store`` it skips
the simulation and runs the rest on the conversations already in the store (a deployment's, or an imported BB3x
release); troll detection then has no ground truth to be scored against.

The CRINGE chain is trained once per seed (``seeds``); every iteration of the first seed is evaluated, and the
final iteration of each further seed, so that the final comparison does not rest on one training run. Generation
(the simulated deployment's server, iterative CRINGE's candidates, the evaluation) runs on ``engine``.

The helpers rate with the *rater* judge and the evaluation uses the *evaluator* judge: two learned judges fitted
on disjoint halves of the labelled set (``evaluate/judge.py``), so that the model cannot learn one instrument's
blind spots and have the same instrument report them as progress.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import Engine

from organic.settings import Settings
from organic.taxonomy import BAD, GOOD


@dataclass
class LoopConfig:
    users: int = 200  # simulated people
    troll_share: float = 0.3  # share of them who are trolls (SafetyMix types, drawn evenly)
    turns: int = 4  # messages each person sends
    rating_rate: float = 0.3  # share of replies a person rates (BB3's 5% gives too few labels at this size)
    concurrency: int = 8  # people chatting at once (the backend batches their replies)
    max_new_tokens: int = 32  # reply length while simulating and evaluating
    iterations: int = 3  # CRINGE iterations (BB3x: 3)
    baselines: tuple[str, ...] = ("sft", "kto", "dpo")  # TRL methods trained on the same data
    max_steps: int = 20  # optimizer steps per training run
    batch_size: int = 8
    learning_rate: float = 5e-5
    max_length: int = 192
    contexts_per_iteration: int = 48  # training contexts each later CRINGE iteration answers
    candidates: int = 4  # replies sampled per context in each later iteration (BB3x: several, by beam search)
    min_reward_auc: float = 0.65  # later iterations need a reward model at least this good on held-out thumbs
    held_out_share: float = 0.2  # conversations kept out of training, for evaluation
    eval_contexts: int = 60  # held-out contexts each model answers
    eval_per_conversation: int = 2  # at most this many of them from one conversation, so they span many
    seed: int = 0
    seeds: int = 1  # CRINGE chains, trained with seed, seed + 1, ...
    engine: str = "transformers"  # generation engine (generate.batch.ENGINES): serving, candidates, eval
    from_store: bool = False  # no simulation: learn from the conversations already in the store
    rater_judge: Path | None = None  # the simulated people's judge (default: the shipped rater half)
    evaluator_judge: Path | None = None  # the evaluation's judge (default: the shipped evaluator half)
    notes: dict[str, Any] = field(default_factory=dict)


def run_loop(settings: Settings, engine: Engine, out: Path, config: LoopConfig, console: Console | None = None) -> dict[str, Any]:
    from organic.stats import detection
    from organic.evaluate.judge import EVALUATOR, RATER, Judge
    from organic.generate import prepare_model
    from organic.generate.batch import ENGINES
    from organic.generate.prepare import local_backend
    from organic.learn.iterate import check_reward_auc
    from organic.learn.reward import RewardConfig, fit_and_save
    from organic.learn.reward import score_store as score_rewards
    from organic.learn.train import train
    from organic.serve.app import create_app
    from organic.simulate.people import population
    from organic.serve.local import LocalServer
    from organic.simulate.run import judge_rater, simulate
    from organic.store.versions import register_trained

    console = console or Console(stderr=True)
    out.mkdir(parents=True, exist_ok=True)
    notes: dict[str, str] = {}
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def step(name: str) -> None:
        timings[name] = round(time.perf_counter() - started - sum(timings.values()), 1)
        console.print(f"[bold]loop[/bold]: {name} done ({timings[name]:.0f} s)")

    if config.engine not in ENGINES:
        raise ValueError(f"unknown engine {config.engine!r}; choose one of: {', '.join(ENGINES)}")
    if config.seeds < 1:
        raise ValueError(f"--seeds must be at least 1, not {config.seeds}")
    # every simulated person comes from this machine's address: lift the per-address session limit
    settings = settings.model_copy(update={"max_new_tokens": config.max_new_tokens, "sessions_per_minute": 1_000_000})
    if config.engine != "transformers":  # the simulated deployment serves on the same engine
        settings = settings.model_copy(update={"backend": "ct2", "ct2_compute_type": config.engine.removeprefix("ct2-")})
    base = prepare_model(settings.model, settings.home)
    rater, evaluator = Judge.load(config.rater_judge or RATER), Judge.load(config.evaluator_judge or EVALUATOR)

    # 1. serve the base model and let simulated people use it ---------------------------------------------
    if config.from_store:
        simulation = None
    else:
        people = population(config.users, config.troll_share, turns=config.turns, seed=config.seed)
        backend = local_backend(settings, base)
        with LocalServer(create_app(settings, [backend], engine=engine)) as url:
            simulation = simulate(url, people, rater=judge_rater(rater), rating_rate=config.rating_rate, concurrency=config.concurrency)
        backend.close()
        (out / "people.json").write_text(json.dumps(simulation.people, indent=1))
        step("simulate")

    # 2. analyze, and find the trolls ----------------------------------------------------------------------
    analysis, scores, flagged = analyze_store(engine, out)
    held = held_out_set(engine, config)  # what every model will answer: known now, so a run without any stops here
    if not held.contexts:
        raise ValueError(f"the store has no held-out conversation to evaluate on (held-out share {config.held_out_share:g}"
                         f" of its conversations, by a hash of their ids): raise --held-out-share or --users")
    found = None
    if simulation is not None:  # a simulation knows who the trolls were
        truth = [simulation.people.get(s.user, "helper") != "helper" for s in scores]
        found = detection(truth, [-(s.trust if s.trust is not None else 1.0) for s in scores], [s.is_troll for s in scores])
    step("analyze")

    # 3. the reward model, on the thumbs of users not flagged ----------------------------------------------
    reward, reward_metrics = fit_and_save(*reward_labels(engine, config, flagged), out / "reward_model",
                                          RewardConfig(seed=config.seed))
    score_rewards(engine, reward)  # unrated replies get the reward model's verdict, as in BB3x
    step("reward model")

    # 4. the same data for every method; one CRINGE run without troll filtering ----------------------------
    filtered = training_examples(engine, config, flagged)
    unfiltered = training_examples(engine, config)
    train_config = train_settings(config)
    models: dict[str, Path] = {"base": base}
    training: dict[str, dict] = {}

    def register(name: str, folder: Path, parent: str, method: str, metrics: dict, evaluated: bool = True) -> None:
        register_trained(engine, folder, f"loop-{name}", parent=parent, method=method, base_model=str(base), metrics=metrics)
        training[name] = metrics
        if evaluated:
            models[name] = folder

    iterations, auc = config.iterations, reward_metrics.get("roc_auc", float("nan"))
    if iterations > 1:
        try:
            check_reward_auc(auc, config.min_reward_auc)
        except ValueError as gate:  # the first iteration learns from people's thumbs alone; later ones would learn noise
            iterations, notes["reward_gate"] = 1, str(gate)
            console.print(f"[yellow]loop[/yellow]: {gate} Training one CRINGE iteration only.")
    for k in range(config.seeds):
        seed = config.seed + k
        tag = "" if k == 0 else f"-seed{seed}"  # every iteration of the first seed is evaluated, the last of the others

        def on_iteration(i: int, folder: Path, metrics: dict, tag: str = tag) -> None:
            register(f"cringe-it{i}{tag}", folder, f"loop-cringe-it{i - 1}{tag}" if i > 1 else None, "cringe", metrics,
                     evaluated=not tag or i == iterations)

        cringe_chain(filtered, base, out / "models" / f"cringe{tag}", reward, iterations, config, seed=seed, reward_auc=auc,
                     on_iteration=on_iteration)
    step("cringe")
    register("cringe-unfiltered", out / "models" / "cringe-unfiltered", None, "cringe",
             train("cringe", unfiltered, base, out / "models" / "cringe-unfiltered", train_config))
    for method in config.baselines:
        register(method, out / "models" / method, None, method, train(method, filtered, base, out / "models" / method, train_config))
    step("baselines")

    # 5. evaluate every model on held-out conversations ----------------------------------------------------
    # the evaluator judge was fitted on the half of the labelled set the raters' judge never saw; perplexity is
    # measured on real human replies no model trained on
    results, _, _ = evaluate_store(engine, models, held.contexts, out / "eval", reward=reward, judge=evaluator, rater=rater,
                                   versions={name: f"loop-{name}" for name in models if name != "base"},
                                   max_new_tokens=config.max_new_tokens, engine=config.engine)
    step("evaluate")

    summary = {
        "config": asdict(config),
        "simulation": None if simulation is None else {
            "people": len(simulation.people), "trolls": sum(k != "helper" for k in simulation.people.values()),
            "messages": simulation.messages, "feedback_answers": simulation.feedback_answers,
            "canned_replies": simulation.canned, "ratings": {f"{k}:{t}": n for (k, t), n in simulation.ratings.items()},
            "seconds": round(simulation.seconds, 1), "errors": simulation.errors[:5]},
        "analysis": {k: analysis[k] for k in ("users", "conversations", "messages", "bot_messages", "thumbs_up", "thumbs_down")},
        "trolls": (found.to_json() if found else {"flagged": len(flagged), "total": len(scores)})
                  | {"too_few_labels": sum(s.too_few_labels for s in scores)},
        "notes": notes,
        "reward_model": reward_metrics,
        "training_data": {"filtered": _sizes(filtered), "unfiltered": _sizes(unfiltered)},
        "training": training,
        "eval": results,
        "eval_conversations": len(held.conversations),
        "timings_s": timings,
    }
    (out / "loop.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / "README.md").write_text(render(summary))
    return summary


# the stages, one function each: ``run_loop`` calls them in order, ``organic.watch`` one step at a time ------
def analyze_store(engine: Engine, out: Path) -> tuple[dict[str, Any], list, set[str]]:
    """The analysis report of the store (``out/analysis``) and troll detection: the report's figures, every rating
    user's trust score (``analyze.trolls.UserScore``) and the ids of the users flagged."""
    from organic.analyze.report import build_report
    from organic.analyze.trolls import score_store, troll_ids

    analysis = build_report(None, out / "analysis", engine)
    if not analysis["bot_messages"]:
        raise ValueError("the store holds no bot replies to learn from: chat first, or import a BB3x release")
    scores = score_store(engine)
    return analysis, scores, troll_ids(scores)


def conversations(engine: Engine, config: LoopConfig, *, held: bool) -> Iterator:
    """The store's conversations on one side of the held-out split (``examples.held_out`` with ``config``'s share
    and seed): training ones, or with ``held`` the held-out ones."""
    from organic.examples import held_out
    from organic.store.read import iter_conversations

    return (c for c in iter_conversations(engine) if held_out(c.external_id, config.held_out_share, config.seed) == held)


def reward_labels(engine: Engine, config: LoopConfig, flagged: set[str]) -> tuple[list, list]:
    """The thumbs and crowd labels the reward model learns from (training conversations, users ``flagged`` left
    out) and the ones it is measured on (held-out conversations, everyone's)."""
    from organic.examples import build_training_set

    return (build_training_set(conversations(engine, config, held=False), sources=("thumb", "crowd"), exclude_users=flagged),
            build_training_set(conversations(engine, config, held=True), sources=("thumb", "crowd")))


def training_examples(engine: Engine, config: LoopConfig, flagged: set[str] = frozenset()) -> list:
    """The one training set every method learns from: the training conversations' labelled replies and feedback
    answers (as positives), users ``flagged`` left out, balanced."""
    from organic.examples import build_training_set

    return build_training_set(conversations(engine, config, held=False), exclude_users=flagged, feedback_as_positive=True,
                              balance=True, seed=config.seed)


def train_settings(config: LoopConfig):
    """``learn.train.TrainConfig`` of every training run of the loop."""
    from organic.learn.train import TrainConfig

    return TrainConfig(max_steps=config.max_steps, batch_size=config.batch_size, learning_rate=config.learning_rate,
                       max_length=config.max_length, seed=config.seed)


def cringe_chain(examples: list, base: Path, out_root: Path, reward, iterations: int, config: LoopConfig, *, seed: int,
                 reward_auc: float, on_iteration=None) -> list[Path]:
    """``iterations`` of CRINGE from the model folder ``base`` (``learn.iterate.iterate_cringe``) with the loop's
    settings, trained with ``seed``; the folders ``out_root/iteration-<i>``."""
    from organic.generate.base import GenerationSettings
    from organic.learn.iterate import iterate_cringe

    return iterate_cringe(examples, base, out_root, reward, iterations, replace(train_settings(config), seed=seed),
                          contexts_per_iteration=config.contexts_per_iteration, candidates=config.candidates,
                          generation=GenerationSettings(max_new_tokens=config.max_new_tokens, temperature=0.7, top_p=0.9),
                          reward_auc=reward_auc, min_reward_auc=config.min_reward_auc, engine=config.engine,
                          on_iteration=on_iteration)


def train_on_store(engine: Engine, base: Path, out: Path, config, *, method: str, name: str, iterations: int = 1,
                   reward_folder: Path | None = None, contexts_per_iteration: int = 64, candidates: int = 4,
                   balance: bool = True, feedback_as_positive: bool = True, exclude_users: Iterable[str] = (),
                   exclude_trolls: bool = False, splits: list[str] | None = None,
                   say: Callable[[str], None] = print) -> list[str]:
    """``organic train``: ``method`` (``learn.train.METHODS``) from the model folder ``base`` into ``out`` on the
    store's labelled replies (``examples.build_training_set``, users ``exclude_users`` and with ``exclude_trolls``
    the ones troll detection flags left out), with ``config`` (``learn.train.TrainConfig``). With ``iterations`` > 1,
    iterative CRINGE labelled by the reward model in ``reward_folder``, one folder per iteration. Each trained model is
    registered as a model version (``name``, or ``name-it<i>``) whose parent is the one before it; returns their names."""
    from organic.examples import build_training_set
    from organic.generate.transformers_backend import model_version
    from organic.learn.train import METHODS, train
    from organic.store.read import Filters, iter_conversations
    from organic.store.versions import register_trained

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    if iterations > 1 and (method != "cringe" or reward_folder is None):
        raise ValueError("--iterations > 1 is iterative CRINGE: it needs --method cringe and --reward-model")
    exclude = set(exclude_users)
    if exclude_trolls:
        from organic.analyze.trolls import score_store, troll_ids

        exclude |= troll_ids(score_store(engine))
    examples = build_training_set(iter_conversations(engine, Filters(splits=splits)), balance=balance,
                                  feedback_as_positive=feedback_as_positive, exclude_users=exclude)
    sizes = _sizes(examples)
    say(f"{sizes['examples']} examples ({sizes['good']} good, {sizes['bad']} bad) from the store; "
        f"training {method} from {base}")
    registered: list[str] = []

    def register(folder: Path, version: str, parent: str, metrics: dict) -> None:
        register_trained(engine, folder, version, parent=parent, method=method, base_model=str(base), metrics=metrics)
        registered.append(version)
        say(f"registered model version {version} at {folder} (loss {metrics['train_loss']:.4f}, {metrics['steps']} steps)")

    parent = model_version(base)
    if iterations > 1:
        from organic.learn.iterate import iterate_cringe
        from organic.learn.reward import RewardModel, held_out_auc

        names = [f"{name}-it{i}" for i in range(1, iterations + 1)]
        iterate_cringe(examples, base, out, RewardModel.load(reward_folder), iterations, config,
                       contexts_per_iteration=contexts_per_iteration, candidates=candidates,
                       reward_auc=held_out_auc(reward_folder),
                       on_iteration=lambda i, folder, m: register(folder, names[i - 1], names[i - 2] if i > 1 else parent, m))
    else:
        register(out, name, parent, train(method, examples, base, out, config))
    return registered


def held_out_set(engine: Engine, config: LoopConfig):
    """The held-out contexts every model answers (``evaluate.run.held_out_contexts``, spread over conversations)."""
    from organic.evaluate.run import held_out_contexts

    return held_out_contexts(engine, config.held_out_share, config.eval_contexts, seed=config.seed,
                             per_conversation=config.eval_per_conversation)


def evaluate_store(store: Engine, models: dict[str, Path], contexts: list, out: Path, *, reward, judge,
                   versions: dict[str, str], human_replies: int = 200, max_new_tokens: int = 48, batch_size: int = 8,
                   seed: int = 0, engine: str = "transformers", rater=None, crowd_agreement: bool = False,
                   progress: Callable[[int], None] | None = None) -> tuple[dict[str, Any], Path, Path]:
    """``organic eval``, the loop's and the watcher's eval: ``evaluate.run.evaluate_models`` of ``models`` (name ->
    folder; the first is the baseline of the paired tests) on ``contexts``, with perplexity on ``human_replies`` real
    human replies no model trains on; with ``rater``, how often the raters' judge agrees with ``judge``; with
    ``crowd_agreement``, the judge's agreement with the store's crowd labels. Writes ``eval.json`` and ``eval.md`` in
    ``out`` and records each model named in ``versions`` (result name -> model version) on its version, for the
    console. Returns the results and both paths."""
    from organic.evaluate import judge as judging
    from organic.evaluate.labelled import human_reference
    from organic.evaluate.run import evaluate_models, write_eval_report

    results = evaluate_models(models, contexts, human_reference(human_replies), reward, judge=judge,
                              max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, engine=engine,
                              progress=progress)
    if rater is not None:
        results["raters_vs_evaluator"] = judging.instruments_agreement(rater, results)
    if crowd_agreement:
        results["crowd_agreement"] = judging.crowd_agreement(store, judge)
    json_path, md_path = write_eval_report(results, out)
    for name, version in versions.items():
        record_eval(store, version, results["models"][name])
    return results, json_path, md_path


EVAL = ("breakdown", "guards", "paired", "reward")  # what of a model's eval its model version records


def record_eval(engine: Engine, name: str, model: dict[str, Any]) -> None:
    """Record ``model``, one model's entry of ``evaluate.run.evaluate_models`` results, as model version ``name``'s
    eval (the ``eval`` key of its metrics), which the console's Models panel shows: ``organic loop``, ``organic eval``
    and the watcher's eval step record theirs this way."""
    from organic.store.versions import record_metrics

    record_metrics(engine, name, eval=finite({k: model.get(k) for k in EVAL}))


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinity as None: JSON columns (PostgreSQL's above all) refuse them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def _sizes(examples) -> dict[str, int]:
    return {"examples": len(examples), "good": sum(e.label == GOOD for e in examples), "bad": sum(e.label == BAD for e in examples)}


def render(summary: dict[str, Any]) -> str:
    """The loop's report: the base model against every iteration and baseline, Table 9 style."""
    from organic.evaluate.run import render_table

    s, t, r, a = summary["simulation"], summary["trolls"], summary["reward_model"], summary["analysis"]
    if s:
        source = (f"Simulated {s['people']} people ({s['trolls']} trolls), {s['messages']} messages, {s['feedback_answers']} "
                  f"answers to \"what should I have said?\", {s['canned_replies']} canned safety replies, in {s['seconds']:.0f} s.")
        trolls = (f"Troll detection (user level): {t['flagged']} flagged of {t['total']} users with ratings ({t['positives']} "
                  f"trolls), precision {t['precision']:.2f}, recall {t['recall']:.2f}, ROC AUC "
                  f"{t['auc'] if t['auc'] is not None else 'n/a'}; ")
    else:
        source = (f"From the store: {a['users']} users, {a['conversations']} conversations, {a['bot_messages']} bot replies, "
                  f"{a['thumbs_up']} thumbs up and {a['thumbs_down']} down; nobody simulated.")
        trolls = (f"Troll detection: {t['flagged']} of {t['total']} users with ratings flagged (no ground truth in a real "
                  "store); ")
    lines = [
        "# organic loop: base model vs CRINGE iterations and baselines",
        "",
        source,
        trolls + f"{t['too_few_labels']} users rated fewer than 3 replies, too few for a trust score.",
        f"Reward model on held-out thumbs: accuracy {r.get('accuracy', float('nan')):.2f}, ROC AUC {r.get('roc_auc', float('nan')):.2f} "
        f"(n = {r.get('n', 0)}).",
        "Training data: " + " and ".join(f"{d['examples']} examples ({d['good']} good, {d['bad']} bad) {how}" for how, d in
                                         (("with troll filtering", summary["training_data"]["filtered"]),
                                          ("without", summary["training_data"]["unfiltered"]))) + ".",
        *(f"Note: {note}" for note in summary["notes"].values()),
        "",
        f"Evaluated on {len(summary['eval']['contexts'])} held-out contexts from {summary['eval_conversations']} conversations, "
        f"one sampled reply each (engine {summary['eval']['settings']['engine']}), by the evaluator judge. "
        + summary["eval"]["judge"]["agreement"],
        _instruments(summary["eval"].get("raters_vs_evaluator")),
        "",
        render_table(summary["eval"]),
        "",
        "Stage timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in summary["timings_s"].items()),
    ]
    return "\n".join(lines) + "\n"


def _instruments(agreement: dict | None) -> str:
    if not agreement or not agreement.get("n"):
        return ""
    return (f"The simulated people's judge (fitted on the other half of the labelled set, no likelihood signals) agrees with "
            f"the evaluator on {agreement['n']} evaluated replies at good/bad kappa {agreement['kappa_binary']}: two instruments, not one.")
