"""Load on a real uvicorn server (`organic serve` in its own process) over HTTP.

    python bench/serve.py --part echo     # 1, 16, 64 concurrent clients chatting and rating; SQLite and PostgreSQL
    python bench/serve.py --part mixed    # 64 unsaved + 64 saved users, 1,000 ratings on one reply, a kill -9
    python bench/serve.py --part model    # the bundled SmolLM2: server tokens/s for 1 and 8 users vs plain engines
    python bench/serve.py --part model --sweep --replies 4 --phase 2    # and the ct2 thread settings
    python bench/serve.py                 # both

Echo part: each client accepts the terms, starts a conversation and sends messages (replies streamed as
server-sent events), rating every second reply. Prints requests/s, p50 / p99 latency, and the number of
acknowledged messages and ratings against the rows found in the store afterwards (zero lost is the goal).
Mixed part (echo backend, SQLite and PostgreSQL): 64 users who do not save and 64 who do chat and rate at once
(server errors and lost writes counted, 0 the goal); 1,000 parallel ratings, up and down, on one reply (0 errors,
one rating row and at most one follow-up question); 32 users chatting when the server gets a kill -9 (0
acknowledged messages or ratings lost).
Model part: 1 user, then 8 at once, continue their conversations through each engine called directly in this
process (transformers `generate`, CTranslate2 `generate_batch` in int8 and float32; the users' chats as one
batch per reply) and through a server on each (`--backend transformers`, `--backend ct2` int8 and float32;
each user sending their next message as soon as their reply is in); same sampling settings, the ways taking
turns every few replies. A server's overhead is its plain engine's tokens/s divided by its own (target <= 1.10);
ct2 int8 against transformers: at least 2x at 1 user and 1.7x at 8 (issue 12). `--sweep` adds ct2 int8
servers with other inter/intra threads and plain int8 with other intra threads.
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
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import create_engine, func, select

from organic.store.db import scratch_postgres
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
def server(database_url: str, home: Path, *args: str, env: dict | None = None):
    with server_process(database_url, home, *args, env=env) as (base, _):
        yield base


@contextmanager
def server_process(database_url: str, home: Path, *args: str, env: dict | None = None):
    """``organic serve`` in its own process on ``database_url``: (its URL, the process). The port is probed free and
    bound by the server a moment later; a server that exits before answering (another process took the port in
    between) is started again on another port."""
    # every generated token counts, as for the plain engines: no trimming of cut-off replies to whole sentences
    # and all the load comes from one address: no limit on new sessions
    env = {**os.environ, "ORGANIC_HOME": str(home), "HF_HUB_OFFLINE": "1", "ORGANIC_TRIM_CUT_OFF": "0",
           "ORGANIC_SESSIONS_PER_MINUTE": "1000000", **(env or {})}
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "organic.cli", "serve", "--port", str(port),
                                 "--database-url", database_url, *args], env=env)
        base = f"http://127.0.0.1:{port}"
        if _answers(base, proc):
            break
    else:
        raise RuntimeError("the server exited before answering, 5 times")
    try:
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(30)


def _answers(base: str, proc: subprocess.Popen) -> bool:
    """Whether the server at ``base`` answers before its process exits (10 minutes at most: a model may load)."""
    deadline = time.monotonic() + 600
    while True:
        try:
            httpx.get(base + "/openapi.json", timeout=2)
            return True
        except httpx.HTTPError:
            if proc.poll() is not None:
                return False
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("the server did not start in 10 minutes") from None
            time.sleep(0.5)


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


# mixed load: unsaved and saved users, a rating storm, a kill -9 ------------------------------------------
async def mixed_client(http: httpx.AsyncClient, save: bool, turns: int, tally: dict, acked: list | None = None) -> None:
    """One user (saving their conversation or not) chatting and rating the model's replies, down then up in turn
    (after a thumbs down their next message answers "what should I have said?"). A refused request (4xx), a
    server error (5xx) or a dropped connection is counted in ``tally`` and ends the user's session; ``acked``
    collects (message id, thumb or None) for each write the server acknowledged."""

    def failed(r: httpx.Response) -> bool:
        tally["requests"] += 1
        if not r.is_success:
            tally["errors" if r.status_code >= 500 else "refused"] += 1
        return not r.is_success

    try:
        session = await http.post("/api/session", json={**CONSENT, "save_conversations": save})
        if failed(session):
            return
        headers = {"Authorization": f"Bearer {session.json()['token']}"}
        started = await http.post("/api/conversations", headers=headers)
        if failed(started):
            return
        rated = 0
        for turn in range(turns):
            r = await http.post(f"/api/conversations/{started.json()['id']}/messages?stream=false",
                                json={"text": f"message {turn}: how was your day?"}, headers=headers)
            if failed(r):
                return
            reply = r.json()["reply"]
            if acked is not None:
                acked += [(r.json()["human"]["id"], None), (reply["id"], None)]
            if reply["module"] is not None:  # the thanks for an answer to "what should I have said?"
                continue
            thumb, rated = ("down", "up")[rated % 2], rated + 1
            r = await http.put(f"/api/messages/{reply['id']}/rating", headers=headers,
                               json={"thumb": thumb, "reason": None if thumb == "up" else "other"})
            if failed(r):
                return
            if acked is not None:
                acked.append((reply["id"], thumb))
    except httpx.TransportError:
        tally["dropped"] += 1


async def rating_storm(http: httpx.AsyncClient, n: int) -> tuple[str, dict[int, int]]:
    """``n`` parallel ratings, up and down, on one reply of one saved user: (its id, how many answers had each
    status)."""
    headers = {"Authorization": f"Bearer {(await http.post('/api/session', json=CONSENT)).json()['token']}"}
    cid = (await http.post("/api/conversations", headers=headers)).json()["id"]
    reply = (await http.post(f"/api/conversations/{cid}/messages?stream=false", json={"text": "hi"}, headers=headers)).json()["reply"]
    statuses: dict[int, int] = {}

    async def rate(i: int) -> None:
        thumb = "up" if i % 2 else "down"
        r = await http.put(f"/api/messages/{reply['id']}/rating", headers=headers,
                           json={"thumb": thumb, "reason": None if thumb == "up" else "other"})
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

    await asyncio.gather(*(rate(i) for i in range(n)))
    return reply["id"], statuses


def stored(database_url: str, acked: list[tuple[str, str | None]]) -> tuple[int, int]:
    """Of the acknowledged writes ``acked`` ((message id, None) for a message, (message id, thumb) for a rating),
    how many messages and ratings the store lacks."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            ids = {i for i, _ in acked}
            found = set(conn.execute(select(Message.external_id).where(Message.external_id.in_(ids))).scalars())
            thumbs = dict(conn.execute(select(Message.external_id, Feedback.thumb).join(Feedback, Feedback.message_id == Message.id)
                                       .where(Message.external_id.in_(ids))).all())
    finally:
        engine.dispose()
    last: dict[str, str] = {}
    for i, thumb in acked:
        if thumb is not None:
            last[i] = thumb  # each client rates a reply once; the latest acknowledged thumb is what must be there
    return (sum(i not in found for i, thumb in acked if thumb is None),
            sum(thumbs.get(i) != thumb for i, thumb in last.items()))


