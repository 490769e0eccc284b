"""OpenAIBackend against a tiny fake OpenAI-compatible server (FastAPI + uvicorn on a free local port)."""

import asyncio
import json
import re
import socket

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from organic.generate import GenerationError, GenerationSettings, OpenAIBackend
from organic.generate.base import CUT_OFF
from organic.serve.local import LocalServer

received = []  # request bodies and auth headers the fake server saw


def fake_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def completions(request: Request):
        body = await request.json()
        received.append((body, request.headers.get("authorization")))
        if body["model"] == "broken":
            return JSONResponse({"error": {"message": "model crashed"}}, status_code=500)
        words = re.findall(r"\s*\S+", "Fake reply to: " + body["messages"][-1]["content"])[: body["max_tokens"]]
        if not body["stream"]:
            message = {"role": "assistant", "content": "".join(words)}
            return {"object": "chat.completion", "model": body["model"], "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}

        def chunk(delta, finish=None):
            payload = {"object": "chat.completion.chunk", "model": body["model"], "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return f"data: {json.dumps(payload)}\n\n"

        async def events():
            yield chunk({"role": "assistant"})
            for word in words:
                yield chunk({"content": word})
            yield chunk({}, finish="length" if len(words) == body["max_tokens"] else "stop")
            yield 'data: {"object": "chat.completion.chunk", "choices": [], "usage": {"completion_tokens": 3}}\n\n'
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


@pytest.fixture(scope="module")
def base_url():
    with LocalServer(fake_app()) as url:
        yield f"{url}/v1"


def chat(text):
    return [{"role": "user", "content": text}]


async def collect(backend, messages, settings):
    return [delta async for delta in backend.stream(messages, settings)]


def test_streaming(base_url):
    backend = OpenAIBackend(base_url, "smollm2", api_key="secret")
    deltas = asyncio.run(collect(backend, chat("how are you today"), GenerationSettings(seed=5)))
    assert "".join(deltas) == "Fake reply to: how are you today"
    assert len(deltas) == 7
    body, auth = received[-1]
    assert auth == "Bearer secret"
    assert body["stream"] is True and body["seed"] == 5 and body["temperature"] == 0.7 and body["max_tokens"] == 64
    assert backend.name == "openai" and backend.model_version == "smollm2"
    cut = asyncio.run(collect(backend, chat("how are you today"), GenerationSettings(max_new_tokens=3)))
    assert "".join(cut) == "Fake reply to:" and cut[-1] is CUT_OFF and not any(d is CUT_OFF for d in deltas)


def test_non_streaming_and_greedy(base_url):
    backend = OpenAIBackend(base_url.removesuffix("/v1"), "smollm2")  # a URL without /v1 works too
    reply = asyncio.run(backend.generate(chat("hello there"), GenerationSettings(max_new_tokens=4, do_sample=False)))
    assert reply == "Fake reply to: hello"
    body, _ = received[-1]
    assert body["stream"] is False and body["temperature"] == 0.0 and "seed" not in body


def test_server_error_is_generation_error(base_url):
    backend = OpenAIBackend(base_url, "broken")
    with pytest.raises(GenerationError, match="500"):
        asyncio.run(collect(backend, chat("hi"), GenerationSettings()))
    with pytest.raises(GenerationError, match="model crashed"):
        asyncio.run(backend.generate(chat("hi"), GenerationSettings()))


def test_unreachable_server_is_generation_error():
    with socket.socket() as closed:  # bound but never listening: connections are refused, and no one else takes it
        closed.bind(("127.0.0.1", 0))
        backend = OpenAIBackend(f"http://127.0.0.1:{closed.getsockname()[1]}/v1", "smollm2", timeout=5)
        with pytest.raises(GenerationError):
            asyncio.run(backend.generate(chat("hi"), GenerationSettings()))
        with pytest.raises(GenerationError):
            asyncio.run(collect(backend, chat("hi"), GenerationSettings()))
