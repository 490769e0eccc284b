"""`organic loop --watch` on a simulated deployment at toy size: a tiny random Llama served to simulated people, then
rounds that end in a promotion, a rollback, a rejection by the offline gate or a stop that says why, a watcher killed
with SIGKILL mid-round that resumes without repeating a finished step, and bad options refused.

The A/B's thumbs come from simulated helpers chatting with a server that serves the A/B plan with scripted replies
and rating them all (the favoured version's up, the other's down), so each outcome is decided by the test, not by
chance or timing; every wait polls the store for a state, with a generous deadline."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
from typer.testing import CliRunner

from organic.cli import app
from organic.generate import EchoBackend
from organic.settings import Settings
from organic.store import connect, rounds
from organic.store.audit import entries
from organic.store.versions import same_plan, serving, set_serving, versions
from organic.taxonomy import CrowdLabel
from organic.watch import STEPS, WatchConfig, ab_verdict, diverged, offline_gate
from synthetic_judge import small_judge
from support import POSTGRES_ADMIN_URL, both_databases
from tiny_models import tiny_llama_folder

DEADLINE_S = 600  # for any state polled for: far beyond what it takes, so only a real failure times out (180 s ran out once on a machine running a whole loop beside the suite)
GOOD, BAD = "canberra is the capital of australia", "sydney dog cat"  # the A/B's scripted replies


class Deployment(NamedTuple):
    db: Path  # a store the simulated people filled (copied for each test)
    base: Path  # the tiny model they chatted with
    judge: Path  # a small evaluator judge that needs no reference model


def rate_by_hash(context: list[dict], reply: str) -> tuple[CrowdLabel, None, float]:
    """The simulated helpers' verdict: good or off topic by a hash of the reply, about half each."""
    good = hashlib.sha256(reply.encode()).digest()[0] % 2 == 0
    return (CrowdLabel.GOOD if good else CrowdLabel.OFF_TOPIC), None, 0.5


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Deployment:
    """40 simulated people (a quarter trolls) chat three turns each with the tiny model behind the real server and
    rate every reply: the store a watcher finds beside a running deployment. Enough that however the conversations'
    random ids fall into the held-out 30%, both sides hold what a round needs (20 ratings to learn from, thumbs of
    both kinds to measure the reward model on, contexts to evaluate)."""
    from organic.generate.prepare import local_backend
    from organic.serve.app import create_app
    from organic.serve.local import LocalServer
    from organic.simulate.people import population
    from organic.simulate.run import simulate

    folder = tmp_path_factory.mktemp("deployment")
    base = tiny_llama_folder(folder / "base")
    small_judge(folder / "judge", seed=2)
    settings = Settings(home=folder / "home", database_url=f"sqlite:///{folder / 'organic.db'}", model=str(base),
                        max_new_tokens=6, sessions_per_minute=1_000_000)
    engine = connect(settings.url)
    backend = local_backend(settings, base)
    with LocalServer(create_app(settings, [backend], engine=engine)) as url:
        report = simulate(url, population(40, 0.25, turns=3, seed=0), rater=rate_by_hash, rating_rate=1.0, concurrency=8)
    backend.close()
    engine.dispose()
    assert not report.errors and sum(report.ratings.values()) > 80
    return Deployment(folder / "organic.db", base, folder / "judge")


@pytest.fixture
def store(deployment, tmp_path) -> str:
    """A copy of the deployment's store for one test."""
    copy = tmp_path / "organic.db"
    with contextlib.closing(sqlite3.connect(deployment.db)) as source, contextlib.closing(sqlite3.connect(copy)) as target:
        source.backup(target)
    return f"sqlite:///{copy}"


