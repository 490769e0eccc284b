"""The loop: ``organic simulate`` (its dry run) and ``loop`` (``--watch``: as a service); ``organic.cli`` registers them
on the root app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from organic.cli.options import DatabaseOption, console, fail, store_engine
from organic.settings import get_settings


def simulate_command(
    users: Annotated[int, typer.Option(help="Simulated people.")] = 50,
    troll_share: Annotated[float, typer.Option(help="Share of them who are trolls (SafetyMix types, drawn evenly).")] = 0.3,
    troll_type: Annotated[list[str] | None, typer.Option(help="Only these troll types (repeatable): troll, master_troll, lazy_troll, safe_troll, unsafe_troll, gaslight_troll.")] = None,
    turns: Annotated[int, typer.Option(help="Messages each person sends (their real dialogue permitting).")] = 4,
    rating_rate: Annotated[float, typer.Option(help="Share of bot replies a person rates (BB3: about 5%).")] = 0.05,
    concurrency: Annotated[int, typer.Option(help="People chatting at the same time.")] = 8,
    url: Annotated[str | None, typer.Option(help="A running organic server; default: start one here on the store.")] = None,
    backend: Annotated[str | None, typer.Option(help="For the server started here: transformers, ct2, openai or echo.")] = None,
    manifest: Annotated[Path | None, typer.Option(help="Write who is a helper and who a troll (JSON) here.")] = None,
    seed: int = 0,
    database_url: DatabaseOption = None,
) -> None:
    """Simulated helpers and trolls chat with the real server over HTTP and rate its replies: the dry run of the loop."""
    from organic.simulate.people import population
    from organic.simulate.run import simulate_store
    from organic.simulate.safetymix import TROLL_TYPES
    from organic.taxonomy import Thumb

    settings = get_settings().model_copy(update={k: v for k, v in {"backend": backend, "database_url": database_url}.items() if v})
    try:
        people = population(users, troll_share, tuple(troll_type or TROLL_TYPES), turns=turns, seed=seed)
    except ValueError as error:
        raise fail(str(error)) from None
    with Progress(TextColumn("simulating"), BarColumn(), TextColumn("{task.completed}/{task.total} people"),
                  TimeRemainingColumn(), console=console, transient=True) as progress:
        task = progress.add_task("people", total=len(people))
        report = simulate_store(settings, people, url=url, manifest=manifest, rating_rate=rating_rate,
                                concurrency=concurrency, progress=lambda n: progress.advance(task, n))
    console.print(f"{len(report.people)} people, {report.messages} messages acknowledged, {report.thumbs(Thumb.UP)} thumbs "
                  f"up, {report.thumbs(Thumb.DOWN)} down, {report.feedback_answers} feedback answers, {report.canned} "
                  f"canned replies in {report.seconds:.0f} s"
                  + (f"; {len(report.errors)} people failed: {report.errors[0]}" if report.errors else ""))
    if report.errors:
        raise typer.Exit(1)


def loop_command(
    out: Annotated[Path | None, typer.Option("--out", help="Folder for the models, the analysis and the loop's report (default runs/loop; with --watch, ORGANIC_HOME/watch).")] = None,
    users: int = 200,
    troll_share: float = 0.3,
    turns: int = 4,
    rating_rate: Annotated[float, typer.Option(help="Share of replies people rate (BB3: 5%; more gives more labels at small sizes).")] = 0.3,
    iterations: Annotated[int, typer.Option(help="CRINGE iterations.")] = 3,
    baseline: Annotated[list[str] | None, typer.Option(help="TRL baselines on the same data (repeatable; default sft, kto and dpo).")] = None,
    max_steps: Annotated[int, typer.Option(help="Optimizer steps per training run.")] = 20,
    batch_size: int = 8,
    learning_rate: float = 5e-5,
    max_new_tokens: int = 32,
    eval_contexts: Annotated[int, typer.Option(help="Held-out contexts each model answers.")] = 60,
    eval_per_conversation: Annotated[int, typer.Option(help="At most this many held-out contexts from one conversation.")] = 2,
    held_out_share: Annotated[float, typer.Option(help="Share of conversations kept out of training, for the evaluation.")] = 0.2,
    seed: int = 0,
    seeds: Annotated[int, typer.Option(help="CRINGE chains trained with seeds seed, seed+1, ...; the last iteration of each is evaluated.")] = 1,
    engine: Annotated[str, typer.Option(help="Generation engine for the simulated server, CRINGE candidates and the eval: transformers, ct2-int8 or ct2-float32.")] = "transformers",
    from_store: Annotated[bool, typer.Option("--from-store", help="Simulate nobody: learn from the conversations already in --database-url (a deployment's store or an imported BB3x release).")] = False,
    model: Annotated[str | None, typer.Option(help="Base model: the bundled smollm2-135m-instruct or a local folder (with --watch: the model `organic serve` serves while no serving plan is set).")] = None,
    database_url: Annotated[str | None, typer.Option("--database-url", help="Store for the run (default: a new SQLite file in --out; with --watch, ORGANIC_DATABASE_URL or the SQLite file under ORGANIC_HOME).")] = None,
    judge: Annotated[Path | None, typer.Option("--judge", help="The evaluation's judge, a folder from `organic judge train` (default: the shipped evaluator half).")] = None,
    min_reward_auc: Annotated[float | None, typer.Option(help="Held-out ROC AUC the reward model needs to label anything (iterative CRINGE; with --watch, every round) [default: 0.65].")] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Run as a service next to `organic serve` on its store: a round (analyze -> trolls -> reward -> CRINGE -> eval -> offline gate -> A/B -> promote or roll back) each --every new ratings and feedback answers; resumes after a restart.")] = False,
    every: Annotated[int, typer.Option(help="--watch: new ratings and feedback answers since the last round that start a round.")] = 200,
    ab_share: Annotated[float, typer.Option(help="--watch: the candidate's share of new conversations in its A/B.")] = 0.1,
    min_thumbs: Annotated[int, typer.Option(help="--watch: thumbs each version needs in the A/B before it is decided.")] = 100,
    poll: Annotated[float, typer.Option(help="--watch: seconds between looks at the store.")] = 30.0,
    once: Annotated[bool, typer.Option("--once", help="--watch: exit when one round ends (promoted, rolled back, rejected by the gate: 0; stopped on a failed step: 1).")] = False,
) -> None:
    """The whole loop: simulate (or --from-store) -> analyze -> trolls -> reward model -> CRINGE x N, SFT, KTO, DPO -> eval, one report.
    With --watch, the loop as a service on a deployment's store, gated, one round at a time."""
    from organic.loop import LoopConfig, run_loop

    settings = get_settings().model_copy(update={"backend": "transformers", **({"model": model} if model else {})})
    config = LoopConfig(users=users, troll_share=troll_share, turns=turns, rating_rate=rating_rate, iterations=iterations,
                        baselines=tuple(baseline if baseline is not None else LoopConfig.baselines), max_steps=max_steps,
                        batch_size=batch_size, learning_rate=learning_rate, max_new_tokens=max_new_tokens,
                        eval_contexts=eval_contexts, eval_per_conversation=eval_per_conversation,
                        held_out_share=held_out_share, seed=seed, seeds=seeds, engine=engine, from_store=from_store or watch,
                        **{k: v for k, v in {"min_reward_auc": min_reward_auc, "evaluator_judge": judge}.items() if v is not None})
    if watch:
        return _watch(settings, database_url, out or settings.home / "watch", config, every=every, ab_share=ab_share,
                      min_thumbs=min_thumbs, poll_s=poll, once=once)
    out = out or Path("runs/loop")
    out.mkdir(parents=True, exist_ok=True)
    if from_store and not database_url:
        raise fail("--from-store learns from an existing store: give its --database-url")
    engine_ = store_engine(database_url or f"sqlite:///{(out / 'loop.db').resolve()}")
    try:
        run_loop(settings, engine_, out, config, console)
    except (ValueError, FileNotFoundError) as error:
        raise fail(str(error)) from None
    console.print(f"loop report: {out / 'README.md'}")
    print((out / "README.md").read_text())


def _watch(settings, database_url: str | None, out: Path, config, *, once: bool, **options) -> None:
    """``organic loop --watch``: open the store, then poll it (``organic.watch.Watcher``) until stopped or, with
    ``once``, until a round ends."""
    from rich.markup import escape

    from organic.watch import Watcher, WatchConfig, check_config, open_store

    try:
        watch_config = WatchConfig(config, **options)
        check_config(watch_config)  # before the store is opened: a wrong option is the first thing said
        engine_ = open_store(database_url or settings.url)
        watcher = Watcher(settings, engine_, out, watch_config, console)
    except (ValueError, FileNotFoundError) as error:
        raise fail(str(error)) from None
    console.print(f"watching {engine_.url.render_as_string(hide_password=True)}: a round every {watch_config.every} new "
                  f"ratings and feedback answers, files under {out} (Ctrl-C stops; a restart resumes the round in progress)")
    try:
        row = watcher.run(once=once)
    except KeyboardInterrupt:
        console.print("watcher stopped; started again, it resumes the round in progress")
        return
    console.print(f"round {row.id} {row.status.replace('_', ' ')}: {escape(row.reason or '')}")
    if row.status == "stopped":
        raise typer.Exit(1)
