"""Load on a real uvicorn server (`organic serve` in its own process) over HTTP.

    python bench/serve.py --part echo     # 1, 16, 64 concurrent clients chatting and rating; SQLite and PostgreSQL
    python bench/serve.py --part model    # the bundled SmolLM2: server tokens/s for 1 and 8 users vs plain generate
    python bench/serve.py                 # both

Echo part: each client accepts the terms, starts a conversation and sends messages (replies streamed as
server-sent events), rating every second reply. Prints requests/s, p50 / p99 latency, and the number of
acknowledged messages and ratings against the rows found in the store afterwards (zero lost is the goal).
Model part: 1 user, then 8 at once, continue their conversations through the model's own `generate` in this
process (the users' chats as one batch per reply) and through the server (each user sending their next
message as soon as their reply is in); same sampling settings, the two ways taking turns every few replies.
The server's overhead is plain tokens/s divided by server tokens/s (target <= 1.10).
PostgreSQL comes from ORGANIC_TEST_POSTGRES_URL (an admin URL; a scratch database is made and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from organic.store.models import Feedback, Message

CONSENT = {"age_confirmed": True, "accept_terms": True, "save_conversations": True}
PROMPTS = [
    "Hi! What is your favourite food?", "Do you like to travel? Where would you go?",
    "I just adopted a puppy. Any tips?", "What's a good book to read this summer?",
    "I'm learning to play the guitar.", "What do you think about rainy days?",
    "Can you recommend a movie for tonight?", "I ran my first 10k race today!",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(database_url: str, home: Path, *args: str):
    port = free_port()
    env = {**os.environ, "ORGANIC_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "organic.cli", "serve", "--port", str(port),
                             "--database-url", database_url, *args], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                httpx.get(base + "/openapi.json", timeout=2)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


@contextmanager
def scratch_postgres(admin: str):
    url = make_url(admin)
    name = f"organic_bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))


async def read_reply(response: httpx.Response) -> tuple[dict, str]:
    """(the stored reply, its text) from a streamed answer."""
    reply, event = None, None
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == "done":
            reply = json.loads(line[6:])
    return reply, reply["text"]


async def chat_client(http: httpx.AsyncClient, turns: int, latencies: list[float], counts: dict) -> None:
    token = (await http.post("/api/session", json=CONSENT)).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    cid = (await http.post("/api/conversations", headers=headers)).json()["id"]
    for turn in range(turns):
        started = time.perf_counter()
        async with http.stream("POST", f"/api/conversations/{cid}/messages",
                               json={"text": f"message {turn}: how was your day?"}, headers=headers) as r:
            r.raise_for_status()
            reply, _ = await read_reply(r)
        latencies.append(time.perf_counter() - started)
        counts["messages"] += 2
        if turn % 2 == 1:
            started = time.perf_counter()
            r = await http.put(f"/api/messages/{reply['id']}/rating", json={"thumb": "up" if turn % 4 == 1 else "down",
                                                                         "reason": None if turn % 4 == 1 else "other"},
                               headers=headers)
            r.raise_for_status()
            latencies.append(time.perf_counter() - started)
            counts["ratings"] += 1
            counts["messages"] += r.json()["follow_up"] is not None  # the bot's "what should I have said?"
    counts["requests"] = counts.get("requests", 0) + 3 + turns + turns // 2


def run_clients(base: str, clients: int, turns: int) -> tuple[float, list[float], dict]:
    latencies: list[float] = []
    counts = {"messages": 0, "ratings": 0}

    async def main():
        limits = httpx.Limits(max_connections=clients + 4)
        async with httpx.AsyncClient(base_url=base, timeout=600, limits=limits) as http:
            await asyncio.gather(*(chat_client(http, turns, latencies, counts) for _ in range(clients)))

    started = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - started, latencies, counts


def echo_part(database_url: str, label: str, home: Path, turns: int) -> None:
    with server(database_url, home, "--backend", "echo") as base:
        total = {"messages": 0, "ratings": 0}
        for clients in (1, 16, 64):
            took, latencies, counts = run_clients(base, clients, turns)
            latencies.sort()
            p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
            print(f"{label} echo, {clients:2d} clients: {counts['requests'] / took:7.1f} requests/s, "
                  f"p50 {statistics.median(latencies) * 1000:6.1f} ms, p99 {p99 * 1000:7.1f} ms "
                  f"({counts['messages']} messages, {counts['ratings']} ratings acknowledged)")
            total["messages"] += counts["messages"]
            total["ratings"] += counts["ratings"]
    engine = create_engine(database_url)
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(Message)).scalar_one()
        rated = conn.execute(select(func.count()).select_from(Feedback)).scalar_one()
    engine.dispose()
    print(f"{label} echo: acknowledged {total['messages']} messages / {total['ratings']} ratings, "
          f"stored {stored} / {rated}: {total['messages'] - stored} messages and {total['ratings'] - rated} ratings lost")


def model_part(home: Path, replies: int, phase: int) -> None:
    """Plain ``generate`` and the server on the same conversations, taking turns phase by phase.

    Each user continues one conversation (``PROMPTS`` in turn), each way keeping its own histories (its own
    replies), so the prompts grow alike. Plain ``generate`` decodes the users' chats as one batch per reply
    (all users in lockstep: its best case). Through the server every user sends their next message as soon
    as their reply is in, independently of the others, as real users do; the server has to batch requests
    that arrive at different times. The two ways alternate every ``phase`` replies, so that a slower or
    faster stretch of this shared machine falls on both.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from organic.generate import prepare_model
    from organic.settings import Settings

    settings = Settings(home=home)
    folder = prepare_model(settings.model, Path(os.environ.get("ORGANIC_MODEL_CACHE", Path.home() / ".organic")))
    tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    new_tokens, temperature, top_p = settings.max_new_tokens, 0.7, 0.9  # the server's defaults (GenerationSettings)

    def count(text_: str) -> int:
        return len(tokenizer(text_.strip(), add_special_tokens=False).input_ids)

    def plain(chats: list[list[dict]]) -> list[str]:
        texts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in chats]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**batch, max_new_tokens=new_tokens, do_sample=True, temperature=temperature, top_p=top_p,
                                 pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        return [tokenizer.decode(row, skip_special_tokens=True).strip() for row in out[:, batch["input_ids"].shape[1]:]]

    async def open_conversation(http: httpx.AsyncClient) -> tuple[str, dict]:
        headers = {"Authorization": f"Bearer {(await http.post('/api/session', json=CONSENT)).json()['token']}"}
        return (await http.post("/api/conversations", headers=headers)).json()["id"], headers

    async def say(http: httpx.AsyncClient, conversation: tuple[str, dict], message: str) -> str:
        cid, headers = conversation
        async with http.stream("POST", f"/api/conversations/{cid}/messages", json={"text": message}, headers=headers) as r:
            r.raise_for_status()
            reply, text_ = await read_reply(r)
        canned[0] += reply["is_safety_controlled_response"]  # its tokens are counted as if generated: reported below
        return text_

    totals = {(way, users): [0, 0.0] for way in ("plain", "server") for users in (1, 8)}  # tokens, seconds
    canned = [0]  # server replies the safety layer replaced
    histories = {users: [[] for _ in range(users)] for users in (1, 8)}  # plain's chats (the server keeps its own)

    def message(user: int, reply: int) -> str:
        return PROMPTS[(user + reply) % len(PROMPTS)]

    async def run(base: str) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=600, limits=httpx.Limits(max_connections=16)) as http:
            conversations = {users: [await open_conversation(http) for _ in range(users)] for users in (1, 8)}
            await say(http, await open_conversation(http), PROMPTS[0])  # warm-up

            async def user(users: int, i: int, first: int) -> int:
                tokens = 0
                for reply in range(first, min(first + phase, replies)):
                    tokens += count(await say(http, conversations[users][i], message(i, reply)))
                return tokens

            for first in range(0, replies, phase):
                for users in (1, 8):
                    started = time.perf_counter()  # plain: the phase's replies, one batch each
                    for reply in range(first, min(first + phase, replies)):
                        chats = histories[users]
                        for i, chat in enumerate(chats):
                            chat.append({"role": "user", "content": message(i, reply)})
                        for chat, text_ in zip(chats, plain(chats)):  # blocking on purpose: nothing else runs here
                            chat.append({"role": "assistant", "content": text_})
                            totals["plain", users][0] += count(text_)
                    totals["plain", users][1] += time.perf_counter() - started
                    started = time.perf_counter()  # server: every user on their own
                    tokens = await asyncio.gather(*(user(users, i, first) for i in range(users)))
                    totals["server", users][0] += sum(tokens)
                    totals["server", users][1] += time.perf_counter() - started

    plain([[{"role": "user", "content": PROMPTS[0]}]])  # warm-up
    with tempfile.TemporaryDirectory() as tmp, server(f"sqlite:///{tmp}/bench.db", home, "--model", str(folder)) as base:
        asyncio.run(run(base))
    for users in (1, 8):
        p, s = (totals[way, users][0] / totals[way, users][1] for way in ("plain", "server"))
        print(f"SmolLM2-135M, {users} user(s), {replies} replies each: plain generate {p:6.1f} tokens/s, "
              f"server {s:6.1f} tokens/s, overhead {p / s:.2f}x (target <= 1.10)")
    print(f"server replies replaced by a canned safety reply: {canned[0]} of {9 * replies + 1}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["echo", "model", "all"], default="all")
    parser.add_argument("--turns", type=int, default=10, help="messages per client in the echo part")
    parser.add_argument("--replies", type=int, default=8, help="replies per user in the model part")
    parser.add_argument("--phase", type=int, default=4, help="replies per user before the model part switches ways")
    parser.add_argument("--postgres-url", default=os.environ.get("ORGANIC_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        if args.part in ("echo", "all"):
            echo_part(f"sqlite:///{home / 'echo.db'}", "sqlite", home, args.turns)
            if args.postgres_url:
                with scratch_postgres(args.postgres_url) as url:
                    echo_part(url, "postgresql", home, args.turns)
            else:
                print("postgresql: skipped (set ORGANIC_TEST_POSTGRES_URL)")
        if args.part in ("model", "all"):
            model_part(home, args.replies, args.phase)


if __name__ == "__main__":
    main()
