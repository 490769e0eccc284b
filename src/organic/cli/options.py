"""What the commands share: the console they talk on, the error exit, and the store's ``--database-url``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from organic.settings import get_settings

console = Console(stderr=True, soft_wrap=True)  # long paths and messages stay on one line


def fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def store_engine(database_url: str | None = None):
    from organic.store import connect

    return connect(database_url or get_settings().url)


DatabaseOption = Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL (default: ORGANIC_DATABASE_URL or the SQLite file under ORGANIC_HOME).")]
