"""Generation with CTranslate2, the fast CPU engine (int8 weights, fused kernels), behind the same interface.

    backend = CT2Backend(folder, home)                       # `organic serve --backend ct2`
    replies = generate_replies_ct2(folder, contexts, settings)   # offline, like ``batch.generate_replies``

Conversion: CTranslate2 reads its own format, so each model folder is converted once with its
``TransformersConverter`` into ``<home>/ct2/<model version>/<compute type>/`` and loaded from there ever after.
The conversion is written into a temporary folder beside it and renamed, so two processes converting at once
never leave half a model (the second keeps the first one's). Compute types: ``int8`` (default on CPU) or
``float32``; on a GPU ``float16`` (default) or ``int8_float16``.

How concurrent users share the engine: CTranslate2 cannot add a row to a batch that is already decoding, so
requests are batched in windows. ``inter_threads`` workers each take everything waiting (up to ``max_batch``
requests with the same sampling settings) and decode it as one ``generate_batch``, streaming every row's
tokens through its callback; requests that arrive meanwhile form the next batch. A row stops at its own
``max_new_tokens``, end of turn, or when its listener goes away. Measured on SmolLM2 in int8 on 2 shared cores,
users sending their next message as soon as their reply is in: these windows gave 91 tokens/s at 8 users
against 33 for one ``generate_batch`` per request side by side on the engine's workers, and 32 against 28 at 1
user. Threads (``bench/serve.py --part model --sweep``, same machine): 2 workers of 1 thread each served 8 users
at 71 tokens/s, against 45 for 1 worker of 2 threads and 55 for 2 workers of 2; at 1 user all three were within
noise (26, 28, 24). Hence the default: 2 workers sharing the cores. A batch forwards its prompts at once only up to the shortest one; the rest of longer prompts is fed a
token per step, so prompts of very different lengths cost some speed in one batch.

Seeds: CTranslate2 seeds each of its worker threads' random generator once, from a process-wide seed, the
first time that thread samples; a running engine cannot be re-seeded. A request with a ``seed`` therefore gets
an engine of its own, started after setting the seed and used for that request alone (loading it costs
about 0.7 s for SmolLM2 in int8): the same seed gives the same reply.

This module must not download anything, and it imports ``ctranslate2`` only when used, so that everything
else works without the package.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from organic.generate.base import CUT_OFF, Backend, GenerationError, GenerationSettings, Reply
from organic.generate.loading import model_loading, written_aside
from organic.generate.queued import Queued, Request
from organic.generate.transformers_backend import CANDIDATES, content_version, encode_chat, model_version
from organic.settings import get_settings

console = Console(stderr=True)
CPU_COMPUTE_TYPES = ("int8", "float32")
CUDA_COMPUTE_TYPES = ("float16", "int8_float16", "float32", "int8")
_SEED_LOCK = threading.Lock()  # the process-wide seed is set, then read by a fresh engine's threads: one at a time


def import_ctranslate2():
    """The ``ctranslate2`` module, or a one-line error saying what to do."""
    try:
        import ctranslate2
    except ImportError as error:
        raise ValueError(f"backend 'ct2' needs the ctranslate2 package, which failed to import ({error}); install it "
                         "with `pip install ctranslate2==4.8.5`, or serve with `--backend transformers`") from None
    return ctranslate2


def default_device() -> str:
    return "cuda" if import_ctranslate2().get_cuda_device_count() > 0 else "cpu"


def thread_counts(inter_threads: int, intra_threads: int) -> tuple[int, int]:
    """(workers, threads per worker); 0 threads per worker shares this machine's cores among the workers."""
    inter_threads = max(1, inter_threads)
    return inter_threads, intra_threads or max(1, (os.cpu_count() or 1) // inter_threads)


def default_compute_type(device: str) -> str:
    return "float16" if device == "cuda" else "int8"  # on CPU int8 is 1.7-2.1x float32 (bench/serve.py --part model)


def converted_model(folder: Path | str, home: Path | str, compute_type: str = "int8") -> Path:
    """The CTranslate2 folder of the model in ``folder`` with weights in ``compute_type``, converted on first use
    into ``<home>/ct2/<content version>/<compute type>/`` (about 20 s for SmolLM2), keyed by the weights' content
    (``content_version``), not by a registered name that another run may reuse."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"model folder {folder} has no config.json; run `organic model prepare` first")
    version = re.sub(r"[^\w.@+-]", "_", content_version(folder))  # a folder name may hold characters a path cannot
    target = Path(home) / "ct2" / version / compute_type
    if (target / "model.bin").is_file():
        return target
    import_ctranslate2()
    from ctranslate2.converters import TransformersConverter

    start = time.perf_counter()
    try:
        with written_aside(target, "model.bin") as tmp, \
                console.status(f"Converting {folder.name} for CTranslate2 ({compute_type}; once, about half a minute)..."):
            with model_loading():  # the converter loads the model with transformers: one load at a time
                TransformersConverter(str(folder)).convert(str(tmp), quantization=compute_type, force=True)
    except Exception as error:
        reason = next(iter(str(error).splitlines()), "")  # one line: transformers' errors go on about upgrading
        raise ValueError(f"could not convert {folder} for CTranslate2 ({type(error).__name__}: {reason}); "
                         "`--backend transformers` serves it without conversion") from error
    console.print(f"Converted {folder.name} for CTranslate2 ({compute_type}) into {target} in "
                  f"{time.perf_counter() - start:.0f} s")
    return target


def samples(settings: GenerationSettings) -> bool:
    """Whether the settings sample (otherwise: greedy, and the seed does not matter)."""
    return settings.do_sample and settings.temperature > 0 and settings.top_p > 0


def sampling_options(settings: GenerationSettings) -> dict:
    """``generate_batch`` arguments for the settings' sampling: greedy, or temperature + nucleus (top-p) among the
    ``CANDIDATES`` most likely tokens (where the nucleus nearly always lies; 30-40% faster than sorting all 49k of
    SmolLM2's vocabulary at every step)."""
    if samples(settings):
        return {"sampling_topk": CANDIDATES, "sampling_topp": settings.top_p, "sampling_temperature": settings.temperature}
    return {"sampling_topk": 1}


class _Engine:
    """A model converted for CTranslate2, its tokenizer and end-of-turn ids; ``load()`` starts a generator on it."""

    def __init__(self, folder: Path | str, home: Path | str, compute_type: str | None, device: str | None,
                 inter_threads: int = 2, intra_threads: int = 0):
        from transformers import AutoConfig, AutoTokenizer, GenerationConfig

        self.ctranslate2 = import_ctranslate2()
        self.path = Path(folder)
        if not (self.path / "config.json").is_file():
            raise FileNotFoundError(f"model folder {self.path} has no config.json; run `organic model prepare` first")
        self.device = device or default_device()
        self.compute_type = compute_type or default_compute_type(self.device)
        supported = CUDA_COMPUTE_TYPES if self.device == "cuda" else CPU_COMPUTE_TYPES
        if self.compute_type not in supported:
            raise ValueError(f"compute type {self.compute_type!r} is not one for {self.device}; use one of "
                             f"{', '.join(supported)} (ORGANIC_CT2_COMPUTE_TYPE)")
        self.ct2_path = converted_model(self.path, home, self.compute_type)
        self.inter_threads, self.intra_threads = thread_counts(inter_threads, intra_threads)
        self.model_version = model_version(self.path)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        config = AutoConfig.from_pretrained(self.path)
        try:
            eos = GenerationConfig.from_pretrained(self.path).eos_token_id
        except OSError:  # no generation_config.json: transformers falls back to the model's config too
            eos = config.eos_token_id
        self.stop_ids = {*(eos if isinstance(eos, list) else [eos]), self.tokenizer.eos_token_id} - {None}
        self.max_length = config.max_position_embeddings  # prompt + reply must fit the positions

    def load(self, inter_threads: int | None = None):
        """A generator with ``inter_threads`` workers (default: the engine's) of ``intra_threads`` threads each."""
        try:
            return self.ctranslate2.Generator(
                str(self.ct2_path), device=self.device, compute_type=self.compute_type,
                inter_threads=inter_threads or self.inter_threads, intra_threads=self.intra_threads)
        except (RuntimeError, ValueError) as error:
            raise ValueError(f"CTranslate2 could not load {self.ct2_path} ({error}); delete that folder to convert "
                             "again, or serve with `--backend transformers`") from error

    def seeded(self, seed: int):
        """A fresh generator whose one worker thread samples from ``seed`` (hold ``_SEED_LOCK`` until it sampled)."""
        self.ctranslate2.set_random_seed(seed)
        return self.load(inter_threads=1)

    def options(self, settings: GenerationSettings, max_new_tokens: int) -> dict:
        return {"max_length": max_new_tokens, "include_prompt_in_result": False, "end_token": sorted(self.stop_ids),
                **sampling_options(settings)}


@dataclass(eq=False)
class _Request(Request):
    generated: int = 0

    @property
    def seeded(self) -> bool:
        """Whether this request needs an engine of its own (see the module's docstring)."""
        return self.settings.seed is not None and samples(self.settings)

    @property
    def key(self) -> tuple:
        """Requests with equal keys can share a ``generate_batch`` call (it takes one set of sampling options)."""
        return tuple(sorted(sampling_options(self.settings).items()))


class CT2Backend(Queued, Backend):
    """Serves the model in ``model_path`` with CTranslate2, batching concurrent requests in windows."""

    request_type = _Request

    def __init__(self, model_path: str | Path, home: str | Path, *, compute_type: str | None = None,
                 device: str | None = None, inter_threads: int = 2, intra_threads: int = 0, max_batch: int = 8,
                 batch_window: float = 0.02):
        self.engine = _Engine(model_path, home, compute_type, device, inter_threads, intra_threads)
        self.generator = self.engine.load()
        self.path = self.engine.path
        self.model_version = self.engine.model_version
        self.name = f"ct2-{self.engine.compute_type}"  # recorded with every reply: the engine and its weights' type
        self.tokenizer = self.engine.tokenizer  # encodes prompts and decodes replies, on the consumers' threads
        self.max_batch = max_batch  # most requests decoded together
        self.batch_window = batch_window  # when idle, seconds to wait after a first request for others to join it
        self.batches = 0  # generate_batch calls; requests_served / batches is the mean batch
        self.requests_served = 0
        self._waiting: deque[_Request] = deque()
        self._ready = threading.Condition()
        self._closing = False
        self._workers: list[threading.Thread] = []
        self._tokenizer_lock = threading.Lock()  # a fast tokenizer used from two threads at once can fail

    async def stream(self, messages: list[dict], settings: GenerationSettings) -> AsyncIterator[str]:
        token_ids: list[int] = []
        sent = ""  # text already streamed
        async with self._items(messages, settings) as items:
            async for token_id in items:
                token_ids.append(token_id)
                with self._tokenizer_lock:
                    text = self.tokenizer.decode(token_ids, skip_special_tokens=True)
                # hold back a half-decoded character (a multi-byte UTF-8 sequence cut between tokens)
                if not text.endswith("\ufffd") and text.startswith(sent) and len(text) > len(sent):
                    yield text[len(sent) :]
                    sent = text
        if settings.max_new_tokens == 0:
            return
        with self._tokenizer_lock:
            text = self.tokenizer.decode(token_ids, skip_special_tokens=True)
        if text.startswith(sent) and len(text) > len(sent):
            yield text[len(sent) :]
        if len(token_ids) >= settings.max_new_tokens:  # stop tokens are never kept: it ran out of room
            yield CUT_OFF

    def _prompt(self, messages: list[dict], settings: GenerationSettings) -> list[str]:
        with self._tokenizer_lock:
            ids = encode_chat(self.tokenizer, messages, settings.max_new_tokens, self.engine.max_length)
            return self.tokenizer.convert_ids_to_tokens(ids)  # CTranslate2 takes tokens, not ids

    def close(self) -> None:
        """Stop the workers once the batches in flight are done (requests still waiting get ``GenerationError``)."""
        with self._ready:
            self._closing = True
            self._ready.notify_all()
            workers, self._workers = self._workers, []
        for worker in workers:
            worker.join()
        with self._ready:
            for request in self._waiting:
                request.finish(GenerationError("the backend was closed"))
            self._waiting.clear()
            self._closing = False

    def _submit(self, request: _Request) -> None:
        with self._ready:
            if self._closing:
                request.finish(GenerationError("the backend was closed"))
                return
            if not self._workers:
                self._workers = [threading.Thread(target=self._work, name=f"organic-ct2-{self.path.name}-{i}", daemon=True)
                                 for i in range(self.engine.inter_threads)]
                for worker in self._workers:
                    worker.start()
            self._waiting.append(request)
            self._ready.notify_all()

    def _take(self, after_batch: bool) -> list[_Request] | None:
        """The next batch: the oldest waiting request and the others with its sampling settings (up to
        ``max_batch``). A worker that was idle waits ``batch_window`` after the first request, so that requests
        arriving together share one call; one coming from a batch takes what waited meanwhile at once. None once
        closing."""
        with self._ready:
            while True:
                idle = not after_batch
                while not self._closing and not any(not r.cancelled for r in self._waiting):
                    self._waiting.clear()
                    self._ready.wait()
                    idle = True
                if self._closing:
                    return None
                if idle and self.batch_window > 0:
                    deadline = time.monotonic() + self.batch_window
                    while not self._closing and len(self._waiting) < self.max_batch and (left := deadline - time.monotonic()) > 0:
                        self._ready.wait(left)
                live = [r for r in self._waiting if not r.cancelled]
                if not live:
                    after_batch = False
                    continue
                first = live[0]
                batch = [first] if first.seeded else [r for r in live if r.key == first.key and not r.seeded][: self.max_batch]
                taken = set(map(id, batch))
                self._waiting = deque(r for r in live if id(r) not in taken)
                return batch

    def _work(self) -> None:
        after_batch = False
        while (batch := self._take(after_batch)) is not None:
            try:
                self._decode(batch)
            except Exception as e:  # the worker survives a crash; every row of the batch hears about it
                for request in batch:
                    request.finish(e)
            for request in batch:  # a row the engine ended without a last step (all its listeners gone) ends here
                request.finish()
            after_batch = True

    def _decode(self, batch: list[_Request]) -> None:
        self.batches += 1
        self.requests_served += len(batch)
        options = self.engine.options(batch[0].settings, max(r.settings.max_new_tokens for r in batch))
        prompts, on_step = [r.prompt for r in batch], _streamer(batch, frozenset(self.engine.stop_ids))
        if not batch[0].seeded:
            self.generator.generate_batch(prompts, callback=on_step, **options)
            return
        with _SEED_LOCK:  # held until the new engine's thread has sampled, and so seeded its random generator
            self.engine.seeded(batch[0].settings.seed).generate_batch(prompts, callback=on_step, **options)


def _streamer(batch: list[_Request], stop_ids: frozenset[int]) -> Callable:
    """The ``generate_batch`` callback that streams each row's tokens to its request and stops finished rows.

    It must not reach the backend: CTranslate2 may drop the callback on its own worker thread after the call,
    and if that dropped the last reference to the generator, the generator would join its own thread and abort
    the process ("Resource deadlock avoided")."""

    def on_step(step) -> bool:  # on CTranslate2's thread, for every new token of every row; True stops the row
        request = batch[step.batch_id]
        if request.finished or request.cancelled:
            return True
        if step.token_id not in stop_ids:
            request.generated += 1
            request.send(step.token_id)
        if step.is_last or step.token_id in stop_ids or request.generated >= request.settings.max_new_tokens:
            request.finish()
            return True
        return False

    return on_step


def generate_replies_ct2(folder: Path | str, contexts: Sequence[Sequence[dict]], settings: GenerationSettings | None = None,
                         *, batch_size: int = 8, compute_type: str | None = None, progress: Callable[[int], None] | None = None,
                         home: Path | str | None = None, device: str | None = None,
                         intra_threads: int = 0) -> list[Reply]:
    """One reply per context from the model in ``folder`` through CTranslate2, as ``batch.generate_replies`` does
    with transformers: ``Reply(text, tokens, cut)`` in the order of ``contexts``. Sampling follows ``settings``;
    its ``seed`` (default 0) seeds the whole run, so the same weights, compute type and batch size give the same
    replies. The converted model is cached under ``home`` (default: ``ORGANIC_HOME``)."""
    settings = settings or GenerationSettings()
    if settings.max_new_tokens == 0:
        return [Reply("", 0, False) for _ in contexts]
    engine = _Engine(folder, home or get_settings().home, compute_type, device, inter_threads=1, intra_threads=intra_threads)
    with _SEED_LOCK:  # the whole run: its one worker thread seeds its random generator at its first sample
        generator = engine.seeded(settings.seed or 0)
        prompts = [encode_chat(engine.tokenizer, list(c), settings.max_new_tokens, engine.max_length) for c in contexts]
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths share a batch
        options = {**engine.options(settings, settings.max_new_tokens), "return_end_token": True}
        out: dict[int, Reply] = {}
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            results = generator.generate_batch([engine.tokenizer.convert_ids_to_tokens(prompts[i]) for i in chunk], **options)
            for i, result in zip(chunk, results):
                row = result.sequences_ids[0]
                ended = next((j for j, t in enumerate(row) if t in engine.stop_ids), None)
                kept = row if ended is None else row[:ended]
                out[i] = Reply(engine.tokenizer.decode(kept, skip_special_tokens=True).strip(), len(kept), ended is None)
            if progress:
                progress(len(chunk))
    return [out[i] for i in range(len(contexts))]