def watch_args(store: str, deployment: Deployment, out: Path, *extra: str) -> list[str]:
    """``organic loop --watch --once`` at toy size: a round at once, one CRINGE iteration of two steps, four held-out
    contexts (30% of the conversations held out), an A/B at half the conversations decided once, on 20 thumbs each, and no
    reward-model gate (``extra`` options override these)."""
    return ["loop", "--watch", "--once", "--database-url", store, "--out", str(out), "--model", str(deployment.base),
            "--judge", str(deployment.judge), "--every", "1", "--ab-share", "0.5", "--min-thumbs", "20", "--poll", "0.5",
            "--iterations", "1", "--max-steps", "2", "--batch-size", "2", "--max-new-tokens", "6", "--eval-contexts", "4",
            "--held-out-share", "0.3", "--min-reward-auc", "0", *extra]


def wait_for(condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    """Poll ``condition`` until it holds; fail after ``deadline_s`` seconds."""
    end = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.05)


class Scripted(EchoBackend):
    """A model version that always says the same thing."""

    def __init__(self, model_version: str, text: str):
        super().__init__(model_version)
        self.text = text

    def reply(self, messages: list[dict]) -> str:
        return self.text


def ab_thumbs(url: str, home: Path, favour: str, stop: threading.Event | None = None) -> None:
    """Once the round's A/B runs, simulated helpers chat with a server serving its plan with scripted replies and rate
    every reply (the ``favour``ed version's, "candidate" or "incumbent", up, the other's down), batch after batch
    until the round ends (or ``stop`` is set)."""
    from organic.serve.app import create_app
    from organic.serve.local import LocalServer
    from organic.simulate.people import population
    from organic.simulate.run import simulate

    engine = connect(url)
    latest = lambda: rounds.latest(engine)  # noqa: E731
    wait_for(lambda: (stop and stop.is_set()) or (latest() and (latest().step == "ab" or latest().status != "running")),
             "the A/B to start")
    row = latest()
    if row is None or row.status != "running":
        return
    good = row.candidate if favour == "candidate" else row.incumbent
    plan = serving(engine)
    settings = Settings(home=home, database_url=url, backend="echo", sessions_per_minute=1_000_000)
    rater = lambda context, reply: (CrowdLabel.GOOD if GOOD in reply else CrowdLabel.NONSENSICAL, None, 0.5)  # noqa: E731
    people = population(200, 0.0, turns=3, seed=100)
    for person in people:
        person.slip = 0.0  # every helper rates as the rater says
    with LocalServer(create_app(settings, [Scripted(name, GOOD if name == good else BAD) for name in plan],
                                engine=engine, shares=plan)) as server:
        for batch in itertools.count():
            if latest().status != "running" or (stop and stop.is_set()):
                break
            assert 10 * batch < len(people), "the watcher never decided the A/B"
            simulate(server, people[10 * batch:10 * batch + 10], rater=rater, rating_rate=1.0, concurrency=10)
    engine.dispose()


def watch_with_thumbs(args: list[str], url: str, home: Path, favour: str):
    """Run ``organic loop --watch --once`` here while ``ab_thumbs`` feeds its A/B from a thread; its result."""
    done, failed = threading.Event(), []

    def feed() -> None:
        try:
            ab_thumbs(url, home, favour, stop=done)
        except BaseException as error:  # end the A/B as an operator would, so the watcher exits, and report the failure
            failed.append(error)
            engine = connect(url)
            set_serving(engine, {rounds.latest(engine).incumbent: 1.0}, note="the test's thumbs failed")

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        result = CliRunner().invoke(app, args)
    finally:
        done.set()
        feeder.join()
    if failed:
        raise failed[0]
    return result


def figures_all_time(url: str) -> dict[str, int]:
    """Thumbs per version over the whole store."""
    from organic.evaluate.live import live_ab

    return {name: v["thumbs_up"] + v["thumbs_down"] for name, v in live_ab(connect(url))["versions"].items()}


def watcher_log(engine) -> list[tuple[str, str]]:
    """The audit log's watcher entries, oldest first: (action, step)."""
    return [(e["action"], e["details"].get("step")) for e in reversed(entries(engine, 200)) if e["who"] == "watcher"]


