"""Load on a real uvicorn server (`organic serve` in its own process) over HTTP.

    python bench/serve.py --part echo     # 1, 16, 64 concurrent clients chatting and rating; SQLite and PostgreSQL
    python bench/serve.py --part model    # the bundled SmolLM2: server tokens/s for 1 and 8 users vs plain generate
    python bench/serve.py                 # both

Echo part: each client accepts the terms, starts a conversation and sends messages (replies streamed as
server-sent events), rating every second reply. Prints requests/s, p50 / p99 latency, and the number of
acknowledged messages and ratings against the rows found in the store afterwards (zero lost is the goal).
Model part: the same prompts through the server (1 user, then 8 at once, batched by the backend) and
through the model's own `generate` in this process (1 prompt, then a batch of 8), same sampling settings;
the server's overhead is plain tokens/s divided by server tokens/s (target <= 1.10).
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


async def chat_client(http: httpx.AsyncClient, turns: int, latencies: list[float], counts: dict, prompt_of=None) -> None:
    token = (await http.post("/api/session", json=CONSENT)).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    cid = (await http.post("/api/conversations", headers=headers)).json()["id"]
    for turn in range(turns):
        started = time.perf_counter()
        prompt = prompt_of(turn) if prompt_of else f"message {turn}: how was your day?"
        async with http.stream("POST", f"/api/conversations/{cid}/messages", json={"text": prompt}, headers=headers) as r:
            r.raise_for_status()
            reply, text_ = await read_reply(r)
        latencies.append(time.perf_counter() - started)
        counts["messages"] += 2
        counts.setdefault("replies", []).append(text_)
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


def run_clients(base: str, clients: int, turns: int, prompt_of=None) -> tuple[float, list[float], dict]:
    latencies: list[float] = []
    counts = {"messages": 0, "ratings": 0}

    async def main():
        limits = httpx.Limits(max_connections=clients + 4)
        async with httpx.AsyncClient(base_url=base, timeout=600, limits=limits) as http:
            await asyncio.gather(*(chat_client(http, turns, latencies, counts, prompt_of) for _ in range(clients)))

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


def model_part(home: Path, replies: int) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from organic.generate import prepare_model
    from organic.settings import Settings

    settings = Settings(home=home)
    folder = prepare_model(settings.model, Path(os.environ.get("ORGANIC_MODEL_CACHE", Path.home() / ".organic")))
    tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    new_tokens = settings.max_new_tokens

    def plain(prompts: list[str]) -> tuple[int, float]:
        chats = [tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
                 for p in prompts]
        batch = tokenizer(chats, return_tensors="pt", padding=True, add_special_tokens=False)
        started = time.perf_counter()
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=new_tokens, do_sample=True, temperature=0.7, top_p=0.9,
                                 pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        took = time.perf_counter() - started
        generated = out[:, batch["input_ids"].shape[1]:]
        tokens = sum(len(tokenizer(tokenizer.decode(row, skip_special_tokens=True), add_special_tokens=False).input_ids)
                     for row in generated)
        return tokens, took

    def served(base: str, users: int) -> tuple[int, float]:
        took, _, counts = run_clients(base, users, replies, prompt_of=lambda turn: PROMPTS[turn % len(PROMPTS)])
        tokens = sum(len(tokenizer(t, add_special_tokens=False).input_ids) for t in counts["replies"])
        return tokens, took

    plain([PROMPTS[0]])  # warm-up
    results = {}
    for users in (1, 8):
        tokens = took = 0.0
        for turn in range(replies):
            n, t = plain([PROMPTS[(turn + i) % len(PROMPTS)] for i in range(users)])
            tokens, took = tokens + n, took + t
        results[("plain", users)] = tokens / took
    results.update(backend_alone(folder, tokenizer, new_tokens, replies))
    with tempfile.TemporaryDirectory() as tmp:
        with server(f"sqlite:///{tmp}/bench.db", home, "--model", str(folder)) as base:
            served(base, 1)  # warm-up
            for users in (1, 8):
                tokens, took = served(base, users)
                results[("server", users)] = tokens / took
    for users in (1, 8):
        p, b, s = results[("plain", users)], results[("backend", users)], results[("server", users)]
        print(f"SmolLM2-135M, {users} user(s): plain generate {p:6.1f} tokens/s, backend alone {b:6.1f} ({p / b:.2f}x), "
              f"server {s:6.1f} tokens/s, overhead {p / s:.2f}x (target <= 1.10)")


def backend_alone(folder: Path, tokenizer, new_tokens: int, replies: int) -> dict:
    """The same users against ``TransformersBackend`` in this process: what batching costs without HTTP,
    safety checks and the store."""
    from organic.generate import GenerationSettings, TransformersBackend

    backend = TransformersBackend(folder)
    settings = GenerationSettings(max_new_tokens=new_tokens)

    async def user(i: int, lengths: list[int]) -> None:
        for turn in range(replies):
            text = await backend.generate([{"role": "user", "content": PROMPTS[(i + turn) % len(PROMPTS)]}], settings)
            lengths.append(len(tokenizer(text, add_special_tokens=False).input_ids))

    async def run(users: int) -> float:
        lengths: list[int] = []
        started = time.perf_counter()
        await asyncio.gather(*(user(i, lengths) for i in range(users)))
        return sum(lengths) / (time.perf_counter() - started)

    asyncio.run(run(1))  # warm-up
    out = {("backend", users): asyncio.run(run(users)) for users in (1, 8)}
    backend.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["echo", "model", "all"], default="all")
    parser.add_argument("--turns", type=int, default=10, help="messages per client in the echo part")
    parser.add_argument("--replies", type=int, default=3, help="replies per user in the model part")
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
            model_part(home, args.replies)


if __name__ == "__main__":
    main()
