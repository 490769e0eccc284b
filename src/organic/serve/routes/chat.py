"""The web chat: its page, and conversations with the model (start, list, read, send a message)."""

import json
from collections.abc import AsyncIterator
from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel

from organic.serve.auth import Caller
from organic.serve.server import STATIC, Server
from organic.serve.turn import Event


class MessageIn(BaseModel):
    text: str


def chat_router(server: Server) -> APIRouter:
    api = APIRouter(tags=["chat"])
    Who = Annotated[Caller, Depends(server.caller)]

    @api.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @api.post("/api/conversations", status_code=201)
    async def start_conversation(who: Who) -> dict:
        """Start a conversation; the server picks its model version (live A/B by traffic share)."""
        version = server.router.choose()
        cid = await to_thread.run_sync(server.store(who).start_conversation, who.pseudo_id, version)
        return {"id": cid, "model_version": version, "messages": []}

    @api.get("/api/conversations")
    async def list_conversations(who: Who) -> list[dict]:
        return await to_thread.run_sync(server.store(who).conversations, who.pseudo_id)

    @api.get("/api/conversations/{conversation_id}")
    async def read_conversation(conversation_id: str, who: Who) -> dict:
        return await to_thread.run_sync(server.store(who).conversation, who.pseudo_id, conversation_id)

    @api.post("/api/conversations/{conversation_id}/messages")
    async def send_message(conversation_id: str, body: MessageIn, who: Who,
                           stream: Annotated[bool, Query(description="Stream the reply as server-sent events.")] = True):
        """Send a message. With ``stream`` (default) the reply comes as server-sent events: ``human`` (the stored
        message), ``delta`` (checked reply text), ``replace`` (a canned reply replaces what was shown), ``done``
        (the stored reply); otherwise as JSON ``{"human": ..., "reply": ...}``."""
        events = server.turns.run(server.store(who), who.pseudo_id, conversation_id, server.user_text(body.text),
                                  server.generation())
        first = await anext(events)  # unknown or foreign conversations fail here, before any streaming starts
        if not stream:
            result = {"human": first.data}
            async for event in events:
                if event.kind == "done":
                    result["reply"] = event.data
            return result
        return StreamingResponse(_sse(first, events), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return api


async def _sse(first: Event, rest: AsyncIterator[Event]) -> AsyncIterator[str]:
    yield _event(first)
    async for event in rest:
        yield _event(event)


def _event(event: Event) -> str:
    return f"event: {event.kind}\ndata: {json.dumps(event.data, ensure_ascii=False)}\n\n"