def kill_mid_load(database_url: str, home: Path, clients: int, turns: int, after: int) -> dict:
    """``clients`` saved users chat and rate; once ``after`` writes are acknowledged the server gets a kill -9.
    Returns the acknowledged writes and how many of them the store lacks (after the kill, with no restart)."""
    acked: list[tuple[str, str | None]] = []
    tally = {"requests": 0, "errors": 0, "refused": 0, "dropped": 0}
    with server_process(database_url, home, "--backend", "echo") as (base, proc):
        async def main():
            async with httpx.AsyncClient(base_url=base, timeout=60, limits=httpx.Limits(max_connections=clients + 4)) as http:
                load = asyncio.gather(*(mixed_client(http, True, turns, tally, acked) for _ in range(clients)))
                while len(acked) < after and not load.done():
                    await asyncio.sleep(0.01)
                proc.kill()  # SIGKILL: no shutdown, no flush
                await load

        asyncio.run(main())
    lost_messages, lost_ratings = stored(database_url, acked)
    return {"messages": sum(t is None for _, t in acked), "ratings": sum(t is not None for _, t in acked),
            "lost_messages": lost_messages, "lost_ratings": lost_ratings, "dropped": tally["dropped"]}


def mixed_load(database_url: str, home: Path, *, users: int = 64, turns: int = 10, storm: int = 1000) -> dict:
    """``users`` unsaved and ``users`` saved users at once, then ``storm`` parallel ratings on one reply, against
    an echo server: server errors, dropped connections, acknowledged writes of the saved users the store lacks,
    and what the storm left (its statuses, the rating rows of its reply, the follow-up questions after it)."""
    with server(database_url, home, "--backend", "echo") as base:
        async def main():
            tally = {"requests": 0, "errors": 0, "refused": 0, "dropped": 0}
            acked: list = []
            async with httpx.AsyncClient(base_url=base, timeout=600, limits=httpx.Limits(max_connections=2 * users + 4)) as http:
                started = time.perf_counter()
                await asyncio.gather(*(mixed_client(http, save, turns, tally, acked if save else None)
                                       for save in (False, True) for _ in range(users)))
                tally["seconds"] = time.perf_counter() - started
                return tally, acked, await rating_storm(http, storm)

        tally, acked, (reply_id, statuses) = asyncio.run(main())
    lost_messages, lost_ratings = stored(database_url, acked)
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            reply = conn.execute(select(Message.conversation_id, Message.position).where(Message.external_id == reply_id)).one()
            rows = conn.execute(select(Feedback.thumb).join(Message, Feedback.message_id == Message.id)
                                .where(Message.external_id == reply_id)).scalars().all()
            questions = conn.execute(select(func.count()).select_from(Message).where(
                Message.conversation_id == reply.conversation_id, Message.position > reply.position)).scalar_one()
    finally:
        engine.dispose()
    return {**tally, "lost_messages": lost_messages, "lost_ratings": lost_ratings, "storm": statuses,
            "storm_rows": rows, "storm_questions": questions}


