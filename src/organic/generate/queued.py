"""The consumer's side of a local backend: ``transformers_backend`` and ``ct2_backend`` decode on threads of their
own, and hand what they make back, one item at a time, to the event loop of the request that asked for it.

A backend subclasses ``Queued`` with ``_prompt`` (the chat as its engine takes it) and ``_submit`` (hand a
``Request`` to the workers); ``_items`` then yields what the workers send until they finish it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from organic.generate.base import GenerationError, GenerationSettings

DONE = object()  # the end of a request's items


@dataclass(eq=False)
class Request:
    prompt: list  # token ids, or tokens for CTranslate2
    settings: GenerationSettings
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: bool = False  # set by the consumer when it stops listening: the workers stop decoding it
    finished: bool = False  # set by the workers once DONE or an error was sent

    def send(self, item: Any) -> None:
        """Hand ``item`` to the consumer's event loop (called from a worker thread)."""
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the consumer's loop is closed: nobody is listening any more
            self.cancelled = True

    def finish(self, error: Exception | None = None) -> None:
        if not self.finished:
            self.finished = True
            self.send(error or DONE)


class Queued:
    model_version: str
    request_type: type[Request] = Request

    def _prompt(self, messages: list[dict], settings: GenerationSettings) -> list:
        raise NotImplementedError

    def _submit(self, request: Request) -> None:
        raise NotImplementedError

    def _items(self, messages: list[dict], settings: GenerationSettings) -> aclosing[AsyncIterator[Any]]:
        """What the workers send for this chat, until they finish it: ``async with self._items(...) as items``,
        so that a consumer who stops early cancels the request at once."""
        return aclosing(self._received(messages, settings))

    async def _received(self, messages: list[dict], settings: GenerationSettings) -> AsyncIterator[Any]:
        try:
            prompt = self._prompt(messages, settings)
        except Exception as e:  # a broken chat template or message list: still the model failing to answer
            raise GenerationError(f"could not build the prompt: {e}") from e
        if settings.max_new_tokens == 0:
            return
        request = self.request_type(prompt, settings, asyncio.get_running_loop())
        self._submit(request)
        try:
            while (item := await request.queue.get()) is not DONE:
                if isinstance(item, Exception):
                    raise GenerationError(f"{self.model_version} failed: {type(item).__name__}: {item}") from item
                yield item
        finally:
            request.cancelled = True