ROUND = [("watch_start", None), ("watch_analyze", "analyze"), ("watch_reward", "reward"), ("watch_train", "train"),
         ("watch_eval", "eval"), ("watch_gate", "gate"), ("ab", "ab")]


def console_audit(url: str, home: Path) -> tuple[list[dict], list[dict]]:
    """The console's audit log and Models panel endpoints on the store, as another dashboard would read them."""
    from fastapi.testclient import TestClient

    from organic.serve.app import create_app

    settings = Settings(home=home, database_url=url, admin_token="admin-secret", backend="echo")
    with TestClient(create_app(settings, [EchoBackend()], engine=connect(url))) as client:
        response = client.get("/api/admin/console/audit?limit=100", headers={"Authorization": "Bearer admin-secret"})
        models = client.get("/api/admin/console/models", headers={"Authorization": "Bearer admin-secret"}).json()
    assert response.status_code == 200
    return response.json(), models


# rounds to the end ------------------------------------------------------------------------------------------
def test_a_round_trains_gates_and_promotes_a_candidate_the_people_prefer(store, deployment, tmp_path):
    result = watch_with_thumbs(watch_args(store, deployment, tmp_path / "watch"), store, tmp_path / "ab", favour="candidate")
    assert result.exit_code == 0, result.output
    assert "round 1 promoted" in result.output
    engine = connect(store)
    row = rounds.latest(engine)
    assert (row.status, row.step, row.candidate) == ("promoted", "decide", "watch-1")
    assert row.details["starts"] == {step: 1 for step in STEPS}  # each step ran once
    assert serving(engine) == {"watch-1": 1.0}
    assert watcher_log(engine) == [*ROUND, ("promote", "decide")]
    candidate = next(v for v in versions(engine) if v.name == "watch-1")
    assert candidate.parent_id and candidate.method == "cringe" and (Path(candidate.path) / "VERSION").read_text() == "watch-1\n"
    assert row.details["decide"]["verdict"]["p_down"] < 0.05 and row.details["gate"]["checks"]
    ab_thumbs_of = row.details["decide"]["verdict"]["thumbs"][row.incumbent]  # the A/B's own conversations only:
    assert row.details["ab"]["started"] and ab_thumbs_of < figures_all_time(store)[row.incumbent]  # not the simulation's

    audit, models = console_audit(store, tmp_path / "console")
    promoted = audit[0]
    assert (promoted["who"], promoted["action"]) == ("watcher", "promote")
    assert promoted["details"]["after"] == {"watch-1": 1.0} and set(promoted["details"]["before"]) == {row.incumbent, "watch-1"}
    assert "Promoted" in promoted["details"]["message"] and promoted["details"]["round"] == 1
    assert [e["action"] for e in audit if e["who"] == "watcher"][::-1] == [a for a, _ in watcher_log(engine)]
    assert next(m for m in models if m["name"] == "watch-1")["eval"]["paired"]["against"] == row.incumbent


def test_a_round_rolls_back_a_candidate_the_people_dislike(store, deployment, tmp_path):
    result = watch_with_thumbs(watch_args(store, deployment, tmp_path / "watch"), store, tmp_path / "ab", favour="incumbent")
    assert result.exit_code == 0, result.output
    engine = connect(store)
    row = rounds.latest(engine)
    assert (row.status, row.step) == ("rolled_back", "decide") and "Rolled back" in row.reason
    assert serving(engine) == {row.incumbent: 1.0}  # the plan before the A/B
    assert watcher_log(engine) == [*ROUND, ("rollback", "decide")]
    audit, _ = console_audit(store, tmp_path / "console")
    assert (audit[0]["who"], audit[0]["action"], audit[0]["details"]["after"]) == ("watcher", "rollback", {row.incumbent: 1.0})
    assert "is worse" in audit[0]["details"]["message"]


