"""The answer to "what should I have said?" is linked to the rating that asked for it: the latest thumbs down of
the conversation, never an older one (the DPO pairs and feedback positives are built from that link)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from organic.store import Feedback, Message
from scripted_chat import ScriptedBackend, session


def say(client, cid: str, text: str) -> dict:
    """Send a message without streaming; returns the stored reply."""
    response = client.post(f"/api/conversations/{cid}/messages?stream=false", json={"text": text})
    assert response.status_code == 200, response.text
    return response.json()["reply"]


def links(engine) -> dict[str, str | None]:
    """{disliked reply's text: its linked answer's text, or None}."""
    with Session(engine) as s:
        return {s.get(Message, f.message_id).text: (s.get(Message, f.feedback_message_id).text if f.feedback_message_id else None)
                for f in s.scalars(select(Feedback).where(Feedback.thumb == "down"))}


def test_the_answer_is_linked_to_the_latest_thumbs_down(make_client, store_engine):
    client = make_client([ScriptedBackend(["Sydney is the capital.", "Kangaroos are fish.", "Koalas are bears.", "Thanks."])])
    session(client)
    cid = client.post("/api/conversations").json()["id"]
    first = say(client, cid, "What is the capital of Australia?")
    second = say(client, cid, "What are kangaroos?")
    # the older reply is disliked first (no question: it is not the latest), then the latest one
    assert client.put(f"/api/messages/{first['id']}/rating", json={"thumb": "down"}).json()["follow_up"] is None
    asked = client.put(f"/api/messages/{second['id']}/rating", json={"thumb": "down", "reason": "nonsensical"}).json()
    assert asked["follow_up"]["text"] == "Sorry about that! What should I have said instead?"
    say(client, cid, "Kangaroos are marsupials.")
    assert links(store_engine) == {"Sydney is the capital.": None, "Kangaroos are fish.": "Kangaroos are marsupials."}

    # a third reply disliked and answered later in the same conversation: its own answer, the others unchanged
    third = say(client, cid, "And koalas?")
    client.put(f"/api/messages/{third['id']}/rating", json={"thumb": "down"})
    say(client, cid, "Koalas are marsupials too.")
    assert links(store_engine) == {"Sydney is the capital.": None, "Kangaroos are fish.": "Kangaroos are marsupials.",
                                   "Koalas are bears.": "Koalas are marsupials too."}
