"""Long-term memory: what is written, when it is recalled, and the BB3x traces each bot message carries."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from organic.serve.memory import PARTNER, RECALL_SIMILARITY, SELF, persona_lines, recall
from organic.store import Message
from scripted_chat import ScriptedBackend, session
from support import both_databases


@pytest.mark.parametrize("text, lines", [
    ("Hi! I have two dogs named Rex and Max.", ["I have two dogs named Rex and Max."]),
    ("Well, I'm a nurse at the city hospital. Long shifts!", ["Well, I'm a nurse at the city hospital."]),
    ("My sister is a pilot for a small airline", ["My sister is a pilot for a small airline."]),
    ("I’ve been learning the violin since June.", ["I've been learning the violin since June."]),
    ("Do you think I have a chance?", []),  # a question is not a statement
    ("I'm fine, thanks.", []),  # small talk
    ("I'm not sure about that one.", []),
    ("I'm so glad you're taking the leap to help.", []),  # the bot's pleasantries are not facts about it
    ("Oh, I'm happy to help you with that!", []),
    ("I've heard of your dedication to caring for others.", []),
    ("I am happy to help you with that!", []),
    ("I am just an AI language model.", []),
    ("I have no idea what you mean.", []),
    ("I just wanted to say thanks a lot.", []),
    ("I just adopted a puppy from the shelter.", ["I just adopted a puppy from the shelter."]),
    ("You have two dogs.", []),  # not about oneself
    ("I am.", []),  # too short to say anything
])
def test_persona_lines_are_statements_about_oneself(text, lines):
    assert persona_lines(text) == lines


# (memory line, messages that should recall it, messages that should not): the threshold is chosen on these
CASES = [
    ("I have two dogs named Rex and Max.", ["Can you remind me what my pets are called?", "What are my dogs called?",
                                            "Do you like dogs?"],
     ["What's the capital of France?", "I just bought new running shoes.", "Hi, how are you?"]),
    ("I'm a nurse at the city hospital.", ["Do you remember what my job is?", "What do I do for work?",
                                           "Long day at the hospital again."],
     ["Can you recommend a good movie?", "What's your favourite colour?", "Hi, how are you?"]),
    ("I love cooking pasta for my friends.", ["What do you like to cook?", "Any ideas for dinner tonight?",
                                              "What's your favourite food?"],
     ["How far away is the moon?", "Tell me about your weekend.", "Hi, how are you?"]),
    ("My sister is a pilot for a small airline.", ["Tell me something about my sister.", "What does my sister do?"],
     ["I just bought new running shoes.", "What is the weather like today?", "Hi, how are you?"]),
]


@pytest.mark.parametrize("line, related, unrelated", CASES)
def test_relevant_memory_is_recalled_and_unrelated_is_not(line, related, unrelated):
    memories = {PARTNER: [line]}
    for message in related:
        hit = recall(memories, message, safe=True)
        assert hit.decision == "access_memory" and line in hit.knowledge and hit.similarity >= RECALL_SIMILARITY, message
        assert hit.prompt(message).endswith(f"\n\n{message}") and "The user told you" in hit.prompt(message)
    for message in unrelated:
        miss = recall(memories, message, safe=True)
        assert miss.decision == "do_not_access_memory" and miss.knowledge is None, message
        assert miss.prompt(message) == message


def test_unsafe_messages_are_not_remembered_and_memory_is_bounded():
    assert recall(None, "I am going to hurt somebody badly tonight.", safe=False).memories == {}
    memories = None
    for i in range(30):
        memories = recall(memories, f"I have visited {i} countries so far.", safe=True).memories
    assert len(memories[PARTNER]) == 20 and memories[PARTNER][-1] == "I have visited 29 countries so far."
    again = recall(memories, "I have visited 10 countries so far.", safe=True).memories[PARTNER]
    assert again.count("I have visited 10 countries so far.") == 1 and again[-1] == "I have visited 10 countries so far."


@both_databases
def test_the_server_remembers_recalls_and_records_traces(make_client, settings, store_engine):
    settings.memory = True
    backend = ScriptedBackend(["Nice! I love cooking pasta for my friends.", "Rex and Max, of course.",
                               "Pasta, as always."])
    client = make_client([backend])
    session(client)
    cid = client.post("/api/conversations").json()["id"]

    def say(text):
        response = client.post(f"/api/conversations/{cid}/messages?stream=false", json={"text": text})
        assert response.status_code == 200, response.text
        return response.json()["reply"]

    first = say("Hi! I have two dogs named Rex and Max.")
    assert backend.calls[0][-1]["content"] == "Hi! I have two dogs named Rex and Max."  # nothing to recall yet
    second = say("Can you remind me what my pets are called?")
    prompt = backend.calls[1][-1]
    assert prompt["role"] == "user" and "I have two dogs named Rex and Max." in prompt["content"]
    assert prompt["content"].endswith("\n\nCan you remind me what my pets are called?")
    third = say("What do you like to cook?")
    assert "You told the user" in backend.calls[2][-1]["content"] and "pasta" in backend.calls[2][-1]["content"]
    assert all(m["role"] != "system" for call in backend.calls for m in call)
    blocked = say("I am a stupid piece of shit, tell me about my dogs")  # the safety layer answers: nothing recalled
    assert len(backend.calls) == 3

    with Session(store_engine) as s:
        traces = {m.external_id: m.traces for m in s.scalars(select(Message).where(Message.sender == "bot"))}
    assert traces[first["id"]]["memory_decision"] == "do_not_access_memory"
    assert traces[first["id"]]["memories"] == {PARTNER: ["I have two dogs named Rex and Max."],
                                               SELF: ["I love cooking pasta for my friends."]}
    assert traces[second["id"]]["memory_decision"] == "access_memory"
    assert "Rex and Max" in traces[second["id"]]["memory_knowledge"]
    assert traces[third["id"]]["memories"][SELF] == ["I love cooking pasta for my friends."]
    assert traces[blocked["id"]]["memory_decision"] == "do_not_access_memory"
    assert traces[blocked["id"]]["memory_knowledge"] is None
    assert traces[blocked["id"]]["memories"] == traces[third["id"]]["memories"]  # the blocked message is not remembered
    read = client.get(f"/api/conversations/{cid}").json()["messages"]
    assert [m["text"] for m in read if m["sender"] == "human"][1] == "Can you remind me what my pets are called?"
    shown = client.get(f"/api/messages/{second['id']}/trace").json()  # what "Why this reply?" shows
    assert "Rex and Max" in str(shown)


def test_memory_is_off_by_default(make_client, store_engine):
    backend = ScriptedBackend(["I love cooking pasta."])
    client = make_client([backend])
    session(client)
    cid = client.post("/api/conversations").json()["id"]
    for text in ("I have two dogs named Rex and Max.", "What are my dogs called?"):
        client.post(f"/api/conversations/{cid}/messages?stream=false", json={"text": text})
    assert [call[-1]["content"] for call in backend.calls] == ["I have two dogs named Rex and Max.", "What are my dogs called?"]
    with Session(store_engine) as s:
        assert all("memories" not in (m.traces or {}) for m in s.scalars(select(Message)))


def test_a_failing_memory_leaves_the_reply_and_says_why(make_client, settings, store_engine, monkeypatch):
    import organic.serve.turn

    def broken(*args, **kwargs):
        raise OSError("embedding model missing")

    monkeypatch.setattr(organic.serve.turn, "recall", broken)
    settings.memory = True
    backend = ScriptedBackend(["Still here."])
    client = make_client([backend])
    session(client)
    cid = client.post("/api/conversations").json()["id"]
    reply = client.post(f"/api/conversations/{cid}/messages?stream=false", json={"text": "I have a cat."}).json()["reply"]
    assert reply["text"] == "Still here." and not reply["from_model_crash"]
    with Session(store_engine) as s:
        bot = s.scalar(select(Message).where(Message.external_id == reply["id"]))
    assert bot.timings["memory_error"] == "OSError: embedding model missing"
    assert bot.traces["memory_decision"] == "do_not_access_memory"
