"""TransformersBackend on a tiny random Llama: streaming, batching of concurrent requests, per-row settings, crashes."""

import asyncio
import contextlib
import time

import pytest
import torch

from organic.generate import GenerationError, GenerationSettings, TransformersBackend, model_version
from organic.generate.base import CUT_OFF

GREEDY = GenerationSettings(do_sample=False)


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    backend = TransformersBackend(tiny_model_dir, batch_window=0.2)  # a wide window: the shared test CPU can be slow
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def sliding_backend(tiny_model_dir, tmp_path_factory):
    """A tiny Mistral whose sliding window (4 tokens) is shorter than every prompt."""
    from transformers import AutoTokenizer, MistralConfig, MistralForCausalLM

    folder = tmp_path_factory.mktemp("tiny-mistral")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    MistralForCausalLM(MistralConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, sliding_window=4, max_position_embeddings=512, tie_word_embeddings=True,
        initializer_range=0.5, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )).save_pretrained(folder)
    backend = TransformersBackend(folder)
    yield backend
    backend.close()


@contextlib.contextmanager
def recording(backend):
    """(batch size, last-position logits) of every forward call of the backend's model meanwhile."""
    calls = []

    def record(module, args, kwargs, output):
        calls.append((kwargs["input_ids"].shape[0], output.logits[:, -1].clone()))

    handle = backend.model.register_forward_hook(record, with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()


@pytest.fixture
def forward_calls(backend):
    with recording(backend) as calls:
        yield calls


def chat(text):
    return [{"role": "user", "content": text}]


async def collect(backend, messages, settings):
    return [delta async for delta in backend.stream(messages, settings)]


def reference(backend, messages, max_new_tokens):
    """The token ids transformers' own greedy ``generate`` writes for one prompt alone."""
    ids = torch.tensor([backend.encode(messages, max_new_tokens)])
    with torch.inference_mode():
        out = backend.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False)
    return out[0, ids.shape[1] :].tolist()


def decode(backend, ids):
    return backend.tokenizer.decode(ids, skip_special_tokens=True)


def test_streams_text_in_several_deltas(backend):
    deltas = asyncio.run(collect(backend, chat("Tell me a story"), GenerationSettings(max_new_tokens=12, seed=0)))
    assert len(deltas) >= 3 and all(d for d in deltas if d is not CUT_OFF)
    assert "".join(deltas).strip()


def test_a_reply_stopped_by_its_token_limit_ends_with_cut_off(backend, monkeypatch):
    messages = chat("Tell me a story")
    ids = reference(backend, messages, 6)
    assert len(ids) == 6 and not set(ids) & backend.stop_ids  # the tiny model runs on to the limit
    deltas = asyncio.run(collect(backend, messages, GenerationSettings(max_new_tokens=6, do_sample=False)))
    assert deltas[-1] is CUT_OFF and sum(d is CUT_OFF for d in deltas) == 1
    monkeypatch.setattr(backend, "stop_ids", backend.stop_ids | {ids[2]})  # now it ends its turn by itself
    deltas = asyncio.run(collect(backend, messages, GenerationSettings(max_new_tokens=6, do_sample=False)))
    assert deltas and not any(d is CUT_OFF for d in deltas)


def test_concurrent_requests_share_batches_and_match_generate(backend, forward_calls):
    lengths = [3, 5, 7, 9]
    prompts = [chat(f"Hello number {i}, how are you?" + " really" * i) for i in range(4)]  # different lengths: left padding

    async def main():
        return await asyncio.gather(*(backend.generate(p, GenerationSettings(max_new_tokens=n, do_sample=False)) for p, n in zip(prompts, lengths)))

    prefills_before = backend.prefills
    replies = asyncio.run(main())
    calls = list(forward_calls)
    assert backend.prefills - prefills_before == 1
    # one prefill for all four, then one step per token, finished rows leaving the batch: not one run per request
    running = [[row for row, n in enumerate(lengths) if n > step] for step in range(max(lengths))]
    assert [size for size, _ in calls] == [len(rows) for rows in running]

    for row, (messages, n, reply) in enumerate(zip(prompts, lengths, replies)):
        expected = reference(backend, messages, n)
        assert len(expected) == n  # the tiny model never emits its end token here: every reply has its full length
        assert reply == decode(backend, expected)
        # the logits behind the row's last token equal those of the row run alone: padding and cache are right
        alone = torch.tensor([backend.encode(messages, n) + expected[:-1]])
        with torch.inference_mode():
            batched = calls[n - 1][1][running[n - 1].index(row)]
            torch.testing.assert_close(batched, backend.model(input_ids=alone).logits[0, -1], atol=1e-4, rtol=1e-4)


