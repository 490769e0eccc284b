"""The Alembic migrations build exactly the schema the models describe, on both databases, and go down again."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from organic.store.db import make_engine, needs_upgrade, upgrade
from organic.store.models import Base
from support import both_databases


@both_databases
def test_migrations_match_the_models_and_downgrade(database_url):
    engine = make_engine(database_url)
    assert needs_upgrade(engine)
    upgrade(engine)
    assert not needs_upgrade(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    upgrade_tables = set(inspect(engine).get_table_names())
    assert {"users", "conversations", "messages", "feedback", "annotations", "model_versions"} <= upgrade_tables
    from alembic import command

    from organic.store.db import alembic_config

    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
