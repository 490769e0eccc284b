"""Live A/B: the server splits new conversations between versions by share; per-version thumbs figures;
promote and rollback."""

from __future__ import annotations

import random
import threading
import time

import pytest
from sqlalchemy import func, select, text
from typer.testing import CliRunner

from organic.cli import app
from organic.evaluate.live import live_ab
from organic.generate import EchoBackend
from organic.serve.router import Router
from organic.store import ServingChange, session_scope
from organic.store.audit import entries
from organic.store.versions import (PlanChanged, change_serving, current_plan, register_version, rollback, serving,
                                    set_serving)
from scripted_chat import session
from support import both_databases

WAIT_S = 60  # for a state waited for: far beyond what it takes


def test_router_draws_versions_by_share():
    router = Router([EchoBackend("a"), EchoBackend("b")], {"a": 0.8, "b": 0.2}, rng=random.Random(0))
    draws = [router.choose() for _ in range(2000)]
    assert 0.76 < draws.count("a") / len(draws) < 0.84
    with pytest.raises(ValueError, match="not served"):
        Router([EchoBackend("a")], {"b": 1.0})


@both_databases
def test_conversations_keep_their_version_and_thumbs_are_counted_per_version(make_client, store_engine):
    client = make_client([EchoBackend("base"), EchoBackend("cringe-it3")])
    for i in range(12):
        session(client)
        convo = client.post("/api/conversations").json()
        for turn in range(2):
            reply = client.post(f"/api/conversations/{convo['id']}/messages?stream=false", json={"text": f"hi {turn}"}).json()["reply"]
            assert reply["model_version"] == convo["model_version"]
        thumb = "up" if convo["model_version"] == "cringe-it3" else "down"
        client.put(f"/api/messages/{reply['id']}/rating", json={"thumb": thumb})
    figures = live_ab(store_engine)["versions"]
    assert set(figures) <= {"base", "cringe-it3"} and sum(v["conversations"] for v in figures.values()) == 12
    for name, v in figures.items():
        extra = v["thumbs_down"] if name == "base" else 0  # each thumbs down on base added the feedback question
        assert v["bot_messages"] == 2 * v["conversations"] + extra
        assert (v["thumbs_up"], v["thumbs_down"]) == ((v["conversations"], 0) if name == "cringe-it3" else (0, v["conversations"]))
        low, high = v["up_ci95"]
        assert low <= v["up_rate"] <= high
    from organic.store.models import utcnow

    after = utcnow()  # an A/B that starts now counts none of these conversations, then only the new one
    assert live_ab(store_engine, since=after)["versions"] == {}
    session(client)
    convo = client.post("/api/conversations").json()
    client.post(f"/api/conversations/{convo['id']}/messages?stream=false", json={"text": "hello"})
    since = live_ab(store_engine, since=after)["versions"]
    assert list(since) == [convo["model_version"]] and since[convo["model_version"]]["conversations"] == 1


@both_databases
def test_promote_ab_and_rollback(engine, tmp_path):
    for name in ("base", "cringe-it3"):
        register_version(engine, name, path=str(tmp_path / name), method="cringe")
    assert serving(engine) == {}
    set_serving(engine, {"base": 1.0}, note="promote")
    set_serving(engine, {"base": 1, "cringe-it3": 3}, note="ab")
    assert serving(engine) == {"base": 0.25, "cringe-it3": 0.75}
    assert rollback(engine, "ops") == {"base": 1.0}
    (entry,) = entries(engine)
    assert (entry["who"], entry["action"], entry["details"]) == ("ops", "rollback", {"before": {"base": 0.25, "cringe-it3": 0.75},
                                                                                   "after": {"base": 1.0}})
    with pytest.raises(ValueError, match="unknown model version"):
        set_serving(engine, {"nope": 1.0}, note="promote")


@both_databases
def test_a_change_based_on_a_plan_no_longer_in_force_is_refused(engine, tmp_path):
    for name in ("base", "a", "b"):
        register_version(engine, name, path=str(tmp_path / name))
    assert current_plan(engine) == (0, {})
    set_serving(engine, {"base": 1.0}, note="promote", based_on=0)  # 0: no plan was ever set
    seen, plan = current_plan(engine)
    assert seen > 0 and plan == {"base": 1.0}
    set_serving(engine, {"a": 1.0}, note="promote", based_on=seen)
    with pytest.raises(PlanChanged, match=r"changed meanwhile: it is now a 100% \(change \d+: promote\)"):
        set_serving(engine, {"b": 1.0}, note="promote", based_on=seen)  # decided on base alone, which is gone
    assert serving(engine) == {"a": 1.0} and changes(engine) == 2


