import asyncio

from organic.generate import EchoBackend, GenerationSettings
from organic.generate.base import CUT_OFF


def chat(text):
    return [{"role": "system", "content": "be nice"}, {"role": "user", "content": text}]


async def collect(backend, messages, settings):
    return [delta async for delta in backend.stream(messages, settings)]


def test_echo_is_deterministic_and_streams_words():
    backend = EchoBackend()
    settings = GenerationSettings()
    deltas = asyncio.run(collect(backend, chat("I like green tea"), settings))
    assert len(deltas) > 3 and "".join(deltas).endswith("I like green tea")
    assert asyncio.run(backend.generate(chat("I like green tea"), settings)) == "".join(deltas)
    assert asyncio.run(backend.generate(chat("I like green tea"), settings)) == EchoBackend.reply(chat("I like green tea"))
    openers = {EchoBackend.reply(chat(f"message {i}")).split(":")[0] for i in range(20)}
    assert len(openers) > 1  # the hash varies the opener between messages
    assert backend.name == "echo" and backend.model_version == "echo"


def test_echo_respects_max_new_tokens_and_empty_chat():
    backend = EchoBackend()
    assert asyncio.run(backend.generate(chat("one two three four five"), GenerationSettings(max_new_tokens=3))).count(" ") == 2
    assert asyncio.run(backend.generate([], GenerationSettings())) == "Hi! What would you like to talk about?"
    cut = asyncio.run(collect(backend, chat("one two three four five"), GenerationSettings(max_new_tokens=3)))
    whole = asyncio.run(collect(backend, chat("one two"), GenerationSettings()))
    assert cut[-1] is CUT_OFF and not any(d is CUT_OFF for d in whole)


def test_settings_to_json():
    assert GenerationSettings(seed=3).to_json() == {"max_new_tokens": 64, "temperature": 0.7, "top_p": 0.9, "do_sample": True, "seed": 3}
