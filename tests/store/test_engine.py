"""The store's engine: what its errors say."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from organic.store.db import make_engine
from support import both_databases


@both_databases
def test_database_errors_never_quote_what_people_wrote(database_url):
    """A failing statement's error (which a server logs with its traceback) names the statement, not its values."""
    engine = make_engine(database_url)
    secret = "my card is 4111 1111 1111 1111"
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
            conn.execute(text("INSERT INTO notes VALUES (1, :body)"), {"body": secret})
        with pytest.raises(IntegrityError) as error, engine.begin() as conn:
            conn.execute(text("INSERT INTO notes VALUES (1, :body)"), {"body": secret})
        assert "INSERT INTO notes" in str(error.value) and secret not in str(error.value)
    finally:
        engine.dispose()
