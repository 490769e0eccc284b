"""CT2Backend and generate_replies_ct2 on a tiny random Llama: the same greedy text as transformers, conversion
cached and safe to race, clear errors, per-request settings and batching, and the backend behind the HTTP API."""

import asyncio
import json
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session

from organic.generate import CT2Backend, GenerationError, GenerationSettings, generate_replies_ct2, make_backend
from organic.generate.base import CUT_OFF
from organic.generate.batch import generate_replies
from organic.generate.loading import load_causal_lm
from organic.generate.ct2_backend import converted_model
from organic.settings import Settings
from organic.store import Message
from scripted_chat import session

GREEDY = GenerationSettings(do_sample=False, max_new_tokens=12)
CHATS = [[{"role": "user", "content": "Hello there"}],
         [{"role": "user", "content": "What is the capital of Australia? Tell me more about it, please."}],
         [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
          {"role": "user", "content": "Tell me a joke."}]]


@pytest.fixture(scope="module")
def ct2_home(tmp_path_factory):
    return tmp_path_factory.mktemp("ct2-home")


@pytest.fixture(scope="module")
def backend(tiny_model_dir, ct2_home):
    backend = CT2Backend(tiny_model_dir, ct2_home, compute_type="float32", intra_threads=1, batch_window=0.2)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def batching_backend(tiny_model_dir, ct2_home):
    """Batches of exactly four: the window is long and ends when four requests wait, so batching is not timing."""
    backend = CT2Backend(tiny_model_dir, ct2_home, compute_type="float32", intra_threads=1, max_batch=4, batch_window=60)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def transformers_model(tiny_model_dir):
    return load_causal_lm(tiny_model_dir, "cpu", padding_side="left")


def reference(model_and_tokenizer, chat, max_new_tokens):
    """transformers' own greedy ``generate`` for one chat alone, decoded as the backends do."""
    model, tokenizer = model_and_tokenizer
    text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


async def collect(backend, chat, settings):
    return [delta async for delta in backend.stream(chat, settings)]


def test_greedy_float32_equals_transformers(backend, transformers_model):
    for chat in CHATS:
        deltas = asyncio.run(collect(backend, chat, GREEDY))
        assert len(deltas) > 1  # streamed token by token, not in one piece
        assert "".join(deltas) == reference(transformers_model, chat, GREEDY.max_new_tokens)
    assert backend.name == "ct2-float32" and backend.model_version.startswith(backend.path.name + "@")


def test_a_reply_stopped_by_its_token_limit_ends_with_cut_off(backend, monkeypatch):
    settings = GenerationSettings(do_sample=False, max_new_tokens=6)
    deltas = asyncio.run(collect(backend, CHATS[0], settings))
    assert deltas[-1] is CUT_OFF and sum(d is CUT_OFF for d in deltas) == 1
    first = backend.tokenizer(deltas[0], add_special_tokens=False)["input_ids"][0]
    monkeypatch.setattr(backend.engine, "stop_ids", backend.engine.stop_ids | {first})  # it ends its turn at once
    assert not any(d is CUT_OFF for d in asyncio.run(collect(backend, CHATS[0], settings)))


def test_offline_replies_equal_transformers_batch_replies(tiny_model_dir, ct2_home, transformers_model):
    settings = GenerationSettings(do_sample=False, max_new_tokens=10)
    seen = []
    ours = generate_replies_ct2(tiny_model_dir, CHATS, settings, batch_size=2, compute_type="float32", home=ct2_home,
                                progress=seen.append)
    assert ours == generate_replies(tiny_model_dir, CHATS, settings, batch_size=2, model=transformers_model)
    assert sum(seen) == len(CHATS) and all(reply.cut and reply.tokens == 10 for reply in ours)


def test_offline_sampling_is_reproducible_with_its_seed(tiny_model_dir, ct2_home):
    settings = GenerationSettings(max_new_tokens=8, temperature=1.5, top_p=1.0, seed=3)
    first = generate_replies_ct2(tiny_model_dir, CHATS, settings, compute_type="float32", home=ct2_home)
    assert generate_replies_ct2(tiny_model_dir, CHATS, settings, compute_type="float32", home=ct2_home) == first


