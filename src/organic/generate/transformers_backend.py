"""Generation with a local Hugging Face model folder, with concurrent requests batched together.

How batching works (static batching, the simple robust kind):
- ``stream()`` tokenizes the chat, puts a request on a thread-safe queue and awaits text deltas
  on its own asyncio queue;
- one worker thread owns the model. It takes the first waiting request, collects whatever else
  arrives within ``batch_window`` seconds (up to ``max_batch``), and decodes them together:
  one left-padded prefill, then one forward pass per new token for the whole batch, reusing the
  KV cache (``past_key_values``);
- every row picks its next token with its *own* settings (greedy or temperature / top-p, its own
  seed), stops at its own ``max_new_tokens`` or end-of-turn token, and streams its text back.
We decode step by step ourselves rather than calling ``model.generate`` because ``generate``
applies one set of sampling settings to the whole batch and its streamers handle one row only.
Requests arriving while a batch runs wait for the next one (continuous batching is what vLLM
is for: use ``OpenAIBackend`` in front of it).

This module must not download anything: the folder must exist (``organic.generate.prepare``).
"""

from __future__ import annotations

import asyncio
import hashlib
import queue
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

from organic.generate.base import Backend, GenerationError, GenerationSettings

_DONE = object()  # end-of-stream marker on a request's queue


@dataclass(eq=False)
class _Request:
    prompt_ids: list[int]
    settings: GenerationSettings
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: bool = False  # set by the consumer when it stops listening
    finished: bool = False  # set by the worker once _DONE or an error was sent

    def send(self, item) -> None:
        """Hand ``item`` to the consumer's event loop (called from the worker thread)."""
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the consumer's loop is closed: nobody is listening any more
            self.cancelled = True


class TransformersBackend(Backend):
    name = "transformers"

    def __init__(self, model_path: str | Path, device: str = "cpu", max_batch: int = 8, batch_window: float = 0.015):
        self.path = Path(model_path)
        if not (self.path / "config.json").is_file():
            raise FileNotFoundError(f"model folder {self.path} has no config.json; run `organic model prepare` first")
        self.device = torch.device(device)
        self.max_batch = max_batch  # most requests decoded together
        self.batch_window = batch_window  # seconds to wait for more requests after the first one arrives
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModelForCausalLM.from_pretrained(self.path, dtype=torch.float32).to(self.device).eval()
        self.model_version = model_version(self.path)
        eos = self.model.generation_config.eos_token_id
        self.stop_ids = {*(eos if isinstance(eos, list) else [eos]), self.tokenizer.eos_token_id} - {None}
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.stop_ids)
        self.max_length = self.model.config.max_position_embeddings  # prompt + reply must fit the positions
        self.batches_run = 0  # batches decoded so far; requests_served / batches_run is the mean batch size
        self.requests_served = 0
        self._requests: queue.Queue[_Request | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()

    async def stream(self, messages: list[dict], settings: GenerationSettings) -> AsyncIterator[str]:
        try:
            prompt_ids = self.encode(messages, settings.max_new_tokens)
        except Exception as e:  # a broken chat template or message list: still the model failing to answer
            raise GenerationError(f"could not build the prompt: {e}") from e
        request = _Request(prompt_ids, settings, asyncio.get_running_loop())
        self._start_worker()
        self._requests.put(request)
        try:
            while (item := await request.queue.get()) is not _DONE:
                if isinstance(item, Exception):
                    raise GenerationError(f"{self.model_version} failed: {type(item).__name__}: {item}") from item
                yield item
        finally:
            request.cancelled = True  # the worker stops decoding this row if the consumer gave up early

    def encode(self, messages: list[dict], max_new_tokens: int) -> list[int]:
        """Token ids of the chat with the template's assistant prompt; the oldest turns are dropped to fit."""
        messages = list(messages)
        while True:
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            first = 1 if messages and messages[0]["role"] == "system" else 0
            if len(ids) + max_new_tokens <= self.max_length or len(messages) - first <= 1:
                return ids[-(self.max_length - max_new_tokens) :]
            del messages[first]

    def close(self) -> None:
        """Stop the worker thread once the batches in flight are done."""
        with self._lock:
            if self._worker is not None:
                self._requests.put(None)
                self._worker.join()
                self._worker = None

    def _start_worker(self) -> None:
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name=f"organic-generate-{self.path.name}", daemon=True)
                self._worker.start()

    def _work(self) -> None:
        while (first := self._requests.get()) is not None:
            batch = [first]
            deadline = time.monotonic() + self.batch_window
            while len(batch) < self.max_batch and (timeout := deadline - time.monotonic()) > 0:
                try:
                    request = self._requests.get(timeout=timeout)
                except queue.Empty:
                    break
                if request is None:  # close() was called: finish this batch, then stop
                    self._requests.put(None)
                    break
                batch.append(request)
            batch = [r for r in batch if not r.cancelled]
            if not batch:
                continue
            try:
                self._decode(batch)
            except Exception as e:  # the worker survives a crash; every unfinished request hears about it
                for r in batch:
                    if not r.finished:
                        r.finished = True
                        r.send(e)

    @torch.inference_mode()
    def _decode(self, batch: list[_Request]) -> None:
        self.batches_run += 1
        self.requests_served += len(batch)
        width = max(len(r.prompt_ids) for r in batch)
        input_ids = torch.tensor([[self.pad_id] * (width - len(r.prompt_ids)) + r.prompt_ids for r in batch], device=self.device)
        attention_mask = torch.tensor([[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in batch], device=self.device)
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # left padding: every prompt starts at position 0
        cache = DynamicCache(config=self.model.config)
        logits = self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
            past_key_values=cache, use_cache=True, logits_to_keep=1,
        ).logits[:, -1, :]
        rows = [_Row(r, self.tokenizer, self.device) for r in batch]
        for row in rows:
            if row.request.settings.max_new_tokens <= 0:
                row.finish()
        while not all(row.done for row in rows):
            next_ids = [self.pad_id if row.done else _pick(logits[i], row.request.settings, row.generator) for i, row in enumerate(rows)]
            for row, token in zip(rows, next_ids):
                if not row.done:
                    row.add(token, token in self.stop_ids)
            if all(row.done for row in rows):
                break
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones(len(rows), 1)], dim=1)
            position_ids = position_ids[:, -1:] + 1
            logits = self.model(
                input_ids=torch.tensor(next_ids, device=self.device)[:, None], attention_mask=attention_mask,
                position_ids=position_ids, past_key_values=cache, use_cache=True,
            ).logits[:, -1, :]


