"""Offline batch work with a causal LM folder: answer many contexts, score many replies.

What learning, evaluation, the judge and the labelled-set builder do with a model outside the server:
``generate_replies`` (batched, left-padded sampling with ``GenerationSettings``, on transformers or CTranslate2) and
``reply_likelihoods`` / ``reply_nll`` (the likelihood of given replies in their contexts). Models are loaded by
``generate.loading``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from organic.generate.base import GenerationSettings, Reply
from organic.generate.loading import load_causal_lm

ENGINES = ("transformers", "ct2-int8", "ct2-float32")  # offline generation engines; ct2 converts the folder once


def generate_replies(folder: Path | str, contexts: Sequence[Sequence[dict]], settings: GenerationSettings | None = None,
                     *, batch_size: int = 8, progress: Callable[[int], None] | None = None, model=None,
                     engine: str = "transformers") -> list[Reply]:
    """One reply per context from the model in ``folder`` (or the already loaded ``(model, tokenizer)`` pair given
    as ``model``), batched and left-padded. Sampling follows ``settings``; its ``seed`` (default 0) seeds the whole
    run, so the same weights give the same replies. ``engine`` ``ct2-int8`` or ``ct2-float32`` generates through
    CTranslate2 instead (``generate/ct2_backend.py``), several times faster on a CPU."""
    import torch

    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of: {', '.join(ENGINES)}")
    if engine != "transformers":
        from organic.generate.ct2_backend import generate_replies_ct2

        return generate_replies_ct2(folder, contexts, settings, batch_size=batch_size, compute_type=engine.removeprefix("ct2-"),
                                    progress=progress)
    settings = settings or GenerationSettings()
    model, tokenizer = model or load_causal_lm(folder, padding_side="left")
    tokenizer.padding_side = "left"
    torch.manual_seed(settings.seed or 0)
    sampling = dict(do_sample=True, temperature=settings.temperature, top_p=settings.top_p) \
        if settings.do_sample and settings.temperature > 0 else dict(do_sample=False)
    eos = model.generation_config.eos_token_id
    stops = {tokenizer.eos_token_id, *(eos if isinstance(eos, list) else [eos])} - {None}
    out: list[Reply] = []
    for start in range(0, len(contexts), batch_size):
        chats = [tokenizer.apply_chat_template(list(c), add_generation_prompt=True, tokenize=False)
                 for c in contexts[start : start + batch_size]]
        batch = tokenizer(chats, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        with torch.no_grad():
            generated = model.generate(**batch, max_new_tokens=settings.max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                       top_k=None, **sampling)
        for row in generated[:, batch["input_ids"].shape[1]:].tolist():
            ended = next((i for i, t in enumerate(row) if t in stops), None)
            kept = row if ended is None else row[:ended]
            out.append(Reply(tokenizer.decode(kept, skip_special_tokens=True).strip(), len(kept), ended is None))
        if progress:
            progress(len(chats))
    return out


class Likelihood(NamedTuple):
    nll: float  # summed negative log-likelihood (nats) of the reply's tokens and the closing end of turn
    tokens: int  # how many tokens that is (end of turn included)
    end_nll: float  # of the end of turn alone: high when the model would not stop there (a reply cut off)
    worst: float  # of the least likely reply token
    state: list[float] | None = None  # the mean hidden state over the reply's tokens at ``state_layer``, when asked


def reply_likelihoods(folder: Path | str | None, contexts: Sequence[Sequence[dict]], replies: Sequence[str], *,
                      batch_size: int = 8, max_length: int = 512, model=None, state_layer: int | None = None) -> list[Likelihood]:
    """How likely each reply is after its context under the model in ``folder`` (or the loaded ``(model,
    tokenizer)`` pair ``model``). The context goes through the chat template and is masked, so only reply tokens
    count; past ``max_length`` the oldest context goes. An empty context scores the reply after an empty user turn
    (chat templates need a message), which is how likely the reply is on its own. With ``state_layer`` (0: the
    embeddings, 1..n: after that decoder layer), each result also carries the model's hidden state there averaged
    over the reply's tokens: how the model itself reads the reply in its context, from the same pass."""
    import torch

    from organic.examples import IGNORE_INDEX, tokenize_example

    model, tokenizer = model or load_causal_lm(folder)
    rows = [tokenize_example(tokenizer, list(c) or [{"role": "user", "content": ""}], r, -1, max_length)
            for c, r in zip(contexts, replies)]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["input_ids"]))  # similar lengths share a batch
    out: dict[int, Likelihood] = {}
    for start in range(0, len(order), batch_size):
        batch = [rows[i] for i in order[start : start + batch_size]]
        width = max(len(r["input_ids"]) for r in batch)
        ids = torch.tensor([r["input_ids"] + [tokenizer.pad_token_id] * (width - len(r["input_ids"])) for r in batch])
        labels = torch.tensor([r["labels"] + [IGNORE_INDEX] * (width - len(r["labels"])) for r in batch])
        mask = torch.tensor([[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in batch])
        with torch.no_grad():
            result = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                           output_hidden_states=state_layer is not None)
        logits = result.logits[:, :-1].float()
        targets = labels[:, 1:].to(logits.device)  # token t is predicted from the logits at t - 1
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, ignore_index=IGNORE_INDEX, reduction="none")
        reply_tokens = labels != IGNORE_INDEX  # the positions that hold the reply and its end of turn
        for j, (i, row, counted) in enumerate(zip(order[start : start + batch_size], nll, (targets != IGNORE_INDEX))):
            n = int(counted.sum())
            last = int(counted.nonzero().max()) if n else 0  # the end of turn closes every reply
            state = None
            if state_layer is not None and reply_tokens[j].any():
                state = result.hidden_states[state_layer][j][reply_tokens[j].to(logits.device)].float().mean(0).tolist()
            out[i] = Likelihood(float(row.sum()), n, float(row[last]), float(row[counted][:-1].max()) if n > 1 else 0.0, state)
    return [out[i] for i in range(len(rows))]


def reply_nll(folder: Path | str | None, contexts: Sequence[Sequence[dict]], replies: Sequence[str], *, batch_size: int = 8,
              max_length: int = 512, model=None) -> list[tuple[float, int]]:
    """For each reply, the summed negative log-likelihood (nats) of its tokens and the closing end of turn given
    its context, and how many tokens that is (see ``reply_likelihoods``)."""
    return [(s.nll, s.tokens) for s in reply_likelihoods(folder, contexts, replies, batch_size=batch_size,
                                                         max_length=max_length, model=model)]