def test_a_seeded_request_gives_the_same_reply_again(backend):
    settings = GenerationSettings(max_new_tokens=10, temperature=1.5, top_p=1.0, seed=11)
    first = asyncio.run(backend.generate(CHATS[0], settings))
    assert first and asyncio.run(backend.generate(CHATS[0], settings)) == first


def test_concurrent_requests_share_a_batch_each_with_its_own_length(batching_backend, transformers_model):
    async def main():
        return await asyncio.gather(*(batching_backend.generate(CHATS[i % 3], GenerationSettings(do_sample=False, max_new_tokens=n))
                                      for i, n in enumerate((3, 12, 7, 12))))

    before = batching_backend.batches
    replies = asyncio.run(main())
    assert batching_backend.batches == before + 1
    assert replies == [reference(transformers_model, CHATS[i % 3], n) for i, n in enumerate((3, 12, 7, 12))]


def test_different_sampling_settings_go_in_different_batches(batching_backend):
    sampled = GenerationSettings(max_new_tokens=4, temperature=0.9, top_p=0.95)

    async def main():
        return await asyncio.gather(*(batching_backend.generate(CHATS[0], s) for s in (GREEDY, sampled, GREEDY, sampled)))

    before = batching_backend.batches
    replies = asyncio.run(main())
    assert batching_backend.batches == before + 2 and replies[0] == replies[2] and all(replies)


def test_an_abandoned_stream_does_not_stop_the_next_one(backend):
    async def first_delta_only():
        stream = backend.stream(CHATS[1], GenerationSettings(do_sample=False, max_new_tokens=64))
        delta = await anext(stream)
        await stream.aclose()
        return delta

    assert asyncio.run(first_delta_only())
    assert asyncio.run(backend.generate(CHATS[0], GREEDY))


class BrokenEngine:
    def generate_batch(self, *args, **kwargs):
        raise RuntimeError("simulated engine failure")


def test_an_engine_crash_is_a_generation_error_and_the_backend_recovers(backend, monkeypatch):
    monkeypatch.setattr(backend, "generator", BrokenEngine())
    with pytest.raises(GenerationError, match="simulated engine failure"):
        asyncio.run(backend.generate(CHATS[0], GREEDY))
    monkeypatch.undo()
    assert asyncio.run(backend.generate(CHATS[0], GREEDY))


def test_a_closed_backend_starts_again_on_the_next_request(tiny_model_dir, ct2_home):
    backend = CT2Backend(tiny_model_dir, ct2_home, compute_type="float32", intra_threads=1, batch_window=0)
    first = asyncio.run(backend.generate(CHATS[0], GREEDY))
    backend.close()
    assert asyncio.run(backend.generate(CHATS[0], GREEDY)) == first
    backend.close()


# conversion and errors --------------------------------------------------------------------------------------
def test_conversion_is_cached(tiny_model_dir, tmp_path, monkeypatch):
    import ctranslate2.converters

    folder = converted_model(tiny_model_dir, tmp_path, "float32")
    assert (folder / "model.bin").is_file() and folder.parent.parent == tmp_path / "ct2"

    class Refused:
        def __init__(self, *args, **kwargs):
            raise AssertionError("converted a second time")

    monkeypatch.setattr(ctranslate2.converters, "TransformersConverter", Refused)
    assert converted_model(tiny_model_dir, tmp_path, "float32") == folder
    with pytest.raises(ValueError, match="AssertionError: converted a second time"):  # another compute type converts
        converted_model(tiny_model_dir, tmp_path, "int8")


def test_two_conversions_at_once_keep_one_folder(tiny_model_dir, tmp_path):
    with ThreadPoolExecutor(2) as pool:
        folders = list(pool.map(lambda _: converted_model(tiny_model_dir, tmp_path, "int8"), range(2)))
    assert folders[0] == folders[1] and (folders[0] / "model.bin").is_file()
    assert [p.name for p in folders[0].parent.iterdir()] == ["int8"]  # no temporary folder left behind


