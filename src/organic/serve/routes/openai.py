"""OpenAI's chat completions at ``/v1/chat/completions``, stored like any web chat: the session token is the API
key, and the response ``id`` is the stored bot message's id. A client re-sends the whole history each turn; the
conversation it continues is found by that history (``ChatStore.continued``), and turns this server did not write
are the model's context only, never stored as messages."""

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from anyio import to_thread
from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from organic.serve.auth import Caller
from organic.serve.chat import ChatStore
from organic.serve.server import Server
from organic.serve.turn import Event

MAX_HISTORY = 200  # messages an OpenAI client may send with one request


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatCompletionIn(BaseModel):
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = Field(None, ge=0, le=2**32 - 1)


def openai_router(server: Server) -> APIRouter:
    api = APIRouter(tags=["openai"])
    Who = Annotated[Caller, Depends(server.caller)]

    @api.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionIn, who: Who):
        """OpenAI's chat completions, stored like any web chat. Send the session token as the API key. The
        response ``id`` is the stored bot message's id: rate it with ``PUT /api/messages/{id}/rating``."""
        store = server.store(who)
        turns_in = [m for m in body.messages if m.role != "system"]
        if turns_in[-1:] and turns_in[-1].role != "user":
            raise HTTPException(422, "the last message must have role 'user'")
        text = server.user_text(turns_in[-1].content if turns_in else "")
        history = [m.model_dump() for m in turns_in[:-1]]
        if len(history) > MAX_HISTORY:
            raise HTTPException(422, f"the history has {len(history)} messages; the limit is {MAX_HISTORY}")
        for i, m in enumerate(history):
            server.within_limit(m["content"], f"messages[{i}]")
        convo_id = await to_thread.run_sync(_conversation_for, store, who, server, history)
        reply_id = f"chatcmpl-{convo_id[2:10]}{time.time_ns():x}"
        settings = server.generation(body.max_tokens, body.temperature, body.top_p, body.seed)
        events = server.turns.run(store, who.pseudo_id, convo_id, text, settings, reply_id=reply_id)
        if body.stream:
            return StreamingResponse(_chunks(events, reply_id), media_type="text/event-stream")
        reply = None
        async for event in events:
            if event.kind == "done":
                reply = event.data
        return _completion(reply_id, reply)

    return api


def _conversation_for(store: ChatStore, who: Caller, server: Server, history: list[dict]) -> str:
    """The caller's conversation that ``history`` continues, or a new one that takes ``history`` as context only."""
    return store.continued(who.pseudo_id, history) or store.start_conversation(
        who.pseudo_id, server.router.choose(), source="api", client_context=history or None)


def _completion(reply_id: str, reply: dict) -> dict:
    return {
        "id": reply_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply["model_version"] or "organic",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply["text"]}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


async def _chunks(events: AsyncIterator[Event], reply_id: str) -> AsyncIterator[str]:
    def chunk(delta: dict, finish: str | None = None, model: str | None = None) -> str:
        body = {"id": reply_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model or "organic",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    shown = False
    async for event in events:
        if event.kind == "delta":
            shown = True
            yield chunk({"content": event.data["text"]})
        elif event.kind == "replace":  # a stream cannot retract text: after checked text, the canned reply follows a marker
            yield chunk({"content": ("\n[replaced by a safe reply] " if shown else "") + event.data["text"]})
        elif event.kind == "done":
            yield chunk({}, "stop", event.data["model_version"])
    yield "data: [DONE]\n\n"