LONG_PROMPT, SHORT_PROMPT = chat("Tell me about your weekend please, " * 3), chat("Hi")


@pytest.mark.parametrize("short", [8, 1], ids=["joins", "done-in-prefill"])
@pytest.mark.parametrize("model", ["backend", "sliding_backend"], ids=["llama", "mistral-sliding-window"])
@pytest.mark.parametrize("first, second", [(LONG_PROMPT, SHORT_PROMPT), (SHORT_PROMPT, LONG_PROMPT)],
                         ids=["newcomer-padded", "running-padded"])
def test_a_request_joins_rows_already_decoding(request, model, first, second, short):
    """A request arriving mid-reply joins the running batch at the next step, and neither reply changes.

    Either side may need left padding to line the caches up; once the newcomer leaves, padding that no
    remaining row needs is cut away, and the longer reply goes on unchanged. A sliding-window model gives
    the same replies as its own ``generate``. A newcomer that is done after its prefill (one token) never
    joins, and leaves no padding behind."""
    backend = request.getfixturevalue(model)
    long = 30

    lone_masks = []  # attention masks of steps that decode one row

    def hold_until_queued(module, args, kwargs):  # the first decoding step waits until the second request is queued
        if kwargs["input_ids"].shape == (1, 1):
            lone_masks.append(kwargs["attention_mask"])
        if len(forward_calls) == 1:
            deadline = time.monotonic() + 60
            while backend._requests.empty() and time.monotonic() < deadline:
                time.sleep(0.001)

    async def main():
        stream = backend.stream(first, GenerationSettings(max_new_tokens=long, do_sample=False))
        head = await anext(stream)  # the first reply is decoding before the second request is made
        late = asyncio.create_task(backend.generate(second, GenerationSettings(max_new_tokens=short, do_sample=False)))
        return head + "".join([d async for d in stream]), await late

    handle = backend.model.register_forward_pre_hook(hold_until_queued, with_kwargs=True)
    try:
        with recording(backend) as forward_calls:
            reply_first, reply_second = asyncio.run(main())
    finally:
        handle.remove()
    sizes = [size for size, _ in forward_calls]
    # the first prompt's prefill and one step alone, the newcomer's own prefill, both together until the short one ends
    assert sizes == [1, 1, 1] + [2] * (short - 1) + [1] * (long - 1 - short)
    assert all(bool(mask.all()) for mask in lone_masks)  # no padding is kept once only one row is left
    assert reply_first == decode(backend, reference(backend, first, long))
    expected = reference(backend, second, short)
    assert reply_second == decode(backend, expected)
    alone = torch.tensor([backend.encode(second, short) + expected[:-1]])
    with torch.inference_mode():  # the newcomer's last logits, computed beside the longer row, equal its own alone
        last = forward_calls[2 + short - 1][1][1 if short > 1 else 0]  # beside the longer row, or its own prefill
        torch.testing.assert_close(last, backend.model(input_ids=alone).logits[0, -1], atol=1e-4, rtol=1e-4)


def test_rows_keep_their_own_settings(backend):
    greedy, prompt = chat("What is your favourite colour?"), chat("Say something random")
    sampled = GenerationSettings(max_new_tokens=8, temperature=1.5, top_p=1.0, seed=123)

    async def main():
        return await asyncio.gather(backend.generate(greedy, GenerationSettings(max_new_tokens=6, do_sample=False)), backend.generate(prompt, sampled))

    first_greedy, first_sampled = asyncio.run(main())
    second_greedy, second_sampled = asyncio.run(main())
    assert first_greedy == second_greedy == decode(backend, reference(backend, greedy, 6))  # sampling beside it does not disturb greedy
    assert first_sampled == second_sampled  # a seed makes a sampled reply reproducible
    other_seed = asyncio.run(backend.generate(prompt, GenerationSettings(max_new_tokens=8, temperature=1.5, top_p=1.0, seed=7)))
    assert other_seed != first_sampled


