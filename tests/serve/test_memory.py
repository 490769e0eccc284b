"""Long-term memory: what is written, when it is recalled, and the BB3x traces each bot message carries."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from organic.serve.memory import PARTNER, RECALL_SIMILARITY, SELF, persona_lines, recall
from organic.store import Message
from serving import ScriptedBackend, session
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
        assert hit.system_message()["role"] == "system" and "The user told you" in hit.system_message()["content"]
    for message in unrelated:
        miss = recall(memories, message, safe=True)
        assert miss.decision == "do_not_access_memory" and miss.knowledge is None, message
        assert miss.system_message() is None


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
    assert backend.calls[0][0]["role"] == "user"  # nothing to recall yet: no system message
    second = say("Can you remind me what my pets are called?")
    assert backend.calls[1][0]["role"] == "system" and "I have two dogs named Rex and Max." in backend.calls[1][0]["content"]
    third = say("What do you like to cook?")
    assert "You told the user" in backend.calls[2][0]["content"] and "pasta" in backend.calls[2][0]["content"]

    with Session(store_engine) as s:
        traces = {m.external_id: m.traces for m in s.scalars(select(Message).where(Message.sender == "bot"))}
    assert traces[first["id"]]["memory_decision"] == "do_not_access_memory"
    assert traces[first["id"]]["memories"] == {PARTNER: ["I have two dogs named Rex and Max."],
                                               SELF: ["I love cooking pasta for my friends."]}
    assert traces[second["id"]]["memory_decision"] == "access_memory"
    assert "Rex and Max" in traces[second["id"]]["memory_knowledge"]
    assert traces[third["id"]]["memories"][SELF] == ["I love cooking pasta for my friends."]
    shown = client.get(f"/api/messages/{second['id']}/trace").json()  # what "Why this reply?" shows
    assert "Rex and Max" in str(shown)


def test_memory_is_off_by_default(make_client, store_engine):
    backend = ScriptedBackend(["I love cooking pasta."])
    client = make_client([backend])
    session(client)
    cid = client.post("/api/conversations").json()["id"]
    for text in ("I have two dogs named Rex and Max.", "What are my dogs called?"):
        client.post(f"/api/conversations/{cid}/messages?stream=false", json={"text": text})
    assert all(call[0]["role"] == "user" for call in backend.calls)
    with Session(store_engine) as s:
        assert all("memories" not in (m.traces or {}) for m in s.scalars(select(Message)))