@both_databases
def test_of_two_changes_based_on_the_same_plan_only_the_first_is_made(engine, tmp_path):
    """Two changes race, each based on the plan in force: the second waits for the first's transaction (PostgreSQL:
    a lock on the table; SQLite: its one writer) and is then refused, instead of both passing the check."""
    for name in ("base", "a", "b"):
        register_version(engine, name, path=str(tmp_path / name))
    set_serving(engine, {"base": 1.0}, note="promote")
    seen = current_plan(engine)[0]
    inside, commit, second = threading.Event(), threading.Event(), []

    def first() -> None:
        with session_scope(engine) as s:
            change_serving(s, {"a": 1.0}, "first", based_on=seen)
            inside.set()
            commit.wait(WAIT_S)

    def other() -> None:
        try:
            second.append(set_serving(engine, {"b": 1.0}, note="second", based_on=seen))
        except PlanChanged as refused:
            second.append(refused)

    racing = [threading.Thread(target=first), threading.Thread(target=other)]
    racing[0].start()
    assert inside.wait(WAIT_S)  # the first change is made, not committed
    racing[1].start()
    deadline = time.monotonic() + WAIT_S
    while racing[1].is_alive() and not waits_for_a_lock(engine):  # SQLite: nothing to see; its writers queue anyway
        assert time.monotonic() < deadline, "the second change neither ended nor waited"
        time.sleep(0.01)
    commit.set()
    for thread in racing:
        thread.join(WAIT_S)
    assert isinstance(second[0], PlanChanged), second
    assert serving(engine) == {"a": 1.0} and changes(engine) == 2


def changes(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(ServingChange)).scalar_one()


def waits_for_a_lock(engine) -> bool:
    """Whether a session of this PostgreSQL database waits for a lock (True on SQLite, which cannot say)."""
    if engine.dialect.name != "postgresql":
        return True
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                 "AND wait_event_type = 'Lock'")).scalar_one() > 0


def test_cli_promote_rollback_and_serving_plan(database_url, tmp_path):
    from organic.serve.app import serving_backends
    from organic.settings import Settings
    from organic.store import connect

    engine = connect(database_url)
    register_version(engine, "v1", path=str(tmp_path))
    register_version(engine, "v2", path=str(tmp_path))
    runner = CliRunner()
    assert runner.invoke(app, ["promote", "v1", "--database-url", database_url]).exit_code == 0
    result = runner.invoke(app, ["ab", "v1=1", "v2=1", "--database-url", database_url])
    assert result.exit_code == 0 and "v1 50%, v2 50%" in result.output
    backends, shares = serving_backends(Settings(backend="echo", database_url=database_url), engine)
    assert [b.model_version for b in backends] == ["v1", "v2"] and shares == {"v1": 0.5, "v2": 0.5}
    assert "rolled back: serving v1 100%" in runner.invoke(app, ["rollback", "--database-url", database_url]).output
    bad = runner.invoke(app, ["ab", "v1", "--database-url", database_url])
    assert bad.exit_code == 2 and "VERSION=SHARE" in bad.output
    assert runner.invoke(app, ["promote", "v9", "--database-url", database_url]).exit_code == 2
    logged = [(e["who"].endswith("(cli)"), e["action"], e["details"]["after"]) for e in entries(engine)][::-1]
    assert logged == [(True, "promote", {"v1": 1.0}), (True, "ab", {"v1": 0.5, "v2": 0.5}), (True, "rollback", {"v1": 1.0})]


def test_a_running_server_follows_a_plan_changed_in_the_store(settings, store_engine, tmp_path):
    """`organic promote` / `ab` / `rollback` or `organic loop --watch` change the plan in the store; a running server
    draws new conversations by it within ORGANIC_PLAN_REFRESH_S seconds."""
    import time

    from fastapi.testclient import TestClient

    from organic.serve.app import create_app

    following = settings.model_copy(update={"plan_refresh_s": 0.05, "backend": "echo"})
    admin = {"Authorization": "Bearer admin-secret"}
    with TestClient(create_app(following, [EchoBackend("base")], engine=store_engine)) as client:
        register_version(store_engine, "next", path=str(tmp_path / "next"))
        set_serving(store_engine, {"base": 0.5, "next": 0.5}, note="ab")
        deadline = time.monotonic() + 60
        while client.get("/api/admin/stats", headers=admin).json()["serving"] != {"base": 0.5, "next": 0.5}:
            assert time.monotonic() < deadline, "the server never followed the plan in the store"
            time.sleep(0.05)
        session(client)
        drawn = {client.post("/api/conversations").json()["model_version"] for _ in range(40)}
        assert drawn == {"base", "next"}
