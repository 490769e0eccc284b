"""The annotation API on a small app that includes only its router: tokens, sampling, labels, bad input."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from organic.formats.ingest import import_bb3x
from organic.serve.routes.annotate import annotation_router
from organic.store import Annotation, Message
from organic.taxonomy import CrowdLabel
from support import FIXTURES, both_databases

ADMIN = {"Authorization": "Bearer admin-secret"}
ELIGIBLE = 15  # the sample's 18 messages less c-003's two canned safety replies and one crash reply


@pytest.fixture
def client(engine):
    import_bb3x(engine, [FIXTURES / "bb3x_sample.jsonl"], model_version="bb3-test")
    app = FastAPI()
    app.include_router(annotation_router(engine, "admin-secret"))
    with TestClient(app) as client:
        yield client


def annotator(client, name="ann1") -> dict:
    response = client.post("/api/admin/annotators", json={"name": name}, headers=ADMIN)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == name and body["url"] == f"/annotate#token={body['token']}"
    return {"Authorization": f"Bearer {body['token']}"}


def test_tokens_need_the_admin_and_a_plain_name(client):
    assert client.post("/api/admin/annotators", json={"name": "ann1"}).status_code == 403
    assert client.post("/api/admin/annotators", json={"name": "ann1"}, headers={"Authorization": "Bearer nope"}).status_code == 403
    for bad in ("", "has space", "<script>", "import:good:0", "x" * 65):
        response = client.post("/api/admin/annotators", json={"name": bad}, headers=ADMIN)
        assert response.status_code == 422, bad
    assert client.get("/api/annotate/next").status_code == 401
    response = client.get("/api/annotate/next", headers={"Authorization": "Bearer forged"})
    assert response.status_code == 401 and "ask an admin" in response.json()["detail"]


def test_a_token_of_another_server_is_refused(engine, client):
    other = FastAPI()
    other.include_router(annotation_router(engine, "another-admin"))
    with TestClient(other) as stranger:
        token = stranger.post("/api/admin/annotators", json={"name": "ann1"},
                              headers={"Authorization": "Bearer another-admin"}).json()["token"]
    assert client.get("/api/annotate/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


@both_databases
def test_label_every_utterance_once_then_nothing_is_left(client, engine):
    me = annotator(client)
    info = client.get("/api/annotate/me", headers=me).json()
    assert info["annotator"] == "ann1" and info["labelled"] == 0 and info["model_versions"] == ["bb3-test"]
    assert [l["value"] for l in info["labels"]] == [c.value for c in CrowdLabel]
    seen = set()
    for _ in range(ELIGIBLE):
        response = client.get("/api/annotate/next", headers=me)
        assert response.status_code == 200, response.text
        item = response.json()
        message = item["message"]
        assert message["id"] not in seen
        seen.add(message["id"])
        assert len(item["context"]) == message["position"]  # the conversation up to the utterance
        label = "other" if message["sender"] == "bot" else "good"
        assert client.post("/api/annotate", json={"message_id": message["id"], "label": label}, headers=me).status_code == 201
    done = client.get("/api/annotate/next", headers=me)
    assert done.status_code == 404 and "nothing left" in done.json()["detail"]
    assert client.get("/api/annotate/me", headers=me).json()["labelled"] == ELIGIBLE
    with engine.connect() as conn:
        canned = conn.execute(select(Message.id).where(Message.is_safety_controlled_response | Message.from_model_crash)).scalars().all()
        rows = conn.execute(select(Annotation.message_id, Annotation.label).where(Annotation.annotator == "ann1")).all()
    assert len(rows) == ELIGIBLE and not set(canned) & {m for m, _ in rows}
    # another annotator starts afresh
    assert client.get("/api/annotate/next", headers=annotator(client, "ann2")).status_code == 200


def test_context_and_text_come_back_exactly(client):
    me = annotator(client)
    for _ in range(ELIGIBLE):
        item = client.get("/api/annotate/next", headers=me).json()
        if item["conversation_id"] == "c-002" and item["message"]["position"] == 3:
            assert item["message"] == {"id": item["message"]["id"], "sender": "human", "text": "Canberra is the capital, not Sydney.",
                                       "position": 3, "model_version": None}
            assert [m["sender"] for m in item["context"]] == ["human", "bot", "bot"]
            assert item["context"][1]["text"] == "The capital of Australia is Sydney."
            return
        client.post("/api/annotate", json={"message_id": item["message"]["id"], "label": "good"}, headers=me)
    pytest.fail("c-002's fourth message was never offered")


def test_bad_labels_are_refused_with_a_reason(client, engine):
    me = annotator(client)
    with engine.connect() as conn:
        human = conn.execute(select(Message.id).where(Message.sender == "human").limit(1)).scalar_one()
        bot = conn.execute(select(Message.id).where(Message.sender == "bot").limit(1)).scalar_one()
    response = client.post("/api/annotate", json={"message_id": bot, "label": "meh"}, headers=me)
    assert response.status_code == 422 and "expected one of" in response.json()["detail"]
    response = client.post("/api/annotate", json={"message_id": human, "label": "other"}, headers=me)
    assert response.status_code == 422 and "bot replies only" in response.json()["detail"]
    assert client.post("/api/annotate", json={"message_id": 10_000_000, "label": "good"}, headers=me).status_code == 404
    assert client.post("/api/annotate", json={"message_id": "x", "label": "good"}, headers=me).status_code == 422
    # spellings from the paper are accepted and stored as the taxonomy's value
    assert client.post("/api/annotate", json={"message_id": bot, "label": "Ignoring the last turn"}, headers=me).json()["label"] == "ignoring_last_turn"
    again = client.post("/api/annotate", json={"message_id": bot, "label": "good"}, headers=me)
    assert again.status_code == 409 and "already labelled" in again.json()["detail"]


def test_disliked_first_then_uniform(client):
    me = annotator(client)
    first = client.get("/api/annotate/next", params={"sampling": "disliked"}, headers=me).json()
    # c-003's thumbs down are on canned replies, never offered: the one disliked model reply is c-002's
    assert first["sampling"] == "disliked" and first["message"]["text"] == "The capital of Australia is Sydney."
    client.post("/api/annotate", json={"message_id": first["message"]["id"], "label": "nonsensical"}, headers=me)
    then = client.get("/api/annotate/next", params={"sampling": "disliked"}, headers=me).json()
    assert then["sampling"] == "uniform"


def test_sampling_by_model_version_and_sender(client):
    me = annotator(client)
    assert client.get("/api/annotate/next", params={"sampling": "version"}, headers=me).status_code == 422
    response = client.get("/api/annotate/next", params={"sampling": "version", "model_version": "nope"}, headers=me)
    assert response.status_code == 404 and "no model version" in response.json()["detail"]
    assert client.get("/api/annotate/next", params={"sampling": "sideways"}, headers=me).status_code == 422
    for _ in range(5):
        item = client.get("/api/annotate/next", params={"sampling": "version", "model_version": "bb3-test"}, headers=me).json()
        assert item["message"]["sender"] == "bot" and item["message"]["model_version"] == "bb3-test"
        human = client.get("/api/annotate/next", params={"sender": "human"}, headers=me).json()
        assert human["message"]["sender"] == "human"


def test_annotators_read_text_scrubbed_of_personal_information(engine, tmp_path):
    private = {"user_pseudo_id": "u-pii", "convo_id": "c-pii", "message_history": [
        {"text": "I'm Margaret Thornbury, mail me at maggie.t@example.org or call 07700 900123.", "sender": "human",
         "human_message_id": "h-pii-1", "isDislikeFeedback": False},
        {"text": "Nice to meet you, Margaret Thornbury!", "sender": "bot", "bot_message_id": "b-pii-1", "isLiked": False,
         "isDisliked": False, "isSafetyControlledResponse": False, "from_model_crash": False}]}
    path = tmp_path / "pii.jsonl"
    path.write_text(json.dumps(private) + "\n", encoding="utf-8")
    import_bb3x(engine, [path], model_version="bb3-test")
    app = FastAPI()
    app.include_router(annotation_router(engine, "admin-secret"))
    with TestClient(app) as client:
        item = client.get("/api/annotate/next", params={"sender": "bot"}, headers=annotator(client)).json()
    shown = item["context"][0]["text"] + " " + item["message"]["text"]
    for private_bit in ("Thornbury", "maggie.t@example.org", "07700 900123"):
        assert private_bit not in shown
    assert "mail me at" in shown and "Nice to meet you" in shown  # the rest reads as written