def test_organic_loop_and_organic_eval_record_their_figures_on_the_versions_for_the_models_panel(store, deployment, tmp_path,
                                                                                                 monkeypatch):
    """As a watcher's candidate does, each version `organic loop` evaluates gets its eval recorded (the Models panel
    said "no eval recorded" for them), and so does a version `organic eval` evaluates."""
    import functools

    import organic.loop as loop

    monkeypatch.setattr(loop, "LoopConfig", functools.partial(loop.LoopConfig, rater_judge=deployment.judge,
                                                              evaluator_judge=deployment.judge))
    toy = ["--max-new-tokens", "4", "--held-out-share", "0.3", "--database-url", store]
    looped = CliRunner().invoke(app, ["loop", "--from-store", "--out", str(tmp_path / "loop"), "--model", str(deployment.base),
                                      "--iterations", "1", "--baseline", "sft", "--max-steps", "1", "--batch-size", "2",
                                      "--eval-contexts", "3", *toy])
    assert looped.exit_code == 0, looped.output
    _, models = console_audit(store, tmp_path / "console")
    evals = {m["name"]: m["eval"] for m in models}
    for name in ("loop-cringe-it1", "loop-cringe-unfiltered", "loop-sft"):
        assert evals[name]["paired"]["against"] == "base" and evals[name]["breakdown"]["n"] > 0, name
    assert next(m for m in models if m["name"] == "loop-sft")["not_evaluated"] is None
    evaluated = CliRunner().invoke(app, ["eval", "--model", "loop-sft", "--model", "loop-cringe-it1", "--contexts", "2",
                                         "--human-replies", "5", "--judge", str(deployment.judge), "--no-crowd-agreement",
                                         "--out", str(tmp_path / "eval"), *toy])
    assert evaluated.exit_code == 0, evaluated.output
    _, models = console_audit(store, tmp_path / "console")
    evals = {m["name"]: m["eval"] for m in models}
    assert evals["loop-cringe-it1"]["paired"]["against"] == "loop-sft" and evals["loop-sft"]["paired"] is None
    assert evals["loop-cringe-unfiltered"]["paired"]["against"] == "base"  # not evaluated again: as the loop left it


# a round that cannot go on stops and says why --------------------------------------------------------------
@pytest.mark.parametrize("extra, step, status, reason", [
    (["--min-reward-auc", "1.01"], "reward", "stopped", "under the gate of 1.01"),
    (["--learning-rate", "1e4", "--max-steps", "8"], "train", "stopped", "training diverged"),
], ids=["reward-at-chance", "training-diverges"])
def test_a_failed_step_stops_the_round_and_says_why(store, deployment, tmp_path, extra, step, status, reason):
    # with thumbs ready for an A/B: were the round not stopped, it would end (promoted) and fail here, not hang
    result = watch_with_thumbs(watch_args(store, deployment, tmp_path / "watch", *extra), store, tmp_path / "ab", "candidate")
    assert result.exit_code == 1, result.output
    assert reason in result.output, result.output
    engine = connect(store)
    row = rounds.latest(engine)
    assert (row.status, row.step) == (status, STEPS[STEPS.index(step) - 1]) and reason in row.reason
    assert watcher_log(engine)[-1] == ("watch_stop", step)
    assert entries(engine, 1)[0]["details"]["message"] == row.reason
    assert serving(engine) == {} and "watch-1" not in {v.name for v in versions(engine)}  # nothing served, nothing registered


def test_too_little_data_stops_the_round_and_the_next_round_waits_for_more_feedback(store, deployment, tmp_path):
    from organic.loop import LoopConfig
    from organic.watch import Watcher

    settings = Settings(home=tmp_path / "home", database_url=store, model=str(deployment.base))
    engine = connect(store)
    watcher = Watcher(settings, engine, tmp_path / "watch", WatchConfig(LoopConfig(held_out_share=0.3), every=5, min_labels=10_000))
    row = watcher.tick()
    assert (row.status, row.step) == ("stopped", "analyze") and row.reason.startswith("too little data")
    assert watcher.tick() is None  # no new feedback since: no new round
    assert len(watcher_log(engine)) == 3  # start, analyze, stop


