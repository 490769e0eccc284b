"""Generation with a local Hugging Face model folder, with concurrent requests batched continuously.

How batching works:
- ``stream()`` tokenizes the chat, puts a request on a thread-safe queue and awaits text deltas
  on its own asyncio queue;
- one worker thread owns the model and decodes the running rows together, one forward pass per new
  token for the whole batch, reusing the KV cache (``past_key_values``), left-padded to a common length;
- a request that arrives while rows are decoding joins at the next step: its prompt is prefilled on its
  own and its cache is stacked under the running rows' (no waiting for a batch to finish). When the
  worker is idle, it waits ``batch_window`` seconds after the first request so that requests arriving
  together share one prefill;
- every row picks its next token with its *own* settings (greedy or temperature / top-p, its own
  seed), stops at its own ``max_new_tokens`` or end-of-turn token, streams its text back, and
  leaves the batch (with its cache, and any padding nobody needs any more) once finished or abandoned.
We decode step by step ourselves rather than calling ``model.generate`` because ``generate``
applies one set of sampling settings to the whole batch, cannot take new rows mid-way, and its
streamers handle one row only. Paged attention and GPU-scale throughput are what vLLM is for: use
``OpenAIBackend`` in front of it.

This module must not download anything: the folder must exist (``organic.generate.prepare``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import queue
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

from organic.generate.base import CUT_OFF, Backend, GenerationError, GenerationSettings
from organic.generate.loading import check_loaded, model_loading
from organic.generate.queued import Queued, Request
from organic.settings import get_settings

CANDIDATES = 256  # tokens considered for nucleus sampling before falling back to the whole vocabulary


class TransformersBackend(Queued, Backend):
    name = "transformers"

    def __init__(self, model_path: str | Path, device: str | None = None, max_batch: int = 8, batch_window: float = 0.05):
        self.path = Path(model_path)
        if not (self.path / "config.json").is_file():
            raise FileNotFoundError(f"model folder {self.path} has no config.json; run `organic model prepare` first")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))  # None: a GPU if there is one
        self.max_batch = max_batch  # most requests decoded together
        self.batch_window = batch_window  # when idle, seconds to wait after a first request for others to share its prefill
        with model_loading():
            self.tokenizer = AutoTokenizer.from_pretrained(self.path)  # encodes prompts, on the caller's thread
            self.model = AutoModelForCausalLM.from_pretrained(self.path, dtype=torch.float32)
        check_loaded(self.model, self.path)
        self.model = self.model.to(self.device).eval()
        # the worker thread decodes with its own copy: a fast tokenizer used from two threads at once
        # can fail with "RuntimeError: Already borrowed" (huggingface/transformers#47085)
        self._decoder = copy.deepcopy(self.tokenizer)
        self.model_version = model_version(self.path)
        eos = self.model.generation_config.eos_token_id
        self.stop_ids = {*(eos if isinstance(eos, list) else [eos]), self.tokenizer.eos_token_id} - {None}
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.stop_ids)
        self.max_length = self.model.config.max_position_embeddings  # prompt + reply must fit the positions
        self.prefills = 0  # forward passes that admitted new rows; requests_served / prefills is the mean admitted together
        self.requests_served = 0
        self._closing = False
        self._requests: queue.Queue[Request | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()

    async def stream(self, messages: list[dict], settings: GenerationSettings) -> AsyncIterator[str]:
        async with self._items(messages, settings) as pieces:
            async for piece in pieces:
                yield piece

    def _prompt(self, messages: list[dict], settings: GenerationSettings) -> list[int]:
        return self.encode(messages, settings.max_new_tokens)

    def encode(self, messages: list[dict], max_new_tokens: int) -> list[int]:
        """Token ids of the chat with the template's assistant prompt; the oldest turns are dropped to fit."""
        return encode_chat(self.tokenizer, messages, max_new_tokens, self.max_length)

    def close(self) -> None:
        """Stop the worker thread once the rows in flight are done (requests queued behind it get ``GenerationError``)."""
        with self._lock:
            if self._worker is not None:
                self._requests.put(None)
                self._worker.join()
                self._worker = None
                self._closing = False

    def _submit(self, request: Request) -> None:
        with self._lock:  # with close(): a request never lands behind a worker that is stopping
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name=f"organic-generate-{self.path.name}", daemon=True)
                self._worker.start()
            self._requests.put(request)

    def _admit(self, running: int) -> list[Request]:
        """Requests to join the batch now. When nothing runs, wait for one and then ``batch_window`` for more, so
        that requests arriving together share one prefill; while rows run, take only what is already waiting."""
        admitted: list[Request] = []
        deadline = None
        while running + len(admitted) < self.max_batch and not self._closing:
            timeout = 0 if running else None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                request = self._requests.get(timeout=timeout)
            except queue.Empty:
                break
            if deadline is None:
                deadline = time.monotonic() + self.batch_window
            if request is None:  # close(): finish the rows in flight, then stop
                self._closing = True
            elif not request.cancelled:
                admitted.append(request)
        return admitted

    def _work(self) -> None:
        batch = _Batch(self)
        while True:
            new = self._admit(len(batch.rows))
            if self._closing and not batch.rows and not new:
                break
            try:
                if new:
                    batch.join(new)
            except Exception as e:  # a failed prefill fails its newcomers only: the running rows are untouched
                _fail(new, e)
            try:
                if batch.rows:
                    batch.step()
            except Exception as e:  # the worker survives a crash; every row in flight hears about it
                _fail([row.request for row in batch.rows], e)
                batch = _Batch(self)
        while True:  # requests that arrived after close() are refused, not left waiting
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                return
            if request is not None:
                request.finish(GenerationError("the backend was closed"))


