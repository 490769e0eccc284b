"""The one command line, ``organic``: parses arguments and calls the packages; no logic of its own."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from organic.settings import get_settings

app = typer.Typer(help="Improve an open chat model by learning from its organic conversations.", no_args_is_help=True)
db_app = typer.Typer(help="The interaction store.", no_args_is_help=True)
import_app = typer.Typer(help="Bring conversations into the store.", no_args_is_help=True)
user_app = typer.Typer(help="Users of the store.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(import_app, name="import")
app.add_typer(user_app, name="user")

console = Console(stderr=True, soft_wrap=True)  # long paths and messages stay on one line


def fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def _engine(database_url: str | None = None):
    from organic.store import connect

    return connect(database_url or get_settings().url)


DatabaseOption = Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL (default: ORGANIC_DATABASE_URL or the SQLite file under ORGANIC_HOME).")]


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseOption = None, revision: str = "head") -> None:
    """Apply the schema migrations (commands that open the store do this by themselves)."""
    from organic.store.db import make_engine, upgrade

    engine = make_engine(database_url or get_settings().url)
    upgrade(engine, revision)
    console.print(f"store at {engine.url.render_as_string(hide_password=True)} is at revision {revision}")


@import_app.command("bb3x")
def import_bb3x(
    paths: Annotated[list[Path], typer.Argument(help="BB3x JSONL files, or folders of release_data_NN.jsonl chunks.")],
    split: Annotated[str | None, typer.Option(help="Split for every conversation (default: from the chunk number, 00-02 test, 03-05 valid, 06-99 train).")] = None,
    model_version: Annotated[str, typer.Option(help="Model version that wrote the bot messages.")] = "blenderbot3-175b",
    allow_release: Annotated[bool, typer.Option("--allow-release", help="Assert that the users of lines without organic's consent record (the public BB3x release) agreed to a public release; otherwise they are saved, not released. Lines organic exported keep their users' own choices.")] = False,
    stop_on_error: Annotated[bool, typer.Option(help="Stop at the first bad line instead of skipping it.")] = False,
    database_url: DatabaseOption = None,
) -> None:
    """Import conversations in the BB3x release format; importing a file twice adds nothing."""
    from organic.formats.ingest import expand, import_bb3x as run_import

    try:
        total = sum(p.stat().st_size for p in expand(paths))
    except FileNotFoundError as error:
        raise fail(str(error)) from None
    engine = _engine(database_url)
    columns = [TextColumn("importing"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("import", total=total)
        report = run_import(engine, paths, split=split, model_version=model_version, allow_release=allow_release,
                            stop_on_error=stop_on_error, progress=lambda n: progress.advance(task, n))
    for error in report.errors[:50]:
        console.print(f"[yellow]skipped[/yellow] {error}")
    if len(report.errors) > 50:
        console.print(f"... and {len(report.errors) - 50} more bad lines")
    c = report.counts
    console.print(f"imported {c.conversations} conversations ({c.messages} messages); "
                  f"{c.existing} already in the store, {c.deleted} of deleted users, {len(report.errors)} bad lines"
                  + (" (stopped at the first)" if report.stopped else ""))
    if report.errors:
        raise typer.Exit(1)


@app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="File to write (a folder for --format hf).")],
    fmt: Annotated[str, typer.Option("--format", help="bb3x, jsonl, parquet, hf, or a TRL training set: sft, kto, dpo.")] = "bb3x",
    split: Annotated[list[str] | None, typer.Option(help="Only these splits (repeatable): train, valid, test.")] = None,
    since: Annotated[datetime | None, typer.Option(help="Only conversations started at or after this date.")] = None,
    until: Annotated[datetime | None, typer.Option(help="Only conversations started before this date.")] = None,
    model_version: Annotated[str | None, typer.Option(help="Only conversations served by this model version.")] = None,
    consent: Annotated[str | None, typer.Option(help="Only users who chose: 'saved' (save my conversation) or 'release' (allow public release).")] = None,
    release: Annotated[bool, typer.Option("--release", help="Public release: consented users only, PII scrubbed, ids re-hashed, data card written.")] = False,
    database_url: DatabaseOption = None,
) -> None:
    """Export conversations from the store."""
    from organic.formats.export import FORMATS, export as run_export
    from organic.store.read import Filters, count_conversations

    if fmt not in FORMATS:
        raise fail(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if consent not in (None, "saved", "release"):
        raise fail(f"unknown consent {consent!r}; choose 'saved' or 'release'")
    if split and (bad := set(split) - {"train", "valid", "test"}):
        raise fail(f"unknown split {', '.join(sorted(bad))}; choose from train, valid, test")
    filters = Filters(splits=split, since=since, until=until, model_version=model_version, consent=consent)
    engine = _engine(database_url)
    try:
        total = count_conversations(engine, filters)
        with Progress(TextColumn("exporting"), BarColumn(), TextColumn("{task.completed}/{task.total} conversations"),
                      TimeRemainingColumn(), console=console, transient=True) as progress:
            task = progress.add_task("export", total=total)
            summary = run_export(engine, fmt, out, filters, release=release,
                                 progress=lambda n: progress.advance(task, n))
    except ValueError as error:
        raise fail(str(error)) from None
    console.print(f"wrote {summary.rows} {fmt} rows from {summary.conversations} conversations "
                  f"({summary.messages} messages) to {out}" + (" with a data card" if release else ""))


@user_app.command("delete")
def user_delete(pseudo_id: Annotated[str, typer.Argument(help="The user's pseudonymous id.")], database_url: DatabaseOption = None) -> None:
    """Remove a user's conversations, ratings and annotations from the store, and keep them out of later imports."""
    from organic.store.users import delete_user

    removed = delete_user(_engine(database_url), pseudo_id)
    if removed is None:
        raise fail(f"no user {pseudo_id!r} in the store (nothing deleted; later imports of them are blocked anyway)", 1)
    console.print(f"deleted user {pseudo_id}: {removed} conversations removed")


