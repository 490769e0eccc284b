"""A backend with no model: replies instantly and deterministically from the last user message.

For tests, demos and load tests of everything around generation (server, store, UI), where a real
model would only be slow. It must not pretend to be a model: its model_version is "echo".
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator

from organic.generate.base import CUT_OFF, Backend, GenerationSettings

OPENERS = ("You said:", "I heard:", "Echo:", "So you're saying:")


class EchoBackend(Backend):
    name = "echo"

    def __init__(self, model_version: str = "echo"):
        self.model_version = model_version  # another name only to stand in for a version in A/B dry runs

    async def stream(self, messages: list[dict], settings: GenerationSettings) -> AsyncIterator[str]:
        words = re.findall(r"\s*\S+", self.reply(messages))
        for word in words[: settings.max_new_tokens]:
            yield word
            await asyncio.sleep(0)  # let other requests run between words, as a real stream would
        if len(words) > settings.max_new_tokens:
            yield CUT_OFF

    @staticmethod
    def reply(messages: list[dict]) -> str:
        """The whole reply: an opener picked by a stable hash of the last user message, then the message."""
        last = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "").strip()
        if not last:
            return "Hi! What would you like to talk about?"
        opener = OPENERS[int(hashlib.sha256(last.encode()).hexdigest(), 16) % len(OPENERS)]
        return f"{opener} {last}"