def test_a_candidate_that_fails_the_offline_gate_is_rejected_without_an_ab(store, deployment, tmp_path):
    from organic.loop import LoopConfig
    from organic.watch import Watcher

    settings = Settings(home=tmp_path / "home", database_url=store, model=str(deployment.base))
    loop = LoopConfig(iterations=1, max_steps=2, batch_size=2, max_new_tokens=6, eval_contexts=4, held_out_share=0.3,
                      min_reward_auc=0.0, evaluator_judge=deployment.judge)
    engine = connect(store)
    row = Watcher(settings, engine, tmp_path / "watch", WatchConfig(loop, every=1, max_perplexity_ratio=0.5)).tick()
    assert (row.status, row.step) == ("rejected", "eval")  # one look: every step up to the gate, which ends the round
    assert "failed the offline gate" in row.reason and "perplexity on human replies" in row.reason
    assert watcher_log(engine)[-1] == ("watch_reject", "gate") and serving(engine) == {}
    assert [c["check"] for c in row.details["gate"]["checks"] if not c["ok"]] == ["perplexity on human replies"]


def test_no_ab_starts_over_a_plan_an_operator_changed_while_the_round_trained(store, deployment, tmp_path, monkeypatch):
    from organic import watch
    from organic.loop import LoopConfig
    from organic.store.versions import register_version

    engine = connect(store)

    def operator_promotes(r):  # while the round trains, someone promotes another version from the console
        register_version(engine, "operators-pick", path=str(deployment.base), method="base")
        set_serving(engine, {"operators-pick": 1.0}, note="promote")
        return watch.Done("gate passed (test)")

    monkeypatch.setitem(watch.STEP, "gate", operator_promotes)
    settings = Settings(home=tmp_path / "home", database_url=store, model=str(deployment.base))
    loop = LoopConfig(iterations=1, max_steps=2, batch_size=2, max_new_tokens=6, eval_contexts=4, held_out_share=0.3,
                      min_reward_auc=0.0, evaluator_judge=deployment.judge)
    row = watch.Watcher(settings, engine, tmp_path / "watch", WatchConfig(loop, every=1)).tick()
    assert (row.status, row.step) == ("stopped", "gate") and "operators-pick" in row.reason
    assert serving(engine) == {"operators-pick": 1.0}  # the operator's plan stands


