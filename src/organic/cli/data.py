"""The store's own commands: ``organic db``, ``import``, ``export``, ``user`` and ``token``; ``organic.cli`` registers
them on the root app."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from organic.cli.options import DatabaseOption, console, fail, store_engine
from organic.settings import get_settings

db_app = typer.Typer(help="The interaction store.", no_args_is_help=True)
import_app = typer.Typer(help="Bring conversations into the store.", no_args_is_help=True)
user_app = typer.Typer(help="Users of the store.", no_args_is_help=True)
token_app = typer.Typer(help="Signed tokens: users' sessions, annotators' and raters' links.", no_args_is_help=True)


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
    engine = store_engine(database_url)
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
    engine = store_engine(database_url)
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

    removed = delete_user(store_engine(database_url), pseudo_id)
    if removed is None:
        raise fail(f"no user {pseudo_id!r} in the store (nothing deleted; later imports of them are blocked anyway)", 1)
    console.print(f"deleted user {pseudo_id}: {removed} conversations removed")


@user_app.command("list")
def user_list(limit: int = 20, database_url: DatabaseOption = None) -> None:
    """Users with their consent choices and conversation counts."""
    from organic.store.users import list_users

    table = Table("pseudo id", "18+", "saved", "release", "conversations")
    for row in list_users(store_engine(database_url), limit):
        table.add_row(row.pseudo_id, str(row.age_confirmed), str(row.save_conversations), str(row.allow_release), str(row.conversations))
    Console().print(table)


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
    done = revoke(store_engine(database_url), token_id, role, subject)
    what = " ".join(filter(None, [role or "token", token_id, subject and f"of {subject}"]))
    console.print(f"revoked {what}" if done else f"{what} was revoked already")


@token_app.command("revoke-all")
def token_revoke_all(role: Annotated[str, typer.Argument(help="user (every session: everyone logs in again), annotator or rater.")],
                     database_url: DatabaseOption = None) -> None:
    """Refuse every token of ROLE issued until now (in this very second too); tokens issued after it are valid."""
    from organic.store.tokens import revoke_all

    revoke_all(store_engine(database_url), _role(role))
    console.print(f"revoked every {role} token issued until now")


@token_app.command("list")
def token_list(role: Annotated[str | None, typer.Option(help="Only tokens of this role: user, annotator, rater.")] = None,
               limit: int = 100, database_url: DatabaseOption = None) -> None:
    """Annotator and rater tokens issued, and tokens revoked (a user's session only once revoked), newest first."""
    from organic.store.tokens import tokens

    table = Table("id", "role", "name", "issued", "revoked")
    when = lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""  # noqa: E731
    for row in tokens(store_engine(database_url), _role(role), limit):
        name = "every token issued until revoked" if row.id.startswith("*") else row.subject or ""
        table.add_row(row.id, row.role or "", name, when(row.issued_at), when(row.revoked_at))
    Console().print(table)