def test_crash_raises_generation_error_and_worker_survives(backend, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(backend.model, "forward", boom)
    with pytest.raises(GenerationError, match="out of memory"):
        asyncio.run(backend.generate(chat("hi"), GREEDY))
    monkeypatch.undo()
    assert asyncio.run(backend.generate(chat("hi"), GenerationSettings(max_new_tokens=4, do_sample=False)))


def test_consumer_can_stop_early(backend):
    async def main():
        async with contextlib.aclosing(backend.stream(chat("go on and on"), GenerationSettings(max_new_tokens=200, seed=1))) as stream:
            async for delta in stream:
                return delta

    assert asyncio.run(main())
    assert asyncio.run(backend.generate(chat("still there?"), GenerationSettings(max_new_tokens=3, do_sample=False)))


def test_zero_new_tokens_and_invalid_settings(backend):
    assert asyncio.run(backend.generate(chat("hi"), GenerationSettings(max_new_tokens=0))) == ""
    with pytest.raises(ValueError, match="top_p"):
        GenerationSettings(top_p=1.5)


def test_long_chats_drop_oldest_turns(backend):
    history = [{"role": "system", "content": "You are kind."}]
    for i in range(40):
        history += [{"role": "user", "content": f"message {i} " + "blah " * 20}, {"role": "assistant", "content": "ok"}]
    history.append({"role": "user", "content": "the last question"})
    ids = backend.encode(history, max_new_tokens=64)
    assert len(ids) + 64 <= backend.max_length
    text = backend.tokenizer.decode(ids)
    assert "You are kind." in text and "the last question" in text and "message 0 " not in text


def test_model_version_is_stable(tiny_model_dir, backend, tmp_path):
    assert backend.model_version == model_version(tiny_model_dir)
    assert backend.model_version.startswith(f"{tiny_model_dir.name}@")
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "VERSION").write_text("cringe-3\n")
    assert model_version(tmp_path) == "cringe-3"  # the name `organic train` registered


def test_model_version_comes_from_content_not_file_times(tiny_model_dir, tmp_path):
    import os
    import shutil

    copies = []
    for k in range(2):  # the same model, prepared twice: different file times, one name
        copy = tmp_path / f"home{k}" / tiny_model_dir.name
        shutil.copytree(tiny_model_dir, copy)
        for f in copy.iterdir():  # prepared at another time
            os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + (k + 1) * 10**9))
        copies.append(copy)
    assert model_version(copies[0]) == model_version(copies[1]) == model_version(tiny_model_dir)
    weights = next(copies[1].glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of the weights changed: a different model
    weights.write_bytes(bytes(data))
    assert model_version(copies[1]) != model_version(copies[0])


def test_missing_folder_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no config.json; run `organic model prepare` first"):
        TransformersBackend(tmp_path)


def test_next_tokens_per_row_settings():
    from organic.generate.transformers_backend import next_tokens

    probs = torch.tensor([0.05, 0.5, 0.15, 0.3])  # nucleus at top_p=0.7: tokens 1 and 3
    logits = probs.log().repeat(3, 1)
    settings = [GREEDY, GenerationSettings(temperature=1.0, top_p=0.7), GenerationSettings(temperature=1.0, top_p=1.0)]
    generator = torch.Generator().manual_seed(0)
    draws = [next_tokens(logits, settings, [None, generator, generator]) for _ in range(400)]
    assert {d[0] for d in draws} == {1}  # greedy
    nucleus = [d[1] for d in draws]
    assert set(nucleus) == {1, 3} and 0.5 < nucleus.count(1) / 400 < 0.75  # renormalised: 0.5 / 0.8 = 0.625
    assert set(d[2] for d in draws) == {0, 1, 2, 3}  # top_p = 1 samples the whole distribution
    first = next_tokens(logits, settings, [None, torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)])
    assert first == next_tokens(logits, settings, [None, torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)])