# kill -9 and restart ----------------------------------------------------------------------------------------
def test_a_watcher_killed_mid_round_resumes_without_repeating_a_finished_step(store, deployment, tmp_path):
    env = {**os.environ, "ORGANIC_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "organic.cli", *watch_args(store, deployment, tmp_path / "watch")]
    engine = connect(store)
    finished = lambda *steps: (lambda: (row := rounds.latest(engine)) is not None and row.step in steps)  # noqa: E731

    def start(log: str) -> subprocess.Popen:
        return subprocess.Popen(command, env=env, stdout=open(tmp_path / log, "w"), stderr=subprocess.STDOUT)

    first = start("first.log")
    try:
        wait_for(lambda: first.poll() is not None or finished("reward", "train", "eval", "gate", "ab")(), "the reward step")
        assert first.poll() is None, (tmp_path / "first.log").read_text()
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.kill()
        first.wait()
    killed = rounds.latest(engine)
    assert killed.status == "running" and killed.details["starts"]["reward"] == 1
    reward_files = {p: p.stat().st_mtime_ns for p in (Path(killed.folder) / "reward_model").iterdir()}
    assert Path(killed.folder, "reward_model", "held_out_metrics.json") in reward_files

    second = start("second.log")
    try:
        ab_thumbs(store, tmp_path / "ab", favour="candidate")
        assert second.wait(timeout=DEADLINE_S) == 0, (tmp_path / "second.log").read_text()
    finally:
        second.kill()
        second.wait()
    row = rounds.latest(engine)
    assert row.id == killed.id and row.status == "promoted"
    starts = row.details["starts"]
    assert starts["analyze"] == starts["reward"] == 1  # finished before the kill: not run again
    assert {p: p.stat().st_mtime_ns for p in reward_files} == reward_files  # the reward model was not rebuilt
    assert all(starts[step] == 1 for step in STEPS[STEPS.index(killed.step) + 2:])  # the steps after the one killed: once
    assert [a for a, _ in watcher_log(engine)] == [a for a, _ in ROUND] + ["promote"]  # every step recorded once
    assert "round 1" in (tmp_path / "second.log").read_text() and "promoted" in (tmp_path / "second.log").read_text()


AB = {"base": 0.5, "watch-1": 0.5}  # the A/B of ``decided_round``


def decided_round(engine, tmp_path: Path) -> None:
    """A round whose A/B of watch-1 against base runs (plan ``AB``) and was decided (promote), the plan not changed yet:
    what a watcher killed right after storing its decision leaves."""
    from organic.store.versions import register_version

    for name in ("base", "watch-1"):
        register_version(engine, name, path=str(tmp_path))
    set_serving(engine, {"base": 1.0}, note="promote")
    set_serving(engine, AB, note="watch round 1: A/B")
    row = rounds.start(engine, 0, tmp_path, ("watcher", "watch_start", {}), incumbent="base", candidate="watch-1",
                       details={"iterations": 1, "ab": {"before": {"base": 1.0}, "after": AB},
                                "decision": {"action": "promote", "why": "watch-1 is better. Promoted."}})
    rounds.save(engine, row.id, step="ab")


@both_databases
@pytest.mark.parametrize("applied", [False, True], ids=["killed-before-the-plan-changed", "killed-after"])
def test_a_decision_a_kill_interrupted_is_completed_once(engine, database_url, tmp_path, applied):
    """The decision is stored before the plan changes: a restart applies it if the kill came first, and does not
    stack a second change if the kill came after."""
    from sqlalchemy import func, select

    from organic.store.models import ServingChange
    from organic.watch import Watcher

    decided_round(engine, tmp_path)
    if applied:
        set_serving(engine, {"watch-1": 1.0}, note="watch round 1: promote")
    def changes() -> int:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(ServingChange)).scalar_one()

    stored = changes()
    row = Watcher(Settings(home=tmp_path, database_url=database_url), engine, tmp_path, WatchConfig()).tick()
    assert (row.status, row.step) == ("promoted", "decide") and serving(engine) == {"watch-1": 1.0}
    assert changes() == stored + (0 if applied else 1)
    assert watcher_log(engine)[-1] == ("promote", "decide")


@both_databases
def test_an_operators_change_between_the_watchers_look_and_its_change_stands(engine, database_url, tmp_path, monkeypatch):
    """decide looks at the plan (the A/B), then an operator promotes another version before the watcher's promotion is
    stored: the watcher's change is refused (compare-and-set), the operator's plan stays, and the round stops saying so."""
    from organic import watch
    from organic.store.versions import register_version

    decided_round(engine, tmp_path)
    register_version(engine, "operators-pick", path=str(tmp_path))

    def operator_promotes_meanwhile(r):
        done = watch.decide(r)
        set_serving(engine, {"operators-pick": 1.0}, note="promote")
        return done

    monkeypatch.setitem(watch.STEP, "decide", operator_promotes_meanwhile)
    row = watch.Watcher(Settings(home=tmp_path, database_url=database_url), engine, tmp_path, WatchConfig()).tick()
    assert (row.status, row.step) == ("stopped", "ab")
    assert "someone changed the serving plan as the watcher was changing it" in row.reason and "operators-pick" in row.reason
    assert serving(engine) == {"operators-pick": 1.0}
    assert watcher_log(engine)[-1] == ("watch_stop", "decide") and ("promote", "decide") not in watcher_log(engine)


