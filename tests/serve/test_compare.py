"""The pairwise comparison API on a small app that includes only its router: items, blind sides, votes, results,
and bad input (unknown item, invalid choice, double vote, foreign or missing tokens)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from organic.store.models import ComparisonVote
from support import both_databases

ADMIN = {"Authorization": "Bearer admin-secret"}
CONTEXT = [{"role": "user", "content": "What's the capital of Australia?"}]


@pytest.fixture
def client(engine):
    app = FastAPI()
    from organic.serve.routes.compare import compare_router

    app.include_router(compare_router(engine, "admin-secret"))
    with TestClient(app) as client:
        yield client


def rater(client, name="r1") -> dict:
    response = client.post("/api/admin/raters", json={"name": name}, headers=ADMIN)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["url"] == f"/compare#token={body['token']}"
    return {"Authorization": f"Bearer {body['token']}"}


def item(i: int = 0, a: str = "base", b: str = "cringe") -> dict:
    return {"context": CONTEXT, "model_a": a, "model_b": b, "reply_a": f"Sydney, I think ({i}).", "reply_b": f"Canberra ({i})."}


def test_admin_and_rater_tokens_are_required(client, engine):
    assert client.post("/api/admin/comparisons", json=item()).status_code == 403
    assert client.post("/api/admin/raters", json={"name": "r1"}, headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.get("/api/admin/comparisons/results").status_code == 403
    for bad in ("", "has space", "<script>", "x" * 65):
        assert client.post("/api/admin/raters", json={"name": bad}, headers=ADMIN).status_code == 422, bad
    assert client.get("/api/compare/next").status_code == 401
    response = client.get("/api/compare/next", headers={"Authorization": "Bearer forged"})
    assert response.status_code == 401 and "ask an admin" in response.json()["detail"]
    other = FastAPI()  # a token signed for another server (another admin token) is refused
    from organic.serve.routes.compare import compare_router

    other.include_router(compare_router(engine, "another-admin"))
    with TestClient(other) as stranger:
        token = stranger.post("/api/admin/raters", json={"name": "r1"}, headers={"Authorization": "Bearer another-admin"}).json()["token"]
    assert client.get("/api/compare/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_items_are_validated(client):
    one = client.post("/api/admin/comparisons", json=item(), headers=ADMIN)
    assert one.status_code == 201 and one.json()["created"] == 1
    many = client.post("/api/admin/comparisons", json=[item(1), item(2, "sft", "base")], headers=ADMIN)
    assert many.status_code == 201 and len(many.json()["ids"]) == 2
    for bad in (item() | {"model_b": "base"}, item() | {"context": []},
                item() | {"context": [{"role": "robot", "content": "hi"}]}, {"context": CONTEXT}):
        assert client.post("/api/admin/comparisons", json=bad, headers=ADMIN).status_code == 422, bad


@both_databases
def test_blind_sides_votes_and_results(client, engine):
    n = 10
    ids = client.post("/api/admin/comparisons", json=[item(i) for i in range(n)], headers=ADMIN).json()["ids"]
    me = rater(client)
    assert client.get("/api/compare/me", headers=me).json() == {"rater": "r1", "voted": 0, "remaining": n}
    sides = []
    for i in range(n):
        response = client.get("/api/compare/next", headers=me)
        assert response.status_code == 200, response.text
        shown = response.json()
        assert set(shown) == {"id", "context", "replies"} and shown["context"] == CONTEXT
        assert "base" not in response.text and "cringe" not in response.text  # blind: no model names
        a, b = shown["replies"]["A"], shown["replies"]["B"]
        assert {a, b} == {f"Sydney, I think ({ids.index(shown['id'])}).", f"Canberra ({ids.index(shown['id'])})."}
        sides.append(a.startswith("Canberra"))
        # the rater prefers Canberra on 7 items and Sydney on 3
        prefer_canberra = i < 7
        choice = ("A" if a.startswith("Canberra") else "B") if prefer_canberra else ("A" if a.startswith("Sydney") else "b")
        assert client.post("/api/compare", json={"id": shown["id"], "choice": choice, "reason": "right capital"}, headers=me).status_code == 201
    assert any(sides) and not all(sides)  # both orders were shown
    done = client.get("/api/compare/next", headers=me)
    assert done.status_code == 404 and "nothing left" in done.json()["detail"]
    assert client.get("/api/compare/me", headers=me).json() == {"rater": "r1", "voted": n, "remaining": 0}

    results = client.get("/api/admin/comparisons/results", headers=ADMIN).json()
    assert results["items"] == n and results["votes"] == n and results["raters"] == 1
    assert results["sides"]["A"] + results["sides"]["B"] == n and results["sides"]["tie"] == 0
    [pair] = results["pairs"]
    assert pair == {"model_a": "base", "model_b": "cringe", "wins": 3, "losses": 7, "ties": 0, "decided": 10,
                    "win_rate": 0.3, "ci95": [0.1078, 0.6032], "p_value": 0.34375}
    with engine.connect() as conn:
        stored = conn.execute(select(ComparisonVote.choice, ComparisonVote.reason, ComparisonVote.flipped)).all()
    assert {c for c, _, _ in stored} <= {"A", "B"} and {r for _, r, _ in stored} == {"right capital"}
    assert {f for _, _, f in stored} == {True, False}


def test_bad_votes(client):
    [first] = client.post("/api/admin/comparisons", json=[item()], headers=ADMIN).json()["ids"]
    me = rater(client)
    unknown = client.post("/api/compare", json={"id": first + 999, "choice": "A"}, headers=me)
    assert unknown.status_code == 404 and "no comparison" in unknown.json()["detail"]
    invalid = client.post("/api/compare", json={"id": first, "choice": "C"}, headers=me)
    assert invalid.status_code == 422 and "A, B or tie" in invalid.text
    assert client.post("/api/compare", json={"id": first, "choice": "A", "reason": "x" * 2001}, headers=me).status_code == 422
    assert client.post("/api/compare", json={"id": first, "choice": "Tie"}, headers=me).status_code == 201
    again = client.post("/api/compare", json={"id": first, "choice": "A"}, headers=me)
    assert again.status_code == 409 and "already voted" in again.json()["detail"]
    other = rater(client, "r2")  # another rater may vote on it
    assert client.post("/api/compare", json={"id": first, "choice": "B"}, headers=other).status_code == 201
    [pair] = client.get("/api/admin/comparisons/results", headers=ADMIN).json()["pairs"]
    assert pair["ties"] == 1 and pair["decided"] == 1


def test_least_voted_items_come_first(client):
    ids = client.post("/api/admin/comparisons", json=[item(0), item(1)], headers=ADMIN).json()["ids"]
    first, second = rater(client, "r1"), rater(client, "r2")
    voted = client.get("/api/compare/next", headers=first).json()["id"]
    client.post("/api/compare", json={"id": voted, "choice": "A"}, headers=first)
    for _ in range(3):
        assert client.get("/api/compare/next", headers=second).json()["id"] == (set(ids) - {voted}).pop()


def test_a_batch_from_eval_results(client):
    results = {"created_at": "2026-01-01T00:00:00+00:00", "contexts": [CONTEXT, CONTEXT, CONTEXT],
               "models": {"base": {"replies": ["Sydney.", "Same.", "Perth."]},
                          "cringe": {"replies": ["Canberra.", "Same.", "Canberra!"]},
                          "sft": {"replies": ["Canberra.", "Hm.", "Darwin."]}}}
    two = client.post("/api/admin/comparisons/from-eval", json={"results": results, "models": ["base", "cringe"]}, headers=ADMIN)
    assert two.status_code == 201 and two.json()["created"] == 2  # the identical pair is left out
    every = client.post("/api/admin/comparisons/from-eval", json={"results": results, "limit": 1}, headers=ADMIN)
    assert every.json()["created"] == 3  # three pairs of models, at most one item each
    unknown = client.post("/api/admin/comparisons/from-eval", json={"results": results, "models": ["base", "kto"]}, headers=ADMIN)
    assert unknown.status_code == 422 and "name two different models" in unknown.json()["detail"]
    broken = client.post("/api/admin/comparisons/from-eval", json={"results": {"models": results["models"]}}, headers=ADMIN)
    assert broken.status_code == 422 and "eval.json" in broken.json()["detail"]
    alone = client.post("/api/admin/comparisons/from-eval", json={"results": results | {"models": {"base": {}}}}, headers=ADMIN)
    assert alone.status_code == 422 and "needs two or more" in alone.json()["detail"]