def test_missing_package_says_what_to_do(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # `import ctranslate2` now raises ImportError
    with pytest.raises(ValueError, match=r"needs the ctranslate2 package.*`--backend transformers`"):
        make_backend(Settings(backend="ct2", model=str(tiny_model_dir)), tmp_path)


def test_a_model_that_cannot_be_converted_says_what_to_do(tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    with pytest.raises(ValueError, match=r"could not convert .*odd for CTranslate2.*`--backend transformers`"):
        CT2Backend(folder, tmp_path)


def test_compute_types(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="compute type 'float16' is not one for cpu; use one of int8, float32"):
        CT2Backend(tiny_model_dir, tmp_path, compute_type="float16", device="cpu")
    backend = make_backend(Settings(backend="ct2", model=str(tiny_model_dir), ct2_intra_threads=1), tmp_path)
    assert backend.name == "ct2-int8"  # the default on a CPU
    assert asyncio.run(backend.generate(CHATS[0], GenerationSettings(max_new_tokens=5)))
    backend.close()


# through the HTTP API -------------------------------------------------------------------------------------
def stored(store_engine, reply_id) -> Message:
    with Session(store_engine) as s:
        return s.scalar(select(Message).where(Message.external_id == reply_id))


def test_the_web_chat_streams_ct2_replies_and_stores_them(make_client, store_engine, backend):
    client = make_client([backend])
    session(client)
    cid = client.post("/api/conversations").json()["id"]
    response = client.post(f"/api/conversations/{cid}/messages", json={"text": "Hello, how are you?"})
    events = [(block.split("\n")[0][7:], json.loads(block.split("\n")[1][6:])) for block in response.text.strip().split("\n\n")]
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "human" and kinds[-1] == "done"
    reply = events[-1][1]
    assert reply["model_version"] == backend.model_version and not reply["from_model_crash"]
    if not reply["is_safety_controlled_response"]:  # random weights may say anything, even what safety replaces
        assert "".join(data["text"] for kind, data in events if kind == "delta").strip() == reply["text"]
    message = stored(store_engine, reply["id"])
    assert message.traces["backend"] == "ct2-float32" and "first_token_s" in message.timings
    assert message.generation == GenerationSettings().to_json()  # the server's defaults: sampled, no seed


def test_sampling_settings_of_a_request_are_used_and_stored(make_client, store_engine, backend, transformers_model):
    client = make_client([backend])
    session(client)
    chat = [{"role": "user", "content": "Hello there"}]
    body = {"model": "organic", "messages": chat, "temperature": 0, "max_tokens": 9, "stream": True}
    response = client.post("/v1/chat/completions", json=body)
    chunks = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    greedy = stored(store_engine, chunks[0]["id"])
    assert greedy.generation == {"max_new_tokens": 9, "temperature": 0.0, "top_p": 0.9, "do_sample": False, "seed": None}
    assert not greedy.is_safety_controlled_response  # greedy: always the same text, which safety lets through
    assert streamed.strip() == greedy.text == reference(transformers_model, chat, 9).strip()

    body = {"model": "organic", "messages": chat, "temperature": 1.3, "top_p": 0.8, "seed": 5, "max_tokens": 6}
    first, again = (client.post("/v1/chat/completions", json=body).json() for _ in range(2))
    sampled = stored(store_engine, first["id"])
    assert sampled.generation == {"max_new_tokens": 6, "temperature": 1.3, "top_p": 0.8, "do_sample": True, "seed": 5}
    assert first["choices"][0]["message"]["content"] == again["choices"][0]["message"]["content"]  # seeded


def test_an_engine_crash_gives_the_canned_reply(make_client, backend, monkeypatch):
    monkeypatch.setattr(backend, "generator", BrokenEngine())
    client = make_client([backend])
    session(client)
    cid = client.post("/api/conversations").json()["id"]
    reply = client.post(f"/api/conversations/{cid}/messages?stream=false", json={"text": "Hello?"}).json()["reply"]
    assert reply["from_model_crash"] and reply["previous_interaction_failure"] == "unsafe_model_crash"
    assert reply["is_safety_controlled_response"] and reply["text"]
