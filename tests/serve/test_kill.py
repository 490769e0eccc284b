"""`organic serve` in its own process under the mixed load of `bench/serve.py --part mixed`, small, on SQLite and
PostgreSQL: unsaved and saved users at once, parallel ratings on one reply, and a kill -9 mid-load."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from support import both_databases

_spec = importlib.util.spec_from_file_location("bench_serve", Path(__file__).parents[2] / "bench" / "serve.py")
bench = sys.modules["bench_serve"] = importlib.util.module_from_spec(_spec)  # its dataclasses look themselves up
_spec.loader.exec_module(bench)


@both_databases
def test_unsaved_and_saved_users_at_once_and_parallel_ratings_on_one_reply(database_url, tmp_path):
    m = bench.mixed_load(database_url, tmp_path, users=8, turns=3, storm=100)
    assert m["errors"] == 0 and m["refused"] == 0 and m["dropped"] == 0 and m["requests"] >= 2 * 8 * (2 + 3)
    assert m["lost_messages"] == 0 and m["lost_ratings"] == 0
    assert m["storm"] == {200: 100}
    assert len(m["storm_rows"]) == 1 and m["storm_questions"] <= 1  # one rating, asked once what it should have said


@both_databases
def test_a_server_killed_mid_load_loses_no_acknowledged_write(database_url, tmp_path):
    killed = bench.kill_mid_load(database_url, tmp_path, clients=8, turns=20, after=40)
    assert killed["messages"] + killed["ratings"] >= 40 and killed["dropped"] > 0  # killed while users were mid-chat
    assert killed["lost_messages"] == 0 and killed["lost_ratings"] == 0