@user_app.command("list")
def user_list(limit: int = 20, database_url: DatabaseOption = None) -> None:
    """Users with their consent choices and conversation counts."""
    from organic.store.users import list_users

    table = Table("pseudo id", "18+", "saved", "release", "conversations")
    for row in list_users(_engine(database_url), limit):
        table.add_row(row.pseudo_id, str(row.age_confirmed), str(row.save_conversations), str(row.allow_release), str(row.conversations))
    Console().print(table)


token_app = typer.Typer(help="Signed tokens: users' sessions, annotators' and raters' links.", no_args_is_help=True)
app.add_typer(token_app, name="token")


def _role(role: str | None) -> str | None:
    from organic.store.tokens import ROLES

    if role is not None and role not in ROLES:
        raise fail(f"unknown role {role!r}: {', '.join(ROLES)}")
    return role


@token_app.command("revoke")
def token_revoke(
    token: Annotated[str, typer.Argument(help="The token (a session token, or what an annotator's or rater's link carries after #token=), or a token id as `organic token list` shows it.")],
    database_url: DatabaseOption = None,
) -> None:
    """Refuse one token from now on, on every server on the store, restarts included."""
    from organic.serve.auth import read_token, secret_key
    from organic.store.tokens import TOKEN_ID, revoke

    role = subject = None
    if TOKEN_ID.match(token):
        token_id = token
    else:
        settings = get_settings()
        info = read_token(token, secret_key(settings.secret_key, settings.home))
        if info.token_id is None or not TOKEN_ID.match(info.token_id):
            raise fail("this is neither a token of organic's nor a token id (an old token, signed before tokens "
                       "carried ids, is refused anyway)")
        if info.role is None:
            console.print("[yellow]warning:[/yellow] the token does not verify with this machine's secret key "
                          "(ORGANIC_SECRET_KEY, else ORGANIC_HOME/secret_key); revoking its id all the same")
        token_id, role, subject = info.token_id, info.role, info.subject
    done = revoke(_engine(database_url), token_id, role, subject)
    what = " ".join(filter(None, [role or "token", token_id, subject and f"of {subject}"]))
    console.print(f"revoked {what}" if done else f"{what} was revoked already")


@token_app.command("revoke-all")
def token_revoke_all(role: Annotated[str, typer.Argument(help="user (every session: everyone logs in again), annotator or rater.")],
                     database_url: DatabaseOption = None) -> None:
    """Refuse every token of ROLE issued until now (in this very second too); tokens issued after it are valid."""
    from organic.store.tokens import revoke_all

    revoke_all(_engine(database_url), _role(role))
    console.print(f"revoked every {role} token issued until now")


