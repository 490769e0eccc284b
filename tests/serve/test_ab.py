"""Live A/B: the server splits new conversations between versions by share; per-version thumbs figures;
promote and rollback."""

from __future__ import annotations

import random

import pytest
from typer.testing import CliRunner

from organic.cli import app
from organic.evaluate.live import live_ab
from organic.generate import EchoBackend
from organic.serve.router import Router
from organic.store.versions import register_version, rollback, serving, set_serving
from serving import session
from support import both_databases


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
    assert rollback(engine) == {"base": 1.0}
    with pytest.raises(ValueError, match="unknown model version"):
        set_serving(engine, {"nope": 1.0}, note="promote")


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