def _fail(requests: list[Request], error: Exception) -> None:
    for request in requests:
        request.finish(error)


class _Batch:
    """The rows being decoded together, and their KV cache, left-padded to a common length.

    Every row has one sampled token not yet fed to the model (``pending``). A step feeds them all at once;
    new rows are prefilled on their own and their cache is padded on the left and stacked under the running
    rows' cache, so that joining costs the running rows one forward pass of the newcomers and a copy of the cache.
    """

    def __init__(self, backend: TransformersBackend):
        self.backend = backend
        self.model = backend.model
        self.device = backend.device
        self.rows: list[_Row] = []
        self.pending: list[int] = []  # each row's next input token
        self.cache: DynamicCache | None = None
        self.attention_mask: torch.Tensor | None = None  # [rows, cache length]: 0 over each row's left padding
        self.positions: torch.Tensor | None = None  # [rows, 1]: each row's position of its pending token

    @torch.inference_mode()
    def join(self, requests: list[Request]) -> None:
        backend = self.backend
        width = max(len(r.prompt) for r in requests)
        input_ids = torch.tensor([[backend.pad_id] * (width - len(r.prompt)) + r.prompt for r in requests], device=self.device)
        mask = torch.tensor([[0] * (width - len(r.prompt)) + [1] * len(r.prompt) for r in requests], device=self.device)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: every prompt starts at position 0
        # full-length layers for every model: sliding-window caches cannot be lined up row by row, and the model's
        # attention masks apply any window over a full cache (it costs memory beyond the window, not correctness)
        cache = DynamicCache()
        logits = self.model(
            input_ids=input_ids, attention_mask=mask, position_ids=position_ids,
            past_key_values=cache, use_cache=True, logits_to_keep=1,
        ).logits[:, -1, :]
        backend.prefills += 1
        backend.requests_served += len(requests)
        rows = [_Row(r, backend._decoder, self.device) for r in requests]
        pending = self._sample(rows, logits)
        self._merge(rows, pending, cache, mask, position_ids[:, -1:] + 1)

    @torch.inference_mode()
    def step(self) -> None:
        self.attention_mask = torch.cat([self.attention_mask, self.attention_mask.new_ones(len(self.rows), 1)], dim=1)
        logits = self.model(
            input_ids=torch.tensor(self.pending, device=self.device)[:, None], attention_mask=self.attention_mask,
            position_ids=self.positions, past_key_values=self.cache, use_cache=True,
        ).logits[:, -1, :]
        self.positions = self.positions + 1
        self.pending = self._sample(self.rows, logits)
        self._keep([i for i, row in enumerate(self.rows) if not row.done])

    def _sample(self, rows: list[_Row], logits: torch.Tensor) -> list[int]:
        tokens = next_tokens(logits, [row.settings for row in rows], [row.generator for row in rows])
        for row, token in zip(rows, tokens):
            row.add(token, token in self.backend.stop_ids)
        return tokens

    def _keep(self, keep: list[int]) -> None:
        """Drop finished or abandoned rows, and the cache columns that are padding in every row left."""
        if len(keep) == len(self.rows):
            return
        self.rows, self.pending = [self.rows[i] for i in keep], [self.pending[i] for i in keep]
        if not keep:
            self.cache = self.attention_mask = self.positions = None
            return
        index = torch.tensor(keep, device=self.device)
        self.attention_mask, self.positions = self.attention_mask[index], self.positions[index]
        start = int(self.attention_mask.any(0).int().argmax())  # first column some row still uses
        self.attention_mask = self.attention_mask[:, start:]
        for layer in self.cache.layers:
            layer.keys, layer.values = layer.keys[index, :, start:], layer.values[index, :, start:]

    def _merge(self, rows: list[_Row], pending: list[int], cache: DynamicCache, mask: torch.Tensor,
               positions: torch.Tensor) -> None:
        """Stack newcomers under the running rows (everything built before anything is assigned, so a failure
        leaves the running batch as it was); rows that finished in their prefill then leave like any other."""
        if self.rows:
            width = max(mask.shape[1], self.attention_mask.shape[1])

            def pad(t: torch.Tensor, dim: int) -> torch.Tensor:  # zeros on the left of dimension ``dim`` up to ``width``
                shape = list(t.shape)
                shape[dim] = width - t.shape[dim]
                return torch.cat([t.new_zeros(shape), t], dim=dim)

            stacked = [(torch.cat([pad(old.keys, 2), pad(new.keys, 2)]), torch.cat([pad(old.values, 2), pad(new.values, 2)]))
                       for old, new in zip(self.cache.layers, cache.layers)]
            mask = torch.cat([pad(self.attention_mask, 1), pad(mask, 1)])
            positions = torch.cat([self.positions, positions])
            for layer, (keys, values) in zip(self.cache.layers, stacked):
                layer.keys, layer.values = keys, values
            cache = self.cache
        self.rows, self.pending, self.cache, self.attention_mask, self.positions = (
            self.rows + rows, self.pending + pending, cache, mask, positions)
        self._keep([i for i, row in enumerate(self.rows) if not row.done])


