"""What test modules import: fixture paths and the both-databases marker (fixtures live in conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
POSTGRES_ADMIN_URL = os.environ.get("ORGANIC_TEST_POSTGRES_URL")  # e.g. postgresql+psycopg://organic:organic@127.0.0.1/postgres

both_databases = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
"""Run a test once on SQLite and once on a real PostgreSQL server (see the ``database_url`` fixture)."""