def mixed_part(database_url: str, label: str, home: Path, turns: int) -> None:
    """64 unsaved and 64 saved users at once, 1,000 parallel ratings on one reply, and a kill -9 mid-load."""
    m = mixed_load(database_url, home, users=64, turns=turns, storm=1000)
    print(f"{label} mixed: 64 unsaved + 64 saved users, {m['requests']} requests in {m['seconds']:.1f} s: "
          f"{m['errors']} server errors, {m['refused']} refused, {m['dropped']} dropped connections; saved users' "
          f"acknowledged writes lost: {m['lost_messages']} messages, {m['lost_ratings']} ratings")
    print(f"{label} mixed: 1,000 parallel ratings on one reply: statuses {dict(sorted(m['storm'].items()))}; "
          f"{len(m['storm_rows'])} rating row(s) stored ({', '.join(m['storm_rows'])}), {m['storm_questions']} "
          f"follow-up question(s) (one row and at most one question expected)")
    killed = kill_mid_load(database_url, home, 32, turns, after=200)
    print(f"{label} mixed: kill -9 after {killed['messages']} messages and {killed['ratings']} ratings acknowledged "
          f"({killed['dropped']} connections cut): lost {killed['lost_messages']} messages, {killed['lost_ratings']} ratings")


@dataclass
class Way:
    """One way of answering the users: an engine called directly in this process ("plain"), or a server."""

    engine: str  # "transformers", "ct2 int8", ...
    kind: str  # "plain" or "server"
    answer: Callable[[list[list[dict]]], list[str]] | None = None  # plain: the users' chats in, one reply each out
    env: dict = field(default_factory=dict)  # server: its ORGANIC_* settings
    base: str = ""  # server: its URL once started
    conversations: dict = field(default_factory=dict)  # server: users -> [(conversation id, headers)]
    histories: dict = field(default_factory=lambda: {users: [[] for _ in range(users)] for users in USERS})  # plain
    totals: dict = field(default_factory=lambda: {users: [0, 0.0] for users in USERS})  # users -> [tokens, seconds]
    canned: int = 0  # server replies the safety layer replaced (their tokens are counted as if generated)

    def rate(self, users: int) -> float:
        tokens, seconds = self.totals[users]
        return tokens / seconds if seconds else float("nan")


USERS = (1, 8)


