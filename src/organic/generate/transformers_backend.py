"""Generation with a local Hugging Face model folder, with concurrent requests batched together.

How batching works (static batching, the simple robust kind):
- ``stream()`` tokenizes the chat, puts a request on a thread-safe queue and awaits text deltas
  on its own asyncio queue;
- one worker thread owns the model. It takes the first waiting request, collects whatever else
  arrives within ``batch_window`` seconds (up to ``max_batch``), and decodes them together:
  one left-padded prefill, then one forward pass per new token for the whole batch, reusing the
  KV cache (``past_key_values``);
- every row picks its next token with its *own* settings (greedy or temperature / top-p, its own
  seed), stops at its own ``max_new_tokens`` or end-of-turn token, streams its text back, and
  leaves the batch (and its KV cache) once finished or abandoned by its consumer.
We decode step by step ourselves rather than calling ``model.generate`` because ``generate``
applies one set of sampling settings to the whole batch and its streamers handle one row only.
Requests arriving while a batch runs wait for the next one (continuous batching is what vLLM
is for: use ``OpenAIBackend`` in front of it).

This module must not download anything: the folder must exist (``organic.generate.prepare``).
"""

from __future__ import annotations

import asyncio
import copy
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
CANDIDATES = 256  # tokens considered for nucleus sampling before falling back to the whole vocabulary


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

    def __init__(self, model_path: str | Path, device: str | None = None, max_batch: int = 8, batch_window: float = 0.1):
        self.path = Path(model_path)
        if not (self.path / "config.json").is_file():
            raise FileNotFoundError(f"model folder {self.path} has no config.json; run `organic model prepare` first")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))  # None: a GPU if there is one
        self.max_batch = max_batch  # most requests decoded together
        self.batch_window = batch_window  # seconds to wait for more requests after the first one: the server's turns reach
        # the model spread over tens of milliseconds (safety check, store writes), and a request that misses a batch waits
        # for the whole batch to finish; 0.1 s is a few percent of a reply on this CPU
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)  # encodes prompts, on the caller's thread
        # the worker thread decodes with its own copy: a fast tokenizer used from two threads at once
        # can fail with "RuntimeError: Already borrowed" (huggingface/transformers#47085)
        self._decoder = copy.deepcopy(self.tokenizer)
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
        if settings.max_new_tokens == 0:
            return
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
                return ids[-max(self.max_length - max_new_tokens, 1) :]  # a single huge message is cut from the left
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
        rows = [_Row(r, self._decoder, self.device) for r in batch]
        while True:
            next_ids = next_tokens(logits, [row.settings for row in rows], [row.generator for row in rows])
            for row, token in zip(rows, next_ids):
                row.add(token, token in self.stop_ids)
            keep = [i for i, row in enumerate(rows) if not row.done]
            if not keep:
                return
            if len(keep) < len(rows):  # finished or abandoned rows leave the batch and cost nothing more
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                rows, next_ids = [rows[i] for i in keep], [next_ids[i] for i in keep]
                attention_mask, position_ids = attention_mask[index], position_ids[index]
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
        self.settings = request.settings
        self.tokenizer = tokenizer
        self.generator = None if self.settings.seed is None else torch.Generator(device).manual_seed(self.settings.seed)
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
        if is_stop or len(self.token_ids) >= self.settings.max_new_tokens:
            self.finish()

    def finish(self) -> None:
        text = self.tokenizer.decode(self.token_ids, skip_special_tokens=True)
        if text.startswith(self.sent) and len(text) > len(self.sent):
            self.request.send(text[len(self.sent) :])
        self.request.finished = True
        self.request.send(_DONE)


def next_tokens(logits: torch.Tensor, settings: list[GenerationSettings], generators: list[torch.Generator | None]) -> list[int]:
    """Each row's next token with its own settings: greedy, or temperature + nucleus (top-p) sampling.

    Sampling draws from the top ``CANDIDATES`` tokens when the nucleus lies inside them (nearly always),
    which is exact and avoids sorting the whole vocabulary for every row at every step.
    """
    samples = [s.do_sample and s.temperature > 0 and s.top_p > 0 for s in settings]  # otherwise greedy
    greedy = logits.argmax(-1).tolist()
    temperature = torch.tensor([[s.temperature if sample else 1.0] for s, sample in zip(settings, samples)], device=logits.device)
    scaled = logits.float() / temperature
    top, top_ids = scaled.topk(min(CANDIDATES, scaled.shape[-1]), dim=-1)  # sorted, most likely first
    top_probs = (top - scaled.logsumexp(-1, keepdim=True)).exp()
    tokens = []
    for i, (s, sample, generator) in enumerate(zip(settings, samples, generators)):
        if not sample:
            tokens.append(greedy[i])
            continue
        probs, ids = top_probs[i], top_ids[i]
        if s.top_p >= 1.0 or probs.sum() < s.top_p:  # the nucleus reaches past the candidates
            probs, ids = scaled[i].softmax(-1), None
        else:  # keep the smallest set of most likely tokens whose probability reaches top_p
            probs = probs.masked_fill(probs.cumsum(-1) - probs >= s.top_p, 0.0)
        choice = int(torch.multinomial(probs, 1, generator=generator))
        tokens.append(choice if ids is None else int(ids[choice]))
    return tokens


def model_version(path: Path) -> str:
    """A stable name for the weights in ``path``: the folder name and a short hash of its files.

    A ``VERSION`` file in the folder, if present, is the name instead: ``organic train`` writes the name it
    registered the model version under, so the server stores replies under that same name.
    """
    version_file = path / "VERSION"
    if version_file.is_file():
        return version_file.read_text().strip()
    digest = hashlib.sha256((path / "config.json").read_bytes())
    for weights in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        stat = weights.stat()  # size and mtime stand in for the content: hashing gigabytes at every start is too slow
        digest.update(f"{weights.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return f"{path.name}@{digest.hexdigest()[:8]}"