@both_databases
@pytest.mark.parametrize("failures", [2, 1000], ids=["back-within-the-tries", "down-for-longer"])
def test_a_store_that_fails_while_the_ab_is_decided_is_tried_again_and_the_round_resumed(engine, database_url, tmp_path,
                                                                                         monkeypatch, failures):
    """A lost connection while decide reads the plan: tried again; when the store stays down, the round stays at its
    step (the A/B goes on), the audit log says why, and the next look completes the decision."""
    from sqlalchemy.exc import OperationalError

    from organic import watch
    from organic.store import versions as store_versions

    decided_round(engine, tmp_path)
    monkeypatch.setattr(watch, "RETRY_S", (0.0, 0.0, 0.0))
    real_current_plan, calls = store_versions.current_plan, itertools.count()

    def flaky(engine_):
        if next(calls) < failures:
            raise OperationalError("SELECT serving_changes", {}, Exception("server closed the connection unexpectedly"))
        return real_current_plan(engine_)

    monkeypatch.setattr(store_versions, "current_plan", flaky)
    watcher = watch.Watcher(Settings(home=tmp_path, database_url=database_url), engine, tmp_path, WatchConfig())
    row = watcher.tick()
    if failures > len(watch.RETRY_S):
        assert (row.status, row.step) == ("running", "ab") and real_current_plan(engine)[1] == AB
        said = entries(engine, 1)[0]
        assert (said["who"], said["action"], said["details"]["step"]) == ("watcher", "watch_error", "decide")
        assert "server closed the connection unexpectedly" in said["details"]["message"]
        monkeypatch.setattr(store_versions, "current_plan", real_current_plan)  # the store is back
        row = watcher.tick()
    assert (row.status, row.step) == ("promoted", "decide") and serving(engine) == {"watch-1": 1.0}
    assert watcher_log(engine)[-1] == ("promote", "decide")


# bad input --------------------------------------------------------------------------------------------------
def test_bad_options_and_unknown_stores_are_refused_with_a_clear_error(store, tmp_path):
    cases = [
        (["--database-url", f"sqlite:///{tmp_path / 'nowhere.db'}"], "no store at"),
        (["--database-url", "nosuchdb://x/y"], "cannot open the store"),
        (["--database-url", "sqlite://"], "in-memory SQLite store"),
        (["--database-url", store, "--every", "0"], "--every must be at least 1"),
        (["--database-url", store, "--ab-share", "1.5"], "--ab-share must be between 0 and 1"),
        (["--database-url", store, "--min-thumbs", "0"], "--min-thumbs must be at least 1"),
        (["--database-url", store, "--poll", "0"], "--poll must be more than 0"),
        (["--database-url", store, "--engine", "vllm-magic"], "unknown engine 'vllm-magic'"),
    ]
    if POSTGRES_ADMIN_URL:
        from sqlalchemy.engine import make_url

        missing = make_url(POSTGRES_ADMIN_URL).set(database="organic_no_such_store").render_as_string(hide_password=False)
        cases.append((["--database-url", missing], "cannot open the store"))
    for args, message in cases:
        result = CliRunner().invoke(app, ["loop", "--watch", "--once", *args])
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    assert not (tmp_path / "nowhere.db").exists()  # a watcher never creates a store


# the gates, on figures --------------------------------------------------------------------------------------
def test_divergence_is_a_nan_or_a_rising_loss():
    assert diverged([2.0, 1.8, 1.7, 1.5, 1.4, 1.2, 1.1, 1.0]) is None and diverged([2.0]) is None
    assert "nan at step 2" in diverged([2.0, float("nan"), 1.0])
    assert "inf at step 1" in diverged([float("inf")])
    assert "rose from 1 to 4 over 8 steps" in diverged([1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0], max_rise=1.5)
    assert diverged([1.0, 1.0, 1.2, 1.2, 1.3, 1.3, 1.4, 1.4], max_rise=1.5) is None
    assert diverged([0.6, 2.0]) is None  # two batches are no trend


