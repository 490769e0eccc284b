"""Judging replies: ``organic judge`` and ``eval``; ``organic.cli`` registers them on the root app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from organic.cli.options import DatabaseOption, console, fail, store_engine
from organic.settings import get_settings


def judge_command(
    target: Annotated[str, typer.Argument(help="`train` to fit a judge on the labelled set, or a JSONL file of {\"context\": [...], \"reply\": ...} lines to judge (write ./train for a file named train).")],
    out: Annotated[Path, typer.Option("--out", help="train: the folder for the judge and its report; judging: the output JSONL (each line plus label and p_bad).")],
    model: Annotated[Path | None, typer.Option("--model", help="A judge folder from `organic judge train` (default: the judge shipped with organic).")] = None,
    lm: Annotated[bool, typer.Option("--lm/--no-lm", help="train: also try the likelihood signals (needs the base model; judging is many times slower with them).")] = True,
    part: Annotated[str, typer.Option(help="train: fit on all of the train split, or only its `rater` or `evaluator` half (the loop keeps the two instruments apart).")] = "all",
) -> None:
    """Judge replies with the learned judge (P(bad) and a taxonomy label), or fit a judge on the labelled set."""
    from organic.evaluate.judge import Judge, agreement_line, judge_file, train_judge

    if target == "train":
        console.print("fitting judges on the labelled set (signals of every item first; minutes with --lm)")
        try:
            report = train_judge(out, use_lm=lm, part=part, cache=get_settings().home / "cache" / "judge-signals.npz")
        except (ValueError, FileNotFoundError) as error:
            raise fail(str(error)) from None
        typer.echo((out / "report.md").read_text())
        console.print(f"judge saved to {out}; use it with `organic judge FILE --model {out}`" + ("" if report["test"] else " (no test items)"))
        return
    source = Path(target)
    if not source.is_file():
        raise fail(f"{source} is not a file; give a JSONL file of {{\"context\", \"reply\"}} lines, or `train`")
    try:
        judge = Judge.load(model) if model else Judge.shipped()
    except (ValueError, FileNotFoundError) as error:
        raise fail(str(error)) from None
    errors: list[str] = []
    judged, skipped = judge_file(source, out, judge, on_error=lambda m: (errors.append(m), console.print(f"[red]{m}[/red]")))
    console.print(f"judged {judged} replies into {out}" + (f"; skipped {skipped} malformed lines" if skipped else ""))
    console.print(agreement_line(judge))
    if skipped:
        raise typer.Exit(1)


def eval_command(
    model: Annotated[list[str], typer.Option("--model", help="A model to evaluate (repeatable; the first is the baseline of the paired tests): NAME=FOLDER, a registered model version, the bundled smollm2-135m-instruct, or a folder.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for eval.json and eval.md.")] = Path("runs/eval"),
    reward_model: Annotated[Path | None, typer.Option(help="A folder from `organic reward train`: report its mean P(good) for each model's replies.")] = None,
    judge: Annotated[Path | None, typer.Option("--judge", help="A judge folder from `organic judge train` (default: the judge shipped with organic).")] = None,
    held_out_share: Annotated[float, typer.Option(help="Share of conversations held out of training (use the share training used).")] = 0.2,
    contexts: Annotated[int, typer.Option(help="Held-out contexts each model answers.")] = 300,
    human_replies: Annotated[int, typer.Option(help="Real human replies (reserved chit-chat, never trained on) for the perplexity guard.")] = 200,
    max_new_tokens: Annotated[int, typer.Option(help="Longest reply, in tokens.")] = 48,
    batch_size: Annotated[int, typer.Option(help="Contexts per generation batch.")] = 8,
    seed: Annotated[int, typer.Option(help="Sampling seed (the same for every model) and the held-out split's seed.")] = 0,
    engine: Annotated[str, typer.Option(help="Generation engine: transformers, ct2-int8 or ct2-float32 (CTranslate2, several times faster on a CPU).")] = "transformers",
    crowd_agreement: Annotated[bool, typer.Option(help="Also report the judge's agreement with the crowd labels in the store.")] = True,
    database_url: DatabaseOption = None,
) -> None:
    """Judge each model's replies to held-out contexts with the learned judge: Table 9 per model (95% intervals), the
    judge's agreement with labels made by reading, guards (length, copying, cut-off, perplexity on real human replies),
    a paired test against the first model. Writes eval.json (every reply; the /compare page takes it) and eval.md, and
    records each registered version's figures on it (the console's Models panel shows them)."""
    from organic.evaluate import judge as judging
    from organic.evaluate.run import held_out_contexts, render_table, resolve_models
    from organic.generate.batch import ENGINES
    from organic.learn.reward import RewardModel
    from organic.loop import evaluate_store
    from organic.store.versions import versions

    if engine not in ENGINES:
        raise fail(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    settings = get_settings()
    store = store_engine(database_url)
    try:
        folders = resolve_models(model, store, settings.home)
        reward = RewardModel.load(reward_model) if reward_model else None
        the_judge = judging.Judge.load(judge) if judge else judging.Judge.shipped()
    except (ValueError, FileNotFoundError) as error:
        raise fail(str(error)) from None
    held = held_out_contexts(store, held_out_share, contexts, seed=seed)
    if not held.contexts:
        raise fail(f"no held-out contexts: no conversation of the store falls in the held-out {held_out_share:.0%}; "
                   "bring conversations in first (`organic import bb3x`, `organic simulate`)")
    console.print(f"{len(held.contexts)} held-out contexts; evaluating {', '.join(folders)}")
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeRemainingColumn(), console=console) as bar:
        task = bar.add_task("replies", total=len(folders) * len(held.contexts))
        results, json_path, md_path = evaluate_store(
            store, folders, held.contexts, out, reward=reward, judge=the_judge, human_replies=human_replies,
            versions={name: name for name in {v.name for v in versions(store)}.intersection(model)},  # --model VERSION
            max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, engine=engine,
            crowd_agreement=crowd_agreement, progress=lambda n: bar.advance(task, n))
    typer.echo(render_table(results))
    console.print(results["judge"]["agreement"])
    console.print(f"wrote {json_path} and {md_path}")