class _Row:
    """One request inside a batch: its sampling generator and the text streamed so far."""

    def __init__(self, request: Request, tokenizer, device: torch.device):
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
            self.finish(cut_off=not is_stop)

    def finish(self, cut_off: bool = False) -> None:
        text = self.tokenizer.decode(self.token_ids, skip_special_tokens=True)
        if text.startswith(self.sent) and len(text) > len(self.sent):
            self.request.send(text[len(self.sent) :])
        if cut_off:
            self.request.send(CUT_OFF)
        self.request.finish()


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


def encode_chat(tokenizer, messages: list[dict], max_new_tokens: int, max_length: int) -> list[int]:
    """Token ids of the chat with the template's assistant prompt, leaving room for ``max_new_tokens`` within
    ``max_length``: the oldest turns after a system prompt are dropped to fit, and a single huge message is cut
    from the left. Every engine builds its prompts here, so all of them see the same one."""
    messages = list(messages)
    while True:
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        first = 1 if messages and messages[0]["role"] == "system" else 0
        if len(ids) + max_new_tokens <= max_length or len(messages) - first <= 1:
            return ids[-max(max_length - max_new_tokens, 1) :]
        del messages[first]


def model_version(path: Path) -> str:
    """A stable name for the weights in ``path``: the folder name and a short hash of its config and weights'
    *content*, so the same model prepared twice, or on two machines, gets the same name (several servers on one
    store must agree on it). Hashing is done once per file state: the result is cached under ``ORGANIC_HOME``,
    keyed by the files' sizes and modification times, and a cache miss only costs reading the weights again.

    A ``VERSION`` file in the folder, if present, is the name instead: ``organic train`` writes the name it
    registered the model version under, so the server stores replies under that same name.
    """
    version_file = path / "VERSION"
    if version_file.is_file():
        return version_file.read_text().strip()
    return content_version(path)


def content_version(path: Path) -> str:
    """``<folder name>@<hash of config and weights>``, whatever the ``VERSION`` file says (see ``model_version``):
    caches of derived files (CTranslate2 conversions) are keyed by it, so two runs that reuse a name never share
    one another's weights."""
    files = [path / "config.json", *sorted(path.glob("*.safetensors")), *sorted(path.glob("*.bin"))]
    stamp = ";".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    cache = get_settings().home / "cache" / "model-versions.json"
    key = str(path.resolve())
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if known.get(key, {}).get("stamp") == stamp:
        return known[key]["version"]
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode() + b"\0")
        with f.open("rb") as stream:
            while chunk := stream.read(1 << 22):
                digest.update(chunk)
    version = f"{path.name}@{digest.hexdigest()[:8]}"
    try:  # written aside and renamed: a reader never sees half a file; a lost race only costs a rehash
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({**known, key: {"stamp": stamp, "version": version}}))
        tmp.replace(cache)
    except OSError:
        pass
    return version