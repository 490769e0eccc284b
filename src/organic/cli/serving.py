"""Serving and the serving plan: ``organic serve``, ``versions``, ``promote``, ``ab``, ``ab-report``, ``rollback``
and ``model prepare``; ``organic.cli`` registers them on the root app."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from organic.cli.options import DatabaseOption, console, fail, store_engine
from organic.settings import get_settings

model_app = typer.Typer(help="Chat models.", no_args_is_help=True)


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

    from organic.serve.app import build_app
    from organic.serve.local import KEEP_ALIVE_S

    overrides = {k: v for k, v in {"backend": backend, "model": model, "openai_base_url": openai_base_url,
                                   "database_url": database_url, "memory": memory}.items() if v is not None}
    settings = get_settings().model_copy(update=overrides)
    engine = store_engine(settings.url)
    try:
        app_ = build_app(settings, engine)
    except (ValueError, FileNotFoundError) as error:
        raise fail(str(error)) from None
    router = app_.state.server.router
    serving_ = ", ".join(f"{name} ({share:.0%})" for name, share in router.shares.items())
    console.print(f"organic: chat on http://{host}:{port}/ with {next(iter(router.backends.values())).name}: {serving_}; "
                  f"store {engine.url.render_as_string(hide_password=True)}")
    uvicorn.run(app_, host=host, port=port, log_level="warning", timeout_keep_alive=KEEP_ALIVE_S)


def versions_command(database_url: DatabaseOption = None) -> None:
    """Model versions in the store, with their lineage, status and live traffic share."""
    from organic.store.versions import versions

    all_versions = versions(store_engine(database_url))
    names = {v.id: v.name for v in all_versions}
    table = Table("name", "method", "parent", "status", "share", "path")
    for v in all_versions:
        table.add_row(v.name, v.method or "", names.get(v.parent_id, ""), v.status, f"{v.traffic_share:.0%}", v.path or "")
    Console().print(table)


def _operator() -> str:
    """Who changed the serving plan from the command line, for the audit log: the login name, marked as the CLI's."""
    try:
        return f"{getpass.getuser()} (cli)"
    except (KeyError, OSError):  # no login name in this environment
        return "(cli)"


def _follows() -> str:
    """When a running server applies a plan stored now."""
    seconds = get_settings().plan_refresh_s
    return f"(a running `organic serve` follows within {seconds:g} s)" if seconds else "(restart `organic serve` to apply)"


def promote(version: Annotated[str, typer.Argument(help="The model version to serve all new conversations.")],
            database_url: DatabaseOption = None) -> None:
    """Serve VERSION to every new conversation (a running `organic serve` follows within ORGANIC_PLAN_REFRESH_S seconds); `organic rollback` undoes it."""
    from organic.store.versions import set_serving_audited

    try:
        set_serving_audited(store_engine(database_url), {version: 1.0}, "promote", who=_operator(), action="promote")
    except ValueError as error:
        raise fail(str(error)) from None
    console.print(f"{version} now serves 100% of new conversations {_follows()}")


def ab(shares: Annotated[list[str], typer.Argument(help="VERSION=SHARE pairs, e.g. base=0.5 cringe-it3=0.5.")],
       database_url: DatabaseOption = None) -> None:
    """Live A/B: split new conversations between model versions by share (a running `organic serve` follows within ORGANIC_PLAN_REFRESH_S seconds)."""
    from organic.store.versions import set_serving_audited

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
        plan = set_serving_audited(store_engine(database_url), plan, "ab", who=_operator(), action="ab")[0]
    except ValueError as error:
        raise fail(str(error)) from None
    console.print("serving " + ", ".join(f"{k} {v:.0%}" for k, v in plan.items()) + f" {_follows()}")


def ab_report(database_url: DatabaseOption = None) -> None:
    """Organic thumbs up / down per bot message for each model version that served (live A/B), with 95% intervals."""
    from organic.evaluate.live import live_ab, render_markdown

    Console().print(render_markdown(live_ab(store_engine(database_url))))


def rollback_command(database_url: DatabaseOption = None) -> None:
    """Go back to the serving plan before the last promote / ab / rollback."""
    from organic.store.versions import rollback

    try:
        plan = rollback(store_engine(database_url), _operator())
    except ValueError as error:
        raise fail(str(error)) from None
    console.print("rolled back: serving " + ", ".join(f"{k} {v:.0%}" for k, v in plan.items()))


@model_app.command("prepare")
def model_prepare(name: Annotated[str, typer.Argument(help="The bundled model's name, or a local folder.")] = "smollm2-135m-instruct") -> None:
    """Prepare a model for serving and training (the bundled GGUF becomes a float32 folder, once)."""
    from organic.generate import prepare_model

    try:
        path = prepare_model(name, get_settings().home)
    except (ValueError, FileNotFoundError) as error:
        raise fail(str(error)) from None
    console.print(f"model ready at {path}")
