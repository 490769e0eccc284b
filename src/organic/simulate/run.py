"""``organic simulate``: simulated people chat with a real server over HTTP, concurrently, and rate its replies.

Everything goes through the public API a browser uses (consent, conversations, streamed messages, ratings,
the feedback question), so a run is also a load test; the report counts what the server acknowledged.
The people's kinds (helper or troll type) are written to a manifest, the ground truth for troll detection.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from organic.simulate.people import Person
from organic.taxonomy import CrowdLabel, Thumb

Rater = Callable[[list[dict], str], tuple[CrowdLabel, float | None, float]]
"""What a helper sees of a reply in its context: (label, P(bad) or None, the P(bad) threshold)."""


@dataclass
class SimulationReport:
    people: dict[str, str] = field(default_factory=dict)  # user pseudo id -> helper / troll type
    messages: int = 0  # acknowledged by the server (human and bot)
    ratings: Counter = field(default_factory=Counter)  # up / down, by kind of person
    feedback_answers: int = 0
    canned: int = 0  # bot replies that were canned (safety or crash)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def thumbs(self, thumb: Thumb) -> int:
        """How many thumbs ``thumb`` everyone gave."""
        return sum(n for (_, given), n in self.ratings.items() if given == thumb)


async def _person(http: httpx.AsyncClient, person: Person, rater: Rater, rating_rate: float, release_share: float,
                  report: SimulationReport) -> None:
    consent = {"age_confirmed": True, "accept_terms": True, "save_conversations": True,
               "allow_release": person.rng.random() < release_share}
    session = (await http.post("/api/session", json=consent)).raise_for_status().json()
    report.people[session["user_id"]] = person.kind
    headers = {"Authorization": f"Bearer {session['token']}"}
    convo = (await http.post("/api/conversations", headers=headers)).raise_for_status().json()
    context: list[dict] = []

    async def say(text: str) -> dict:
        response = await http.post(f"/api/conversations/{convo['id']}/messages?stream=false", json={"text": text},
                                   headers=headers)
        body = response.raise_for_status().json()
        report.messages += 2
        return body["reply"]

    for turn in range(len(person.dialogue.turns)):
        text = person.says(turn)
        reply = await say(text)
        context.append({"role": "user", "content": text})
        report.canned += reply["is_safety_controlled_response"]
        if person.rng.random() < rating_rate:
            if reply["is_safety_controlled_response"]:
                thumb, reason = Thumb.DOWN.value, ("agree_sensitive" if not person.is_troll else "disagree_sensitive")
            else:
                judged = await asyncio.to_thread(rater, list(context), reply["text"])
                thumb, reason = person.thumb(*judged)
            rated = (await http.put(f"/api/messages/{reply['id']}/rating", json={"thumb": thumb, "reason": reason},
                                    headers=headers)).raise_for_status().json()
            report.ratings[(person.kind, thumb)] += 1
            if rated["follow_up"]:
                report.messages += 1
                await say(person.should_have_said(turn))
                report.feedback_answers += 1
        context.append({"role": "assistant", "content": reply["text"]})


async def _simulate(base_url: str, people: list[Person], rater: Rater, rating_rate: float, concurrency: int,
                    release_share: float, progress: Callable[[int], None] | None) -> SimulationReport:
    report = SimulationReport()
    gate = asyncio.Semaphore(concurrency)

    async def one(person: Person) -> None:
        async with gate:
            try:
                await _person(http, person, rater, rating_rate, release_share, report)
            except httpx.HTTPError as error:
                report.errors.append(f"{person.kind}: {type(error).__name__}: {error}")
            if progress:
                progress(1)

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=600, limits=httpx.Limits(max_connections=concurrency + 4)) as http:
        await asyncio.gather(*(one(p) for p in people))
    report.seconds = time.perf_counter() - started
    return report


def simulate(base_url: str, people: list[Person], *, rater: Rater | None = None, rating_rate: float = 0.05,
             concurrency: int = 8, release_share: float = 0.7, progress: Callable[[int], None] | None = None) -> SimulationReport:
    """Run ``people`` against the server at ``base_url``; helpers rate with ``rater`` (default: the shipped rater
    judge, which the evaluation never uses)."""
    rater = rater or default_rater()
    result: list[SimulationReport] = []
    # a thread of its own: the caller may already run an event loop (Playwright, a notebook)
    thread = threading.Thread(target=lambda: result.append(asyncio.run(
        _simulate(base_url, people, rater, rating_rate, concurrency, release_share, progress))))
    thread.start()
    thread.join()
    return result[0]


def simulate_store(settings, people: list[Person], *, url: str | None = None, manifest: Path | None = None,
                   **options) -> SimulationReport:
    """``organic simulate``: ``simulate`` against the server at ``url``, or, without one, a server started here on
    ``settings``' store as ``organic serve`` starts it (its serving plan); who was a helper and who a troll goes to
    ``manifest`` (JSON) when given. ``options`` are ``simulate``'s."""
    from organic.serve.app import build_app
    from organic.serve.local import LocalServer
    from organic.store import connect

    if url:
        report = simulate(url, people, **options)
    else:
        engine = connect(settings.url)
        with LocalServer(build_app(settings, engine)) as base:
            report = simulate(base, people, **options)
        engine.dispose()
    if manifest:
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text(json.dumps(report.people, indent=1))
    return report


def default_rater() -> Rater:
    """The shipped rater judge (``evaluate/judge_model/rater``)."""
    from organic.evaluate.judge import RATER, Judge

    return judge_rater(Judge.load(RATER))


def judge_rater(judge) -> Rater:
    """A learned judge (``evaluate.judge.Judge``) as a rater: one reply at a time, serialised (its signals share one
    embedding model)."""
    lock = threading.Lock()

    def rate(context: list[dict], reply: str) -> tuple[CrowdLabel, float | None, float]:
        with lock:
            verdict = judge.judge([context], [reply])[0]
        return verdict.label, verdict.p_bad, judge.threshold

    return rate