def test_weights_that_blew_up_are_found(tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    from organic.watch import nonfinite_weights

    folder = tiny_llama_folder(tmp_path / "model")
    assert nonfinite_weights(folder) == []
    tensors = load_file(folder / "model.safetensors")
    name = next(iter(tensors))
    tensors[name][0, 0] = torch.nan
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    assert nonfinite_weights(folder) == [name]


def _results(bad_change: float = 0.0, p: float = 1.0, words=(10.0, 10.0), copied=(0.1, 0.1), ppl=(20.0, 20.0)) -> dict:
    model = lambda i: {"breakdown": {"bad": {"percent": 20.0}}, "guards": {  # noqa: E731
        "words": {"mean": words[i]}, "copied_from_user": {"mean": copied[i]}, "perplexity_human": ppl[i]}}
    return {"models": {"base": model(0) | {"paired": None},
                       "cand": model(1) | {"paired": {"bad_rate_change": bad_change, "p_value": p}}}}


@pytest.mark.parametrize("results, unsafe, failing", [
    (_results(), {"base": 1, "cand": 1}, []),
    (_results(bad_change=5.0, p=0.3), {"base": 0, "cand": 0}, []),  # worse, but not significantly
    (_results(bad_change=-20.0, p=0.001), {"base": 0, "cand": 0}, []),  # significantly better
    (_results(bad_change=20.0, p=0.01), {"base": 0, "cand": 0}, ["judged bad rate"]),
    (_results(words=(10.0, 25.0)), {"base": 0, "cand": 0}, ["reply length"]),
    (_results(words=(10.0, 4.0)), {"base": 0, "cand": 0}, ["reply length"]),
    (_results(copied=(0.1, 0.3)), {"base": 0, "cand": 0}, ["copying from the user"]),
    (_results(ppl=(20.0, 30.0)), {"base": 0, "cand": 0}, ["perplexity on human replies"]),
    (_results(), {"base": 0, "cand": 1}, ["safety"]),
])
def test_the_offline_gate_fails_exactly_the_checks_out_of_bounds(results, unsafe, failing):
    checks = offline_gate(results, "base", "cand", unsafe, WatchConfig())
    assert [c["check"] for c in checks if not c["ok"]] == failing
    assert all(c["why"] for c in checks)


def _figures(cand: tuple[int, int, int], base: tuple[int, int, int]) -> dict:
    """live_ab's figures for (bot messages, thumbs up, thumbs down) of each version."""
    from scipy.stats import fisher_exact

    version = lambda n, up, down: {"bot_messages": n, "thumbs_up": up, "thumbs_down": down, "down_rate": down / n}  # noqa: E731
    p = float(fisher_exact([[cand[2], cand[0] - cand[2]], [base[2], base[0] - base[2]]]).pvalue)
    return {"versions": {"cand": version(*cand), "base": version(*base)}, "comparisons": [{"a": "base", "b": "cand", "down_rate_p": p}]}


@pytest.mark.parametrize("figures, replaced, action", [
    (_figures((10, 5, 0), (10, 0, 5)), {}, None),  # too few thumbs on each (min 20)
    (_figures((60, 30, 2), (60, 10, 25)), {}, "promote"),
    (_figures((60, 10, 25), (60, 30, 2)), {}, "rollback"),
    (_figures((60, 25, 10), (60, 24, 11)), {}, "rollback"),  # no significant difference at the one look: the incumbent stays
    (_figures((60, 30, 2), (60, 10, 25)), {"cand": 12, "base": 0}, "rollback"),  # fewer thumbs down, but unsafe
])
def test_the_ab_promotes_rolls_back_or_waits(figures, replaced, action):
    verdict = ab_verdict(figures, replaced, "base", "cand", WatchConfig(min_thumbs=20))
    assert verdict["action"] == action and verdict["why"]


def test_plans_compare_by_their_served_shares():
    assert same_plan({"a": 0.9, "b": 0.1}, {"b": 0.1, "a": 0.9, "c": 0.0})
    assert not same_plan({"a": 1.0}, {"a": 0.9, "b": 0.1}) and not same_plan({}, {"a": 1.0})