class _Row:
    """One request inside a batch: its sampling generator and the text streamed so far."""

    def __init__(self, request: _Request, tokenizer, device: torch.device):
        self.request = request
        self.tokenizer = tokenizer
        self.generator = None if request.settings.seed is None else torch.Generator(device).manual_seed(request.settings.seed)
        self.token_ids: list[int] = []
        self.sent = ""  # text already streamed to the consumer

    @property
    def done(self) -> bool:
        return self.request.finished or self.request.cancelled

    def add(self, token: int, is_stop: bool) -> None:
        if not is_stop:
            self.token_ids.append(token)
            text = self.tokenizer.decode(self.token_ids, skip_special_tokens=True)
            # hold back a half-decoded character (a multi-byte UTF-8 sequence cut between tokens)
            if not text.endswith("\ufffd") and text.startswith(self.sent) and len(text) > len(self.sent):
                self.request.send(text[len(self.sent) :])
                self.sent = text
        if is_stop or len(self.token_ids) >= self.request.settings.max_new_tokens:
            self.finish()

    def finish(self) -> None:
        text = self.tokenizer.decode(self.token_ids, skip_special_tokens=True)
        if text.startswith(self.sent) and len(text) > len(self.sent):
            self.request.send(text[len(self.sent) :])
        self.request.finished = True
        self.request.send(_DONE)


def _pick(logits: torch.Tensor, settings: GenerationSettings, generator: torch.Generator | None) -> int:
    """The next token of one row: greedy, or sampled with temperature and nucleus (top-p) filtering."""
    if not settings.do_sample or settings.temperature <= 0:
        return int(logits.argmax())
    probs = torch.softmax(logits.float() / settings.temperature, dim=-1)
    if settings.top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs >= settings.top_p  # mass before a token already reaches top_p
        probs = probs.scatter(-1, order, sorted_probs.masked_fill(outside, 0.0))
    return int(torch.multinomial(probs, 1, generator=generator))


def model_version(path: Path) -> str:
    """A stable name for the weights in ``path``: the folder name and a short hash of its files.

    A ``VERSION`` file in the folder, if present, is used instead of the hash (a training run can write one).
    """
    version_file = path / "VERSION"
    if version_file.is_file():
        return f"{path.name}@{version_file.read_text().strip()}"
    digest = hashlib.sha256((path / "config.json").read_bytes())
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        stat = weights.stat()  # size and mtime stand in for the content: hashing gigabytes at every start is too slow
        digest.update(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return f"{path.name}@{digest.hexdigest()[:8]}"
