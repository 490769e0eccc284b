"""Training: ``organic reward train``, ``reward score`` and ``train``; ``organic.cli`` registers them on the root
app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from organic.cli.options import DatabaseOption, console, fail, store_engine
from organic.settings import get_settings

reward_app = typer.Typer(help="The reward model: good / not good bot replies in context.", no_args_is_help=True)


@reward_app.command("train")
def reward_train(
    out: Annotated[Path, typer.Option("--out", help="Folder to save the reward model in.")],
    kind: Annotated[str, typer.Option(help="embedding (CPU: MiniLM embeddings + logistic regression) or hf (fine-tune a sequence-classification model).")] = "embedding",
    model: Annotated[str | None, typer.Option(help="For --kind hf: a local Hugging Face model folder.")] = None,
    held_out_share: Annotated[float, typer.Option(help="Share of conversations held out for the metrics.")] = 0.2,
    database_url: DatabaseOption = None,
) -> None:
    """Train on thumbs and crowd labels in the store; report accuracy, F1, ROC AUC and calibration on held-out conversations."""
    from organic.learn.reward import RewardConfig, fit_and_save
    from organic.loop import LoopConfig, reward_labels

    train, test = reward_labels(store_engine(database_url), LoopConfig(held_out_share=held_out_share), flagged=set())
    try:
        _, metrics = fit_and_save(train, test, out, RewardConfig(kind=kind, model=model))
    except ValueError as error:
        raise fail(str(error)) from None
    table = Table("held-out metric", "value")
    for name, value in metrics.items():
        table.add_row(name, f"{value:.3f}" if isinstance(value, float) else str(value))
    Console().print(table)
    console.print(f"trained on {len(train)} replies ({sum(e.label for e in train)} good); saved to {out}")


@reward_app.command("score")
def reward_score(
    model: Annotated[Path, typer.Option("--model", help="A folder written by `organic reward train`.")],
    overwrite: Annotated[bool, typer.Option(help="Re-score replies that already have a verdict.")] = False,
    database_url: DatabaseOption = None,
) -> None:
    """Write the reward model's verdict (BB3x reward string) onto every bot reply in the store."""
    from organic.learn.reward import RewardModel, score_store

    try:
        reward = RewardModel.load(model)
    except FileNotFoundError as error:
        raise fail(str(error)) from None
    n = score_store(store_engine(database_url), reward, overwrite=overwrite)
    console.print(f"scored {n} bot replies")


def train_command(
    method: Annotated[str, typer.Option(help="cringe, or a TRL baseline on the same data: sft, kto, dpo.")] = "cringe",
    out: Annotated[Path, typer.Option("--out", help="Folder for the trained model (one sub-folder per iteration).")] = Path("runs/model"),
    model: Annotated[str | None, typer.Option(help="Starting model: the bundled smollm2-135m-instruct (default) or a local folder.")] = None,
    name: Annotated[str | None, typer.Option(help="Model version name to register (default: METHOD-TIMESTAMP).")] = None,
    iterations: Annotated[int, typer.Option(help="CRINGE only: rounds of generate -> label -> retrain (BB3x used 3).")] = 1,
    reward_model: Annotated[Path | None, typer.Option(help="For --iterations > 1: a folder from `organic reward train`.")] = None,
    contexts_per_iteration: Annotated[int, typer.Option(help="Training contexts the model answers in each later iteration.")] = 64,
    candidates: Annotated[int, typer.Option(help="Replies sampled per context in each later iteration, labelled by the reward model (its held-out ROC AUC, recorded by `organic reward train`, must reach 0.65).")] = 4,
    epochs: float = 1.0,
    max_steps: Annotated[int, typer.Option(help="Stop after this many steps (-1: run the epochs).")] = -1,
    batch_size: int = 8,
    learning_rate: float = 1e-5,
    max_length: Annotated[int, typer.Option(help="Tokens of context + reply; older context is dropped first.")] = 256,
    lora: Annotated[bool, typer.Option(help="Train a LoRA adapter (merged into the saved model).")] = False,
    balance: Annotated[bool, typer.Option(help="As many positives as negatives.")] = True,
    feedback_as_positive: Annotated[bool, typer.Option(help="Use users' answers to 'what should I have said?' as positives.")] = True,
    exclude_user: Annotated[list[str] | None, typer.Option(help="Leave this user's conversations out (repeatable).")] = None,
    exclude_trolls: Annotated[bool, typer.Option(help="Leave out the users `organic trolls` flags.")] = False,
    split: Annotated[list[str] | None, typer.Option(help="Train on these splits only (default: all).")] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Retrain the chat model on the store's feedback: CRINGE (optionally iterated) or SFT / KTO / DPO."""
    import time as _time

    from organic.generate import prepare_model
    from organic.learn.train import TrainConfig
    from organic.loop import train_on_store

    config = TrainConfig(epochs=epochs, max_steps=max_steps, batch_size=batch_size, learning_rate=learning_rate,
                         max_length=max_length, lora=lora)
    try:
        base = prepare_model(model or get_settings().model, get_settings().home)
        train_on_store(store_engine(database_url), base, out, config, method=method, iterations=iterations,
                       name=name or f"{method}-{_time.strftime('%Y%m%d-%H%M%S')}", reward_folder=reward_model,
                       contexts_per_iteration=contexts_per_iteration, candidates=candidates, balance=balance,
                       feedback_as_positive=feedback_as_positive, exclude_users=exclude_user or (),
                       exclude_trolls=exclude_trolls, splits=split, say=console.print)
    except (ValueError, FileNotFoundError) as error:
        raise fail(str(error)) from None