def model_part(home: Path, replies: int, phase: int, sweep: bool) -> None:
    """Plain engines and servers on the same conversations, taking turns phase by phase.

    Each user continues one conversation (``PROMPTS`` in turn), each way keeping its own histories (its own
    replies), so the prompts grow alike. Plain ``generate`` (transformers) and ``generate_batch`` (CTranslate2)
    decode the users' chats as one batch per reply (all users in lockstep: their best case). Through a server
    every user sends their next message as soon as their reply is in, independently of the others, as real users
    do; the server has to batch requests that arrive at different times. The ways alternate every ``phase``
    replies, so that a slower or faster stretch of this shared machine falls on all of them.
    With ``sweep``: also the ct2 int8 server with other thread settings, and plain int8 with other intra_threads.
    """
    import ctranslate2
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from organic.generate import prepare_model
    from organic.generate.ct2_backend import converted_model, encode_chat, sampling_options, thread_counts
    from organic.generate.base import GenerationSettings
    from organic.settings import Settings

    settings = Settings(home=home)
    cache = Path(os.environ.get("ORGANIC_MODEL_CACHE", Path.home() / ".organic"))
    folder = prepare_model(settings.model, cache)
    tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    sampling = GenerationSettings(max_new_tokens=settings.max_new_tokens)  # the server's defaults
    max_length = model.config.max_position_embeddings
    stops = sorted({tokenizer.eos_token_id, *([model.generation_config.eos_token_id] if isinstance(
        model.generation_config.eos_token_id, int) else model.generation_config.eos_token_id)} - {None})

    def count(text_: str) -> int:
        return len(tokenizer(text_.strip(), add_special_tokens=False).input_ids)

    def plain_transformers(chats: list[list[dict]]) -> list[str]:
        texts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in chats]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**batch, max_new_tokens=sampling.max_new_tokens, do_sample=True, temperature=sampling.temperature,
                                 top_p=sampling.top_p, pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        return [tokenizer.decode(row, skip_special_tokens=True).strip() for row in out[:, batch["input_ids"].shape[1]:]]

    def plain_ct2(compute_type: str, inter: int, intra: int) -> Callable[[list[list[dict]]], list[str]]:
        generator = ctranslate2.Generator(str(converted_model(folder, cache, compute_type)), compute_type=compute_type,
                                          inter_threads=inter, intra_threads=intra)

        def answer(chats: list[list[dict]]) -> list[str]:
            prompts = [tokenizer.convert_ids_to_tokens(encode_chat(tokenizer, c, sampling.max_new_tokens, max_length)) for c in chats]
            results = generator.generate_batch(prompts, max_length=sampling.max_new_tokens, include_prompt_in_result=False,
                                               end_token=stops, **sampling_options(sampling))
            return [tokenizer.decode(r.sequences_ids[0], skip_special_tokens=True).strip() for r in results]

        return answer

    default = Settings()  # the ct2 thread settings `organic serve --backend ct2` uses
    threads = thread_counts(default.ct2_inter_threads, default.ct2_intra_threads)
    ways = [Way("transformers", "plain", plain_transformers), Way("transformers", "server", env={"ORGANIC_BACKEND": "transformers"})]
    for compute_type in ("int8", "float32"):
        ways += [Way(f"ct2 {compute_type}", "plain", plain_ct2(compute_type, *threads)),
                 Way(f"ct2 {compute_type}", "server", env={"ORGANIC_BACKEND": "ct2", "ORGANIC_CT2_COMPUTE_TYPE": compute_type})]
    if sweep:
        cores = os.cpu_count() or 1
        for inter, intra in sorted({(1, cores), (2, max(1, cores // 2)), (2, cores)} - {threads}):
            ways.append(Way(f"ct2 int8 inter {inter} intra {intra}", "server", env={
                "ORGANIC_BACKEND": "ct2", "ORGANIC_CT2_INTER_THREADS": str(inter), "ORGANIC_CT2_INTRA_THREADS": str(intra)}))
        for intra in sorted({1, cores} - {threads[1]}):
            ways.append(Way(f"ct2 int8 intra {intra}", "plain", plain_ct2("int8", 1, intra)))

    async def open_conversation(http: httpx.AsyncClient) -> tuple[str, dict]:
        headers = {"Authorization": f"Bearer {(await http.post('/api/session', json=CONSENT)).json()['token']}"}
        return (await http.post("/api/conversations", headers=headers)).json()["id"], headers

    async def say(http: httpx.AsyncClient, way: Way, conversation: tuple[str, dict], message: str) -> str:
        cid, headers = conversation
        async with http.stream("POST", f"/api/conversations/{cid}/messages", json={"text": message}, headers=headers) as r:
            r.raise_for_status()
            reply, text_ = await read_reply(r)
        way.canned += reply["is_safety_controlled_response"]
        return text_

    def message(user: int, reply: int) -> str:
        return PROMPTS[(user + reply) % len(PROMPTS)]

    async def server_phase(way: Way, users: int, first: int) -> None:
        async with httpx.AsyncClient(base_url=way.base, timeout=600, limits=httpx.Limits(max_connections=16)) as http:
            if not way.conversations:
                way.conversations = {n: [await open_conversation(http) for _ in range(n)] for n in USERS}
                await say(http, way, await open_conversation(http), PROMPTS[0])  # warm-up

            async def user(i: int) -> int:
                return sum([count(await say(http, way, way.conversations[users][i], message(i, reply)))
                            for reply in range(first, min(first + phase, replies))])

            started = time.perf_counter()
            tokens = await asyncio.gather(*(user(i) for i in range(users)))
            way.totals[users][0] += sum(tokens)
            way.totals[users][1] += time.perf_counter() - started

    def plain_phase(way: Way, users: int, first: int) -> None:
        started = time.perf_counter()
        for reply in range(first, min(first + phase, replies)):
            chats = way.histories[users]
            for i, chat in enumerate(chats):
                chat.append({"role": "user", "content": message(i, reply)})
            for chat, text_ in zip(chats, way.answer(chats)):  # blocking on purpose: nothing else runs here
                chat.append({"role": "assistant", "content": text_})
                way.totals[users][0] += count(text_)
        way.totals[users][1] += time.perf_counter() - started

    for way in ways:
        if way.answer:
            way.answer([[{"role": "user", "content": PROMPTS[0]}]])  # warm-up
        else:  # converted once, in the cache, for every server of this run
            converted_model(folder, cache, way.env.get("ORGANIC_CT2_COMPUTE_TYPE", "int8"))
    (home / "ct2").symlink_to(cache / "ct2", target_is_directory=True)
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as servers:
        for n, way in enumerate(ways):
            if way.kind == "server":
                way.base = servers.enter_context(server(f"sqlite:///{tmp}/bench-{n}.db", home, "--model", str(folder), env=way.env))
        for first in range(0, replies, phase):
            for users in USERS:
                for way in ways:
                    if way.kind == "plain":
                        plain_phase(way, users, first)
                    else:
                        asyncio.run(server_phase(way, users, first))

    def line(way: Way, users: int) -> str:
        return f"{way.rate(users):6.1f}"

    pairs = {way.engine: {w.kind: w for w in ways if w.engine == way.engine} for way in ways}
    for users in USERS:
        print(f"SmolLM2-135M, {users} user(s), {replies} replies each, tokens/s (plain engine in lockstep vs the server):")
        for engine, by_kind in pairs.items():
            plain_way, server_way = by_kind.get("plain"), by_kind.get("server")
            row = f"  {engine:28s} plain {line(plain_way, users) if plain_way else '     -'}   server {line(server_way, users) if server_way else '     -'}"
            if plain_way and server_way:
                row += f"   server overhead {plain_way.rate(users) / server_way.rate(users):.2f}x (target <= 1.10)"
            print(row)
        target = 2.0 if users == 1 else 1.7
        for kind in ("server", "plain"):
            print(f"  ct2 int8 vs transformers, {kind}: {pairs['ct2 int8'][kind].rate(users) / pairs['transformers'][kind].rate(users):.2f}x"
                  f" (target >= {target}); ct2 float32 vs transformers: "
                  f"{pairs['ct2 float32'][kind].rate(users) / pairs['transformers'][kind].rate(users):.2f}x")
    print(f"ct2 rows without threads named: inter_threads {threads[0]}, intra_threads {threads[1]} (the defaults on "
          f"{os.cpu_count()} cores); plain ct2 decodes one batch at a time, so only its intra_threads matter")
    print("server replies replaced by a canned safety reply: " + ", ".join(f"{w.engine} {w.canned}" for w in ways if w.kind == "server")
          + f" (of {sum(USERS) * replies + 1} each)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["echo", "mixed", "model", "all"], default="all")
    parser.add_argument("--turns", type=int, default=10, help="messages per client in the echo part")
    parser.add_argument("--replies", type=int, default=8, help="replies per user in the model part")
    parser.add_argument("--phase", type=int, default=4, help="replies per user before the model part switches ways")
    parser.add_argument("--sweep", action="store_true", help="model part: also other ct2 thread settings")
    parser.add_argument("--postgres-url", default=os.environ.get("ORGANIC_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        for name, part in (("echo", echo_part), ("mixed", mixed_part)):  # each on SQLite, then PostgreSQL
            if args.part not in (name, "all"):
                continue
            part(f"sqlite:///{home / name}.db", "sqlite", home, args.turns)
            if args.postgres_url:
                with scratch_postgres(args.postgres_url) as url:
                    part(url, "postgresql", home, args.turns)
            else:
                print("postgresql: skipped (set ORGANIC_TEST_POSTGRES_URL)")
        if args.part in ("model", "all"):
            model_part(home, args.replies, args.phase, args.sweep)


if __name__ == "__main__":
    main()
