"""Generation through any OpenAI-compatible server (vLLM, llama.cpp's server, TGI, a hosted API).

This is how organic scales out: run ``vllm serve <model-folder>`` on a GPU machine and point
``ORGANIC_OPENAI_BASE_URL`` at it. Replies stream over server-sent events from
``POST <base_url>/chat/completions``: lines ``data: {chunk}`` whose ``choices[0].delta.content``
carries the text, ending with ``data: [DONE]``. This module must not start or manage the server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx

from organic.generate.base import CUT_OFF, Backend, GenerationError, GenerationSettings


class OpenAIBackend(Backend):
    name = "openai"

    def __init__(self, base_url: str, model: str, api_key: str = "EMPTY", timeout: float = 60.0):
        url = base_url.rstrip("/")
        self.base_url = url if url.endswith("/v1") else f"{url}/v1"  # accept "http://host:8000" and ".../v1" alike
        self.model = model
        self.model_version = model  # the served model name is what tells one served version from another
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.timeout = timeout  # seconds without a byte from the server before giving up

    async def stream(self, messages: list[dict], settings: GenerationSettings) -> AsyncIterator[str]:
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                async with client.stream("POST", self._url, json=self._body(messages, settings, stream=True), headers=self.headers) as response:
                    await _raise_for_status(response)
                    async for line in response.aiter_lines():
                        if not line.startswith("data:"):
                            continue  # blank separators, comments and event names
                        data = line[len("data:") :].strip()
                        if data == "[DONE]":
                            return
                        for choice in json.loads(data).get("choices") or []:  # a final usage-only chunk has no choices
                            if content := (choice.get("delta") or {}).get("content"):
                                yield content
                            if choice.get("finish_reason") == "length":
                                yield CUT_OFF
        except (httpx.HTTPError, json.JSONDecodeError) as e:
            raise GenerationError(f"{self._url}: {type(e).__name__}: {e}") from e

    async def generate(self, messages: list[dict], settings: GenerationSettings) -> str:
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(self._url, json=self._body(messages, settings, stream=False), headers=self.headers)
                await _raise_for_status(response)
                return response.json()["choices"][0]["message"]["content"] or ""
        except (httpx.HTTPError, json.JSONDecodeError, KeyError, IndexError) as e:
            raise GenerationError(f"{self._url}: {type(e).__name__}: {e}") from e

    @property
    def _url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def _body(self, messages: list[dict], settings: GenerationSettings, stream: bool) -> dict:
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": settings.max_new_tokens,
            "temperature": settings.temperature if settings.do_sample else 0.0,  # temperature 0 is greedy on these servers
            "top_p": settings.top_p if settings.do_sample else 1.0,
            "stream": stream,
        }
        if settings.seed is not None:
            body["seed"] = settings.seed
        return body


async def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code >= 400:
        detail = (await response.aread()).decode(errors="replace")[:500]
        raise GenerationError(f"{response.request.url} answered {response.status_code}: {detail}")