@token_app.command("list")
def token_list(role: Annotated[str | None, typer.Option(help="Only tokens of this role: user, annotator, rater.")] = None,
               limit: int = 100, database_url: DatabaseOption = None) -> None:
    """Annotator and rater tokens issued, and tokens revoked (a user's session only once revoked), newest first."""
    from organic.store.tokens import tokens

    table = Table("id", "role", "name", "issued", "revoked")
    when = lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""  # noqa: E731
    for row in tokens(_engine(database_url), _role(role), limit):
        name = "every token issued until revoked" if row.id.startswith("*") else row.subject or ""
        table.add_row(row.id, row.role or "", name, when(row.issued_at), when(row.revoked_at))
    Console().print(table)


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    backend: Annotated[str | None, typer.Option(help="transformers (default, local model), ct2 (the same model through CTranslate2: faster on CPU), openai (any OpenAI-compatible server, e.g. vLLM), echo (instant test replies).")] = None,
    model: Annotated[str | None, typer.Option(help="Model: the bundled smollm2-135m-instruct, a local folder, or the served model's name for --backend openai.")] = None,
    openai_base_url: Annotated[str | None, typer.Option(help="URL of the OpenAI-compatible server for --backend openai, e.g. http://127.0.0.1:8001/v1.")] = None,
    memory: Annotated[bool | None, typer.Option("--memory/--no-memory", help="Long-term memory as in BB3 (default: ORGANIC_MEMORY, off).")] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Serve the web chat, its JSON API and an OpenAI-compatible endpoint (http://HOST:PORT/, API docs at /docs)."""
    import uvicorn

    from organic.serve.app import create_app, serving_backends
    from organic.serve.local import KEEP_ALIVE_S

    overrides = {k: v for k, v in {"backend": backend, "model": model, "openai_base_url": openai_base_url,
                                   "database_url": database_url, "memory": memory}.items() if v is not None}
    settings = get_settings().model_copy(update=overrides)
    engine = _engine(settings.url)
    try:
        backends, shares = serving_backends(settings, engine)
    except (ValueError, FileNotFoundError) as error:
        raise fail(str(error)) from None
    app_ = create_app(settings, backends, engine=engine, shares=shares)
    serving_ = ", ".join(f"{b.model_version} ({(shares or {}).get(b.model_version, 1.0):.0%})" for b in backends)
    console.print(f"organic: chat on http://{host}:{port}/ with {backends[0].name}: {serving_}; store {engine.url.render_as_string(hide_password=True)}")
    uvicorn.run(app_, host=host, port=port, log_level="warning", timeout_keep_alive=KEEP_ALIVE_S)


reward_app = typer.Typer(help="The reward model: good / not good bot replies in context.", no_args_is_help=True)
app.add_typer(reward_app, name="reward")


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

    train, test = reward_labels(_engine(database_url), LoopConfig(held_out_share=held_out_share), flagged=set())
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
    n = score_store(_engine(database_url), reward, overwrite=overwrite)
    console.print(f"scored {n} bot replies")


@app.command("train")
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
        train_on_store(_engine(database_url), base, out, config, method=method, iterations=iterations,
                       name=name or f"{method}-{_time.strftime('%Y%m%d-%H%M%S')}", reward_folder=reward_model,
                       contexts_per_iteration=contexts_per_iteration, candidates=candidates, balance=balance,
                       feedback_as_positive=feedback_as_positive, exclude_users=exclude_user or (),
                       exclude_trolls=exclude_trolls, splits=split, say=console.print)
    except (ValueError, FileNotFoundError) as error:
        raise fail(str(error)) from None


@app.command("analyze")
def analyze(
    out: Annotated[Path, typer.Option("--out", help="Folder for report.html (plots inside) and report.json (every figure).")],
    source: Annotated[Path | None, typer.Option("--from", help="A BB3x release file, or a flat-table export (.jsonl, .parquet, or a folder of .parquet files); default: the store.")] = None,
    check_safety: Annotated[bool, typer.Option(help="Run the safety check on messages that carry no verdict (about a thousand a second).")] = False,
    database_url: DatabaseOption = None,
) -> None:
    """The organic-data report: Table 1 and Table 2 style figures with 95% intervals, feedback, activity, annotator agreement, plots."""
    from organic.analyze.report import build_report, iter_figures

    try:
        with console.status("analysing"):
            figures = build_report(source, out, None if source else _engine(database_url), check_safety=check_safety)
    except (ValueError, FileNotFoundError) as error:
        raise fail(str(error)) from None
    console.print(", ".join(f"{name.replace('_', ' ')} {value:,}" for name, value in iter_figures(figures)))
    console.print(f"wrote {out / 'report.html'} and {out / 'report.json'}")


@app.command("trolls")
def trolls(
    threshold: Annotated[float, typer.Option(help="Flag users whose trust (mean held-out probability of their labels) is under this.")] = 0.6,
    unsafe_threshold: Annotated[float, typer.Option(help="Also flag users with more than this share of unsafe messages ...")] = 0.5,
    min_messages: Annotated[int, typer.Option(help="... among at least this many messages.")] = 5,
    features: Annotated[str, typer.Option(help="minilm (sentence embeddings, slower) or tfidf (quick).")] = "minilm",
    limit: Annotated[int, typer.Option(help="Users to list, lowest trust first (0: all).")] = 50,
    out: Annotated[Path | None, typer.Option("--out", help="Also write every user's scores as JSON lines here.")] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Helpers vs trolls: each user's trust score (Ju et al. 2022), their share of unsafe messages, and why."""
    import json as _json

    from organic.analyze.trolls import FEATURIZERS, TrustConfig, score_store

    if features not in FEATURIZERS:
        raise fail(f"unknown features {features!r}; choose one of: {', '.join(FEATURIZERS)}")
    with console.status("scoring users"):
        config = TrustConfig(threshold=threshold, unsafe_threshold=unsafe_threshold, min_messages=min_messages)
        rows = score_store(_engine(database_url), config=config, featurize=features)
    if out:
        out.write_text("".join(_json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    table = Table("user", "trust", "labels", "unsafe messages", "troll", "why")
    for r in rows[:limit or None]:
        table.add_row(r.user, "-" if r.trust is None else f"{r.trust:.2f}", str(r.labels),
                      f"{r.unsafe_messages}/{r.messages}", "yes" if r.is_troll else "", r.why)
    Console().print(table)
    few = sum(r.too_few_labels for r in rows)
    console.print(f"{sum(r.is_troll for r in rows)} of {len(rows)} users flagged as trolls" + (f"; all scores in {out}" if out else "")
                  + (f"; {few} rated fewer than 3 replies, too few for a trust score" if few else ""))


@app.command("simulate")
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


@app.command("judge")
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


@app.command("eval")
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
    store = _engine(database_url)
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


@app.command("loop")
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
    engine_ = _engine(database_url or f"sqlite:///{(out / 'loop.db').resolve()}")
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


@app.command("versions")
def versions_command(database_url: DatabaseOption = None) -> None:
    """Model versions in the store, with their lineage, status and live traffic share."""
    from organic.store.versions import versions

    all_versions = versions(_engine(database_url))
    names = {v.id: v.name for v in all_versions}
    table = Table("name", "method", "parent", "status", "share", "path")
    for v in all_versions:
        table.add_row(v.name, v.method or "", names.get(v.parent_id, ""), v.status, f"{v.traffic_share:.0%}", v.path or "")
    Console().print(table)


def _follows() -> str:
    """When a running server applies a plan stored now."""
    seconds = get_settings().plan_refresh_s
    return f"(a running `organic serve` follows within {seconds:g} s)" if seconds else "(restart `organic serve` to apply)"


@app.command("promote")
def promote(version: Annotated[str, typer.Argument(help="The model version to serve all new conversations.")],
            database_url: DatabaseOption = None) -> None:
    """Serve VERSION to every new conversation (a running `organic serve` follows within ORGANIC_PLAN_REFRESH_S seconds); `organic rollback` undoes it."""
    from organic.store.versions import set_serving

    try:
        set_serving(_engine(database_url), {version: 1.0}, note="promote")
    except ValueError as error:
        raise fail(str(error)) from None
    console.print(f"{version} now serves 100% of new conversations {_follows()}")


@app.command("ab")
def ab(shares: Annotated[list[str], typer.Argument(help="VERSION=SHARE pairs, e.g. base=0.5 cringe-it3=0.5.")],
       database_url: DatabaseOption = None) -> None:
    """Live A/B: split new conversations between model versions by share (a running `organic serve` follows within ORGANIC_PLAN_REFRESH_S seconds)."""
    from organic.store.versions import set_serving

    plan = {}
    for item in shares:
        name, _, share = item.rpartition("=")
        try:
            plan[name] = float(share)
        except ValueError:
            raise fail(f"expected VERSION=SHARE, got {item!r}") from None
        if not name:
            raise fail(f"expected VERSION=SHARE, got {item!r}")
    try:
        plan = set_serving(_engine(database_url), plan, note="ab")
    except ValueError as error:
        raise fail(str(error)) from None
    console.print("serving " + ", ".join(f"{k} {v:.0%}" for k, v in plan.items()) + f" {_follows()}")


@app.command("ab-report")
def ab_report(database_url: DatabaseOption = None) -> None:
    """Organic thumbs up / down per bot message for each model version that served (live A/B), with 95% intervals."""
    from organic.evaluate.live import live_ab, render_markdown

    Console().print(render_markdown(live_ab(_engine(database_url))))


@app.command("rollback")
def rollback_command(database_url: DatabaseOption = None) -> None:
    """Go back to the serving plan before the last promote / ab / rollback."""
    from organic.store.versions import rollback

    try:
        plan = rollback(_engine(database_url))
    except ValueError as error:
        raise fail(str(error)) from None
    console.print("rolled back: serving " + ", ".join(f"{k} {v:.0%}" for k, v in plan.items()))


model_app = typer.Typer(help="Chat models.", no_args_is_help=True)
app.add_typer(model_app, name="model")


@model_app.command("prepare")
def model_prepare(name: Annotated[str, typer.Argument(help="The bundled model's name, or a local folder.")] = "smollm2-135m-instruct") -> None:
    """Prepare a model for serving and training (the bundled GGUF becomes a float32 folder, once)."""
    from organic.generate import prepare_model

    try:
        path = prepare_model(name, get_settings().home)
    except (ValueError, FileNotFoundError) as error:
        raise fail(str(error)) from None
    console.print(f"model ready at {path}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
