"""Engines, sessions and schema upgrades for the store.

``connect`` returns an engine whose schema is at the newest Alembic revision: every command that opens
the store upgrades it first, so a laptop user never runs migrations by hand (``organic db upgrade``
does it explicitly for a deployment). SQLite runs in WAL mode with foreign keys on.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below), not the driver
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
    cursor.execute("PRAGMA foreign_keys=ON")  # SQLite ignores ON DELETE CASCADE without it
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with this project's connection settings; does not touch the schema. Its errors never
    quote the statement's parameters (``hide_parameters``): they hold people's words, and errors end up in logs."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        in_memory = parsed.database in (None, "", ":memory:")
        if not in_memory:  # the store holds people's words: readable by this user only (its -wal and -shm follow)
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.close(os.open(parsed.database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                pass
        extra = {"poolclass": StaticPool} if in_memory else {}  # one in-memory database shared by all threads
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True, **extra)
        event.listen(engine, "connect", _sqlite_pragmas)
        # take the write lock at BEGIN: a transaction that read first and writes later would otherwise
        # fail with "database is locked" instead of waiting its turn under concurrency
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, hide_parameters=True)


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def needs_upgrade(engine: Engine) -> bool:
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() != head


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply the Alembic migrations up to ``revision``."""
    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def connect(url: str, *, upgrade_schema: bool = True) -> Engine:
    """An engine on ``url`` whose schema is at the newest revision (unless told not to upgrade)."""
    engine = make_engine(url)
    if upgrade_schema and needs_upgrade(engine):
        upgrade(engine)
    return engine


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session, session.begin():
        yield session


def private_store() -> Engine:
    """A throwaway store for users who chose not to save: a SQLite file in a folder only this process's user can
    read, in memory-backed ``/dev/shm`` where there is one (else the temp folder), deleted when the engine is
    garbage-collected or the process exits. It runs with the same settings as any SQLite store (WAL, one writer
    at a time), so concurrent users are as safe as on the real store; a single shared in-memory connection was
    not (threads ran inside each other's transactions)."""
    shm = Path("/dev/shm")
    parent = shm if shm.is_dir() else Path(tempfile.gettempdir())
    for left in parent.glob("organic-unsaved-*-*"):  # left behind by a server that was killed: its users' words go
        pid = left.name.split("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(left, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(prefix=f"organic-unsaved-{os.getpid()}-", dir=parent))  # mode 0700
    engine = connect(f"sqlite:///{folder / 'unsaved.db'}")
    weakref.finalize(engine, shutil.rmtree, folder, ignore_errors=True)
    return engine


@contextmanager
def scratch_postgres(admin_url: str, prefix: str = "organic_scratch") -> Iterator[str]:
    """The URL of a new, empty database on the PostgreSQL server that ``admin_url`` reaches (as a role that may create
    databases), dropped on exit with whatever is still connected to it: for tests and benchmarks."""
    url = make_url(admin_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
