"""Helpers for the server tests: a scripted backend and a consented session."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi.testclient import TestClient

from organic.generate import GenerationSettings

CONSENT = {"age_confirmed": True, "accept_terms": True, "save_conversations": True, "allow_release": False}


class ScriptedBackend:
    """Replies with fixed texts in turn (in a few deltas), or raises, to drive the server's branches."""

    name = "scripted"

    def __init__(self, replies: list[str | Exception], model_version: str = "scripted-v1"):
        self.replies, self.model_version, self.calls = list(replies), model_version, []

    async def stream(self, messages: list[dict], settings: GenerationSettings) -> AsyncIterator[str]:
        self.calls.append(messages)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        for word in reply.split(" "):
            yield word + " "

    async def generate(self, messages, settings):
        return "".join([d async for d in self.stream(messages, settings)])


def session(client: TestClient, **consent) -> dict:
    response = client.post("/api/session", json={**CONSENT, **consent})
    assert response.status_code == 200, response.text
    return response.json()


