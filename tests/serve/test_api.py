"""Every endpoint of the JSON API, bad input included, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from support import both_databases
from organic.generate import GenerationError
from organic.generate.base import CUT_OFF
from organic.store import Conversation, Feedback, Message, User
from scripted_chat import ScriptedBackend, session


def sse(response) -> list[tuple[str, dict]]:
    events = []
    for block in response.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def converse(client, text="Hello, how are you?") -> tuple[str, list[tuple[str, dict]]]:
    cid = client.post("/api/conversations").json()["id"]
    response = client.post(f"/api/conversations/{cid}/messages", json={"text": text})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    return cid, sse(response)


@both_databases
def test_a_turn_streams_and_is_stored_with_its_settings(make_client, store_engine):
    client = make_client([ScriptedBackend(["Hi there. I am fine, thanks for asking!"])])
    session(client)
    cid, events = converse(client)
    kinds = [k for k, _ in events]
    assert kinds[0] == "human" and kinds[-1] == "done" and kinds.count("delta") == 2  # two sentences, each checked
    reply = events[-1][1]
    assert reply["text"] == "Hi there. I am fine, thanks for asking!" and reply["model_version"] == "scripted-v1"
    with Session(store_engine) as s:
        bot = s.scalar(select(Message).where(Message.external_id == reply["id"]))
        assert bot.generation["max_new_tokens"] == 64 and "total_s" in bot.timings
        assert bot.safety["duo_safety"] == "__ok__" and not bot.is_safety_controlled_response
    read = client.get(f"/api/conversations/{cid}").json()
    assert [m["sender"] for m in read["messages"]] == ["human", "bot"]
    assert client.get("/api/conversations").json()[0]["messages"] == 2


class CutOff(ScriptedBackend):
    """Every reply stops at the token limit."""

    async def stream(self, messages, settings):
        async for delta in super().stream(messages, settings):
            yield delta
        yield CUT_OFF


@pytest.mark.parametrize("backend, written, shown, trimmed", [
    (CutOff, "I like tea. I'm also a fan", "I like tea.", 15),  # ends at its last whole sentence
    (CutOff, "I'm also a fan", "I'm also a fan", 0),  # nothing whole to end at: kept, and the cut recorded
    (CutOff, "I like tea. Me too!", "I like tea. Me too!", 0),  # the limit fell at a sentence's end
    (ScriptedBackend, "I like tea. me too", "I like tea. me too", None),  # ended by the model: untouched
])
def test_a_reply_cut_off_mid_sentence_ends_at_its_last_whole_sentence(make_client, store_engine, backend, written,
                                                                       shown, trimmed):
    client = make_client([backend([written])])
    session(client)
    _, events = converse(client)
    assert "".join(d["text"] for k, d in events if k == "delta").strip() == shown == events[-1][1]["text"]
    with Session(store_engine) as s:
        bot = s.scalar(select(Message).where(Message.external_id == events[-1][1]["id"]))
        assert bot.text == shown and (bot.traces or {}).get("cut_off") == (None if trimmed is None else {"trimmed_chars": trimmed})


def test_with_trimming_off_a_cut_off_reply_is_kept_and_the_cut_recorded(settings, store_engine):
    from fastapi.testclient import TestClient

    from organic.serve.app import create_app

    app = create_app(settings.model_copy(update={"trim_cut_off": False}), [CutOff(["I like tea. I'm also a fan"])],
                     engine=store_engine)
    with TestClient(app) as client:
        session(client)
        _, events = converse(client)
    assert events[-1][1]["text"] == "I like tea. I'm also a fan"
    with Session(store_engine) as s:
        assert s.scalar(select(Message).where(Message.external_id == events[-1][1]["id"])).traces["cut_off"] == {}


def test_a_cut_inside_one_piece_of_text_keeps_its_whole_sentences():
    from organic.serve.turn import _whole_sentences

    assert _whole_sentences("", "Sure. I think that the") == ("Sure.", {"trimmed_chars": 17})
    assert _whole_sentences("Well, ", "that (he said.) and then") == ("that (he said.)", {"trimmed_chars": 9})


def test_non_streaming_reply(make_client):
    client = make_client([ScriptedBackend(["Plain answer."])])
    session(client)
    cid = client.post("/api/conversations").json()["id"]
    body = client.post(f"/api/conversations/{cid}/messages?stream=false", json={"text": "hi"}).json()
    assert body["human"]["text"] == "hi" and body["reply"]["text"] == "Plain answer."


def test_unsafe_user_message_gets_a_canned_reply(make_client):
    backend = ScriptedBackend(["never used"])
    client = make_client([backend])
    session(client)
    _, events = converse(client, "you are a stupid piece of shit")
    assert ("replace" in [k for k, _ in events]) and not backend.calls
    reply = events[-1][1]
    assert reply["is_safety_controlled_response"] and reply["previous_interaction_failure"] == "unsafe_Human"


def test_unsafe_candidate_reply_is_never_shown(make_client):
    client = make_client([ScriptedBackend(["Sure thing. You are a worthless idiot and I hate you."])])
    session(client)
    _, events = converse(client)
    shown = "".join(d["text"] for k, d in events if k == "delta")
    assert "idiot" not in shown
    reply = events[-1][1]
    assert reply["previous_interaction_failure"] == "unsafe_BlenderBot3" and "idiot" not in reply["text"]


@pytest.mark.parametrize("failure", [GenerationError("CUDA out of memory"), RuntimeError("backend bug"), ""])
def test_model_crash_gives_a_flagged_canned_reply(make_client, failure):
    client = make_client([ScriptedBackend([failure])])
    session(client)
    _, events = converse(client)
    reply = events[-1][1]
    assert reply["from_model_crash"] and reply["previous_interaction_failure"] == "unsafe_model_crash"
    assert reply["is_safety_controlled_response"] and reply["text"]


@both_databases
def test_thumbs_down_asks_for_feedback_and_stores_the_answer(make_client, store_engine):
    client = make_client([ScriptedBackend(["The capital of Australia is Sydney.", "Glad to help."])])
    session(client)
    cid, events = converse(client, "What is the capital of Australia?")
    reply_id = events[-1][1]["id"]
    rated = client.put(f"/api/messages/{reply_id}/rating", json={"thumb": "down", "reason": "nonsensical"}).json()
    assert rated["rating"] == {"thumb": "down", "reason": "nonsensical", "free_text": None}
    assert rated["follow_up"]["text"] == "Sorry about that! What should I have said instead?"
    answer = sse(client.post(f"/api/conversations/{cid}/messages", json={"text": "Canberra is the capital."}))
    assert answer[0][1]["is_dislike_feedback"] and answer[-1][1]["module"] == "feedback_thanks"
    with Session(store_engine) as s:
        feedback = s.scalar(select(Feedback))
        assert (feedback.thumb, feedback.reason) == ("down", "nonsensical")
        assert s.get(Message, feedback.feedback_message_id).text == "Canberra is the capital."
    # the conversation then goes on normally, without the feedback exchange in the model's context
    events = sse(client.post(f"/api/conversations/{cid}/messages", json={"text": "Thanks"}))
    assert events[-1][1]["text"] == "Glad to help."


def test_rating_can_be_changed_and_withdrawn(make_client, store_engine):
    client = make_client()
    session(client)
    _, events = converse(client)
    mid = events[-1][1]["id"]
    assert client.put(f"/api/messages/{mid}/rating", json={"thumb": "up"}).json()["rating"]["thumb"] == "up"
    assert client.put(f"/api/messages/{mid}/rating", json={"thumb": "down", "reason": "off_topic"}).json()["rating"]["reason"] == "off_topic"
    with Session(store_engine) as s:
        assert s.scalar(select(func.count()).select_from(Feedback)) == 1
    assert client.delete(f"/api/messages/{mid}/rating").json()["rating"] is None
    with Session(store_engine) as s:
        assert s.scalar(select(func.count()).select_from(Feedback)) == 0


def test_canned_replies_take_agree_or_disagree(make_client):
    client = make_client()
    session(client)
    _, events = converse(client, "you are a stupid piece of shit")
    mid = events[-1][1]["id"]
    bad = client.put(f"/api/messages/{mid}/rating", json={"thumb": "down", "reason": "off_topic"})
    assert bad.status_code == 400 and "agree_sensitive, disagree_sensitive" in bad.json()["detail"]
    ok = client.put(f"/api/messages/{mid}/rating", json={"thumb": "down", "reason": "disagree_sensitive"}).json()
    assert ok["rating"]["reason"] == "disagree_sensitive" and ok["follow_up"] is None


def test_trace_explains_a_reply(make_client):
    client = make_client()
    session(client)
    _, events = converse(client)
    trace = client.get(f"/api/messages/{events[-1][1]['id']}/trace").json()
    assert trace["model_version"] == "echo" and trace["safety"]["duo_safety"] == "__ok__"
    assert trace["generation"]["temperature"] == 0.7 and trace["traces"]["backend"] == "echo"


def test_user_who_does_not_save_leaves_nothing_in_the_store(make_client, store_engine):
    client = make_client()
    session(client, save_conversations=False)
    cid, events = converse(client)
    assert client.put(f"/api/messages/{events[-1][1]['id']}/rating", json={"thumb": "up"}).status_code == 200
    assert len(client.get(f"/api/conversations/{cid}").json()["messages"]) == 2
    with Session(store_engine) as s:
        for table in (User, Conversation, Message, Feedback):
            assert s.scalar(select(func.count()).select_from(table)) == 0


@pytest.mark.parametrize("consent, message", [
    ({"age_confirmed": False}, "18 or older"),
    ({"accept_terms": False}, "accept the terms"),
    ({"save_conversations": False, "allow_release": True}, "public release needs"),
])
def test_consent_is_required(make_client, consent, message):
    client = make_client()
    response = client.post("/api/session", json={"age_confirmed": True, "accept_terms": True, **consent})
    assert response.status_code == 422 and message in response.json()["detail"]


def test_bad_input(make_client):
    client = make_client()
    assert client.post("/api/conversations").status_code == 401
    assert client.post("/api/conversations", headers={"Authorization": "Bearer forged"}).status_code == 401
    session(client)
    cid = client.post("/api/conversations").json()["id"]
    empty = client.post(f"/api/conversations/{cid}/messages", json={"text": "   "})
    assert empty.status_code == 422 and "empty" in empty.json()["detail"]
    long = client.post(f"/api/conversations/{cid}/messages", json={"text": "x" * 201})
    assert long.status_code == 422 and "limit is 200" in long.json()["detail"]
    malformed = client.post(f"/api/conversations/{cid}/messages", content=b'{"text": ', headers={"content-type": "application/json"})
    assert malformed.status_code == 422 and "JSON" in json.dumps(malformed.json())
    assert client.post(f"/api/conversations/{cid}/messages", json={"txt": "hi"}).status_code == 422
    assert client.post("/api/conversations/c-nope/messages", json={"text": "hi"}).status_code == 404
    assert client.get("/api/conversations/c-nope").status_code == 404
    assert client.put("/api/messages/b-nope/rating", json={"thumb": "up"}).status_code == 404
    assert client.get("/api/messages/b-nope/trace").status_code == 404
    events = sse(client.post(f"/api/conversations/{cid}/messages", json={"text": "hello"}))
    human_id, bot_id = events[0][1]["id"], events[-1][1]["id"]
    on_human = client.put(f"/api/messages/{human_id}/rating", json={"thumb": "up"})
    assert on_human.status_code == 400 and "only bot messages" in on_human.json()["detail"]
    wrong = client.put(f"/api/messages/{bot_id}/rating", json={"thumb": "down", "reason": "boring"})
    assert wrong.status_code == 400 and "off_topic, nonsensical, rude, spam, other" in wrong.json()["detail"]
    assert client.put(f"/api/messages/{bot_id}/rating", json={"thumb": "sideways"}).status_code == 422
    up_reason = client.put(f"/api/messages/{bot_id}/rating", json={"thumb": "up", "reason": "rude"})
    assert up_reason.status_code == 400 and "thumbs down only" in up_reason.json()["detail"]


def test_other_users_conversations_and_messages_are_forbidden(make_client):
    alice, mallory = make_client(), make_client()
    session(alice)
    session(mallory)
    cid, events = converse(alice)
    mid = events[-1][1]["id"]
    assert mallory.get(f"/api/conversations/{cid}").status_code == 403
    assert mallory.post(f"/api/conversations/{cid}/messages", json={"text": "hi"}).status_code == 403
    assert mallory.put(f"/api/messages/{mid}/rating", json={"thumb": "down"}).status_code == 403
    assert mallory.get(f"/api/messages/{mid}/trace").status_code == 403
    assert mallory.get("/api/conversations").json() == []


def test_admin_endpoints_need_the_admin_token(make_client):
    client = make_client()
    session(client)
    cid, _ = converse(client)
    assert client.get("/api/admin/stats").status_code == 403
    assert client.get("/api/admin/stats", headers={"Authorization": "Bearer wrong"}).status_code == 403
    admin = {"Authorization": "Bearer admin-secret"}
    stats = client.get("/api/admin/stats", headers=admin).json()
    assert (stats["users"], stats["conversations"], stats["messages"]) == (1, 1, 2)
    assert len(client.get(f"/api/admin/conversations/{cid}", headers=admin).json()["messages"]) == 2


def test_openapi_and_web_page(make_client):
    client = make_client()
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/session", "/api/conversations/{conversation_id}/messages", "/api/messages/{message_id}/rating",
            "/v1/chat/completions"} <= set(paths)
    page = client.get("/")
    assert page.status_code == 200 and 'id="consent"' in page.text


def test_secrets_and_the_store_are_readable_by_their_owner_only(tmp_path):
    from itsdangerous import URLSafeTimedSerializer

    from organic.serve.auth import secret_key
    from organic.store import connect

    key = secret_key(None, tmp_path / "home")
    assert (tmp_path / "home" / "secret_key").stat().st_mode & 0o777 == 0o600
    assert secret_key(None, tmp_path / "home") == key  # kept across restarts
    engine = connect(f"sqlite:///{tmp_path / 'store' / 'organic.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("SELECT 1")
    for path in (tmp_path / "store").iterdir():  # the database and its -wal / -shm
        assert path.stat().st_mode & 0o077 == 0, path
    # a token signed with the right key but of another shape (an annotator's, say) is refused, not a 500
    from fastapi import HTTPException
    from starlette.requests import Request

    from organic.serve.auth import Signer, role_key

    forged = URLSafeTimedSerializer(role_key(key, "user"), salt="organic-user").dumps(["not", "a", "session"])

    request = Request({"type": "http", "headers": [(b"authorization", f"Bearer {forged}".encode())]})
    try:
        Signer(key).caller(request)
        raise AssertionError("a token of the wrong shape was accepted")
    except HTTPException as error:
        assert error.status_code == 401 and "not a session token" in error.detail


@both_databases
def test_a_user_sees_their_id_withdraws_release_and_deletes_their_data(make_client, store_engine, tmp_path):
    from organic.formats.export import export

    client = make_client()
    started = session(client, save_conversations=True, allow_release=True)
    converse(client)
    me = client.get("/api/me").json()
    assert me == {"user_id": started["user_id"], "save_conversations": True, "allow_release": True}
    assert client.put("/api/me/consent", json={"allow_release": False}).json()["allow_release"] is False
    export(store_engine, "bb3x", tmp_path / "release.jsonl", release=True, salt=b"s")
    assert (tmp_path / "release.jsonl").read_text() == ""  # withdrawn: the next release leaves them out
    assert client.put("/api/me/consent", json={"allow_release": True}).json()["allow_release"] is True
    assert client.delete("/api/me").json() == {"deleted_conversations": 1}
    with Session(store_engine) as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 0
        assert s.scalar(select(func.count()).select_from(User)) == 0
    gone = client.get("/api/me")
    assert gone.status_code in (401, 403)
    unsaved = make_client()
    session(unsaved, save_conversations=False)
    refused = unsaved.put("/api/me/consent", json={"allow_release": True})
    assert refused.status_code == 400 and "nothing unsaved can be released" in refused.json()["detail"]



def test_session_tokens_expire(make_client, settings, monkeypatch):
    import time as clock

    client = make_client()
    token = session(client)["token"]
    assert client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    later = clock.time() + settings.session_days * 86400 + 60
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: later)
    expired = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]



@both_databases
def test_pruning_removes_users_created_before_the_cutoff_with_their_data(make_client, store_engine):
    from datetime import datetime, timedelta, timezone

    from organic.serve.chat import ChatStore

    client = make_client()
    session(client)
    converse(client)
    store = ChatStore(store_engine)
    assert store.prune_users(datetime.now(timezone.utc) - timedelta(days=1)) == 0  # nobody that old
    assert store.prune_users(datetime.now(timezone.utc) + timedelta(seconds=1)) == 1
    with Session(store_engine) as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 0



@both_databases
def test_an_api_history_continues_its_own_conversation_however_many_the_user_has(store_engine):
    """``ChatStore.continued``: the conversation whose turns (client context, then messages) are exactly the
    history, found among 61 of the user's (the server used to look at the last 50 only); a history that differs
    anywhere, or ends before the conversation does, or is another user's, continues nothing."""
    from organic.serve.chat import ChatStore, Consent
    from organic.taxonomy import Sender

    store = ChatStore(store_engine)
    me, other = (store.create_user(Consent(True, True, False)) for _ in range(2))

    def turns(*texts: str) -> list[dict]:
        return [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)]

    def conversation(user: str, *texts: str, context: list[dict] | None = None) -> str:
        cid = store.start_conversation(user, "base", source="api", client_context=context)
        for turn in turns(*texts):
            store.add_message(user, cid, Sender.HUMAN if turn["role"] == "user" else Sender.BOT, turn["content"])
        return cid

    first = conversation(me, "hi", "hello there", context=[{"role": "user", "content": "earlier"}])
    later = [conversation(me, f"question {i}", "hello there") for i in range(60)]
    theirs = conversation(other, "hi", "hello there")
    assert store.continued(me, [{"role": "user", "content": "earlier"}, *turns("hi", "hello there")]) == first
    assert store.continued(me, turns("question 7", "hello there")) == later[7]
    assert store.continued(other, turns("hi", "hello there")) == theirs
    assert store.continued(me, turns("hi", "hello there")) is None  # the client context differs
    assert store.continued(me, [{"role": "user", "content": "earlier"}, *turns("hi")]) is None  # ends early
    assert store.continued(me, []) is None
