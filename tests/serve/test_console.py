"""The operator's console over HTTP on the real app: login and its cookie, the panels' figures from a seeded store
(known by construction, see ``console_store.py``), and the A/B actions: checked, stored, followed by the running
server, and audited."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest
from fastapi.testclient import TestClient
from scipy.stats import fisher_exact
from sqlalchemy import select

from console_store import ANSWER, DOWN_REASONS, EVAL, SAFE, UNSAFE, day, seed
from organic.stats import Proportion
from organic.generate import EchoBackend, GenerationSettings
from organic.serve.app import build_app, create_app
from organic.serve.router import Router
from organic.settings import Settings
from organic.store import AuditEntry, ModelVersion
from organic.store.versions import register_version, serving, set_serving
from scripted_chat import session
from support import both_databases

TOKEN = "admin-secret"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
PANELS = ("traffic", "feedback", "ab", "people", "annotation", "models", "report", "audit")
WAIT_S = 60  # for a state waited for: far beyond what it takes, so only a real failure runs out


@pytest.fixture
def settings(tmp_path, database_url):
    return Settings(home=tmp_path / "home", database_url=database_url, admin_token=TOKEN, backend="echo")


def start(settings, engine) -> TestClient:
    """The app as `organic serve` makes it: the store's serving plan, one backend per version."""
    client = TestClient(build_app(settings, engine))
    client.__enter__()
    return client


@pytest.fixture
def console(settings, store_engine, tmp_path):
    """A client of the app on the seeded store, serving base only, logged in to the console as alice."""
    seed(store_engine, tmp_path, settings.home / "report")
    set_serving(store_engine, {"base": 1.0}, note="promote")
    client = start(settings, store_engine)
    assert client.post("/api/admin/console/login", json={"token": TOKEN, "name": "alice"}).status_code == 200
    yield client
    client.__exit__(None, None, None)


def versions_of_new_conversations(client: TestClient, n: int) -> list[str]:
    session(client)
    return [client.post("/api/conversations").json()["model_version"] for _ in range(n)]


class Closable(EchoBackend):
    """A model version that says when it is closed, and whose replies, once ``gated``, wait for ``go``."""

    def __init__(self, model_version: str, gated: bool = False):
        super().__init__(model_version)
        self.started, self.go, self.closed = threading.Event(), threading.Event(), threading.Event()
        if not gated:
            self.go.set()

    async def stream(self, messages, settings):
        self.started.set()
        await asyncio.to_thread(self.go.wait, WAIT_S)
        async for delta in super().stream(messages, settings):
            yield delta

    def close(self) -> None:
        self.closed.set()


def released() -> None:
    """Wait for the threads on which the router closes released backends (``Router.release``) to end."""
    for thread in threading.enumerate():
        if thread.name.startswith("organic-release-"):
            thread.join(WAIT_S)


def test_the_router_follows_a_new_plan_and_releases_the_versions_it_drops_once_their_replies_end():
    a, b, c = Closable("a"), Closable("b"), EchoBackend("c")
    router = Router([a, c], {"a": 0.5, "c": 0.5}, rng=random.Random(0))
    chat = [{"role": "user", "content": "hello there you"}]

    async def a_reply_of_a_across_the_change() -> str:
        reply = router.stream(a, chat, GenerationSettings())
        first = await anext(reply)  # a reply of a is being generated
        router.follow({"b": 1.0}, [b])
        released()
        assert router.backends == {"b": b} and router.backend("a") is b  # a's conversations go on with b
        assert not a.closed.is_set()  # not while its reply runs
        return first + "".join([delta async for delta in reply])

    assert asyncio.run(a_reply_of_a_across_the_change()) == EchoBackend.reply(chat)  # the reply ran to its end
    released()
    assert a.closed.is_set() and not b.closed.is_set()  # closed after its last reply; c, without close, just dropped
    assert {router.choose() for _ in range(20)} == {"b"}
    with pytest.raises(ValueError, match="not served"):
        router.follow({"c": 1.0})
    assert router.shares == {"b": 1.0}
    router.follow({"a": 1.0}, [a2 := Closable("a")])  # idle when dropped: closed at once
    released()
    assert b.closed.is_set() and router.backends == {"a": a2}


# login ------------------------------------------------------------------------------------------------------
def test_login_keeps_a_signed_strict_cookie_and_never_the_token(settings, store_engine):
    client = start(settings, store_engine)
    page = client.get("/admin")
    assert page.status_code == 200 and '<script src="/static/console.js"></script>' in page.text
    assert "<script>" not in page.text and 'method="post"' in page.text  # no inline script; the form never uses GET
    assert client.get("/api/admin/console/traffic").status_code == 401
    wrong = client.post("/api/admin/console/login", json={"token": "admin-secreT", "name": "alice"})
    assert wrong.status_code == 403 and wrong.json()["detail"] == "wrong admin token" and "set-cookie" not in wrong.headers
    assert client.post("/api/admin/console/login", json={"token": TOKEN, "name": "<b>"}).status_code == 422
    ok = client.post("/api/admin/console/login", json={"token": TOKEN, "name": "alice"})
    assert ok.status_code == 200
    cookie = ok.headers["set-cookie"]
    assert cookie.startswith("organic_admin=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert TOKEN not in cookie
    assert client.get("/api/admin/console/me").json() == {"who": "alice"}
    client.post("/api/admin/console/logout")
    assert client.get("/api/admin/console/me").status_code == 401
    client.__exit__(None, None, None)


def test_bearer_token_opens_the_console_api_and_the_old_admin_api_still_works(settings, store_engine):
    client = start(settings, store_engine)
    assert client.get("/api/admin/console/me", headers=ADMIN).json() == {"who": "admin"}
    assert client.get("/api/admin/console/me", headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.get("/api/admin/stats", headers=ADMIN).status_code == 200
    client.post("/api/admin/console/login", json={"token": TOKEN})
    assert client.get("/api/admin/stats").status_code == 403  # the console cookie opens the console's endpoints only
    client.__exit__(None, None, None)


def test_a_new_admin_token_ends_console_sessions(settings, store_engine):
    client = start(settings, store_engine)
    client.post("/api/admin/console/login", json={"token": TOKEN, "name": "alice"})
    cookie = client.cookies["organic_admin"]
    other = start(settings.model_copy(update={"admin_token": "rotated"}), store_engine)
    other.cookies.set("organic_admin", cookie)
    refused = other.get("/api/admin/console/me")
    assert refused.status_code == 401 and "admin token changed" in refused.json()["detail"]
    client.cookies.clear()
    client.cookies.set("organic_admin", cookie[:-2] + ("xx" if not cookie.endswith("xx") else "yy"))
    forged = client.get("/api/admin/console/me")
    assert forged.status_code == 401 and "invalid console session" in forged.json()["detail"]
    for c in (client, other):
        c.__exit__(None, None, None)


def test_the_console_endpoints_are_documented_as_admin(settings, store_engine):
    client = start(settings, store_engine)
    paths = client.app.openapi()["paths"]
    console = {path: ops for path, ops in paths.items() if path.startswith("/api/admin/console/")}
    for name in [*PANELS, "trolls", "login", "logout", "promote", "rollback", "links"]:
        assert f"/api/admin/console/{name}" in console, name
    assert all(op["tags"] == ["admin"] for ops in console.values() for op in ops.values())
    assert "post" in console["/api/admin/console/ab"] and "get" in console["/api/admin/console/ab"]
    client.__exit__(None, None, None)


# the panels -------------------------------------------------------------------------------------------------
@both_databases
def test_every_panel_is_filled_from_the_store(console):
    traffic = console.get("/api/admin/console/traffic?days=7").json()
    assert len(traffic["days"]) == 7
    last3 = [(d["conversations"], d["messages"], d["active_users"]) for d in traffic["days"][-3:]]
    assert last3 == [(2, 8, 2), (4, 16, 3), (5, 30, 4)]  # two days ago, yesterday, today
    assert traffic["days"][-1]["by_version"] == {"base": 3, "cringe-it1": 2}
    assert [(v["name"], v["count"], v["n"]) for v in traffic["versions"]] == [("base", 7, 11), ("cringe-it1", 4, 11)]

    feedback = console.get("/api/admin/console/feedback").json()
    base, cringe = feedback["versions"]
    assert (base["name"], base["conversations"], base["bot_messages"]) == ("base", 7, 19)  # 6 x 2 + the question + 6 canned
    assert base["down"] == Proportion(3, 19).to_json() and base["up"] == Proportion(9, 19).to_json()
    assert cringe["down"] == Proportion(0, 8).to_json() and cringe["up"] == Proportion(8, 8).to_json()
    assert sum(d["down"]["count"] for d in feedback["days"] if d["version"] == "base") == 3
    assert {(r["reason"], r["count"]) for r in feedback["reasons"]} == {("nonsensical", 2), ("rude", 1)}
    assert feedback["canned"]["safety"] == Proportion(6, 27).to_json()
    assert [(a["answer"], a["reason"], a["version"]) for a in feedback["answers"]] == [(ANSWER, DOWN_REASONS[0], "base")]

    ab = console.get("/api/admin/console/ab").json()
    assert ab["plan"] == ab["serving"] == {"base": 1.0} and ab["incumbent"] == "base"
    assert {v["name"]: v["status"] for v in ab["versions"]} == {"base": "active", "cringe-it1": "candidate", "sft-1": "candidate"}
    challenger = next(v for v in ab["live"] if v["name"] == "cringe-it1")
    assert challenger["down_p"] == pytest.approx(fisher_exact([[0, 8], [3, 16]]).pvalue)

    raters = console.get("/api/admin/console/people").json()["raters"]
    assert [(r["user"], r["ratings"]) for r in raters] == [("h0", 4), ("h1", 4), ("h2", 4), ("h3", 4), ("h4", 2), ("h5", 2)]

    annotation = console.get("/api/admin/console/annotation").json()
    assert [(a["name"], a["labels"]) for a in annotation["annotators"]] == [("ann1", 8), ("ann2", 6)]
    assert annotation["agreement"]["items"] == 6
    # ann1 and ann2 agree on 5 of 6; chance agreement (4/6)(3/6) + 2 (1/6)(1/6) = 14/36; kappa = (30 - 14) / (36 - 14)
    assert annotation["pairs"] == [{"annotators": ["ann1", "ann2"], "shared": 6, "cohen_kappa": round(16 / 22, 4)}]

    models = {m["name"]: m for m in console.get("/api/admin/console/models").json()}
    assert models["cringe-it1"]["parent"] == "base" and models["cringe-it1"]["method"] == "cringe"
    assert models["cringe-it1"]["data"] == {"examples": 40, "positives": 20, "negatives": 20}
    assert models["cringe-it1"]["eval"] == EVAL and models["sft-1"]["eval"] is None and models["base"]["eval"] is None
    assert models["cringe-it1"]["not_evaluated"] is None  # `organic train` evaluates nothing: the panel says so, and how
    assert models["sft-1"]["not_evaluated"] == ("no eval recorded: this version was not evaluated; `organic eval --model base "
                                                "--model sft-1` evaluates it against its parent and records the figures here")
    assert models["base"]["not_evaluated"].endswith("`organic eval --model base` evaluates it and records the figures here")

    report = console.get("/api/admin/console/report").json()
    assert report["available"] and report["figures"]["conversations"] == 11
    page = console.get("/admin/report")
    assert page.status_code == 200 and "The organic-data report" in page.text


def test_trolls_are_scored_on_request(console):
    trolls = console.get("/api/admin/console/trolls?features=tfidf").json()
    assert trolls["message"] is None and trolls["users"] == 7 and trolls["judged"] == 4  # h0-h3 rated 4 replies each
    flagged = {u["user"]: u for u in trolls["flagged"]}
    assert "6 of their 6 messages failed the safety check" in flagged["troll-1"]["why"]
    assert flagged["troll-1"]["ratings"] == 0
    assert console.get("/api/admin/console/trolls?features=bag").status_code == 422


def test_an_empty_store_says_what_is_missing(settings, store_engine):
    client = start(settings, store_engine)
    client.post("/api/admin/console/login", json={"token": TOKEN})
    assert client.get("/api/admin/console/trolls?features=tfidf").json()["message"].startswith("not enough data")
    report = client.get("/api/admin/console/report").json()
    assert not report["available"] and "organic analyze --out" in report["message"]
    missing = client.get("/admin/report")
    assert missing.status_code == 404 and "organic analyze" in missing.json()["detail"]
    assert client.get("/api/admin/console/annotation").json()["agreement"]["fleiss_kappa"] is None
    client.__exit__(None, None, None)


# actions ----------------------------------------------------------------------------------------------------
@both_databases
def test_new_shares_are_stored_followed_and_audited(console, store_engine):
    assert set(versions_of_new_conversations(console, 5)) == {"base"}
    changed = console.post("/api/admin/console/ab", json={"shares": {"base": 0.25, "cringe-it1": 0.75}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["serving"] == serving(store_engine) == {"base": 0.25, "cringe-it1": 0.75}
    drawn = versions_of_new_conversations(console, 200)
    assert 20 <= drawn.count("base") <= 80  # 50 expected; the bounds are 5 standard deviations away
    assert console.post("/api/admin/console/ab", json={"shares": {"cringe-it1": 1.0, "base": 0.0}}).status_code == 200
    assert set(versions_of_new_conversations(console, 20)) == {"cringe-it1"}
    with store_engine.connect() as conn:
        shares = dict(conn.execute(select(ModelVersion.name, ModelVersion.traffic_share)).all())
        rows = conn.execute(select(AuditEntry.who, AuditEntry.action, AuditEntry.details).order_by(AuditEntry.id)).all()
    assert shares == {"base": 0.0, "cringe-it1": 1.0, "sft-1": 0.0}
    assert [(r.who, r.action) for r in rows] == [("alice", "ab"), ("alice", "ab")]
    assert rows[0].details == {"before": {"base": 1.0}, "after": {"base": 0.25, "cringe-it1": 0.75}}
    assert console.get("/api/admin/console/audit").json()[0]["details"]["after"] == {"cringe-it1": 1.0}


def test_promote_a_version_not_yet_loaded_and_roll_back(console, store_engine):
    promoted = console.post("/api/admin/console/promote", json={"version": "sft-1"}, headers=ADMIN)
    assert promoted.status_code == 200 and promoted.json()["serving"] == {"sft-1": 1.0}
    assert set(versions_of_new_conversations(console, 10)) == {"sft-1"}
    back = console.post("/api/admin/console/rollback")
    assert back.status_code == 200 and back.json()["plan"] == {"base": 1.0} == serving(store_engine)
    assert set(versions_of_new_conversations(console, 10)) == {"base"}
    audit = console.get("/api/admin/console/audit").json()
    assert [(e["who"], e["action"]) for e in audit] == [("alice", "rollback"), ("admin", "promote")]


def test_bad_plans_are_refused_and_the_plan_in_force_stays(console, store_engine):
    cases = [
        ({"shares": {"base": 0.5, "cringe-it1": 0.4}}, 422, "add up to 0.9; they must add up to 1"),
        ({"shares": {"base": 1.5, "cringe-it1": -0.5}}, 422, "between 0 and 1"),
        ({"shares": {}}, 422, "no shares given"),
        ({"shares": {"base": 0.5, "nope": 0.5}}, 404, "unknown model version(s): nope"),
        ({"shares": {"base": "half"}}, 422, None),
    ]
    for body, status, message in cases:
        response = console.post("/api/admin/console/ab", json=body)
        assert response.status_code == status, (body, response.text)
        if message:
            assert message in response.json()["detail"]
    unknown = console.post("/api/admin/console/promote", json={"version": "gpt-9"})
    assert unknown.status_code == 404 and "gpt-9" in unknown.json()["detail"]
    nothing = console.post("/api/admin/console/rollback")  # one plan was ever set: nothing to go back to
    assert nothing.status_code == 409 and "nothing to roll back to" in nothing.json()["detail"]
    assert serving(store_engine) == {"base": 1.0} and console.get("/api/admin/console/audit").json() == []
    assert set(versions_of_new_conversations(console, 5)) == {"base"}


def test_a_version_this_server_cannot_load_is_refused(settings, store_engine, tmp_path):
    seed(store_engine, tmp_path)
    register_version(store_engine, "no-folder")
    set_serving(store_engine, {"base": 1.0}, note="promote")
    local = settings.model_copy(update={"backend": "transformers"})  # a version is loaded from its model folder
    client = TestClient(create_app(local, [EchoBackend("base")], engine=store_engine, shares={"base": 1.0}))
    with client:
        for body in ({"version": "no-folder"}, {"version": "sft-1"}):  # no folder; a folder that is not there
            refused = client.post("/api/admin/console/promote", json=body, headers=ADMIN)
            assert refused.status_code == 422 and "the plan in force stays" in refused.json()["detail"]
        assert serving(store_engine) == {"base": 1.0}
        assert set(versions_of_new_conversations(client, 5)) == {"base"}
        assert client.get("/api/admin/console/audit", headers=ADMIN).json() == []


def test_links_are_issued_for_the_annotation_and_compare_pages(console):
    link = console.post("/api/admin/console/links", json={"role": "annotator", "name": "ann3"})
    assert link.status_code == 201 and link.json()["url"].startswith("/annotate#token=")
    me = console.get("/api/annotate/me", headers={"Authorization": f"Bearer {link.json()['token']}"})
    assert me.json()["annotator"] == "ann3"
    rater = console.post("/api/admin/console/links", json={"role": "rater", "name": "r1"}).json()
    assert console.get("/api/compare/me", headers={"Authorization": f"Bearer {rater['token']}"}).json()["rater"] == "r1"
    assert console.post("/api/admin/console/links", json={"role": "annotator", "name": "a b"}).status_code == 422
    assert console.post("/api/admin/console/links", json={"role": "boss", "name": "x"}).status_code == 422
    audit = console.get("/api/admin/console/audit").json()
    assert [(e["action"], e["details"]) for e in audit] == [("issue_link", {"role": "rater", "name": "r1"}),
                                                            ("issue_link", {"role": "annotator", "name": "ann3"})]


def test_cookie_actions_from_another_site_are_refused(console):
    client = console
    for headers in ({"Sec-Fetch-Site": "same-site"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://evil.example:8000"}):
        refused = client.post("/api/admin/console/rollback", headers=headers)
        assert refused.status_code == 403 and "console's own page" in refused.json()["detail"]
    assert client.get("/api/admin/console/audit", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200  # reading is not an action
    allowed = client.post("/api/admin/console/rollback", headers={"Sec-Fetch-Site": "same-origin"})
    assert allowed.status_code != 403


# the serving plan: one change at a time, each on the plan it was based on ----------------------------------
class Contended:
    """A lock that sets ``waiting`` when a caller finds it taken (and then waits for it)."""

    def __init__(self, waiting: threading.Event):
        self.lock, self.waiting = threading.Lock(), waiting

    def __enter__(self):
        if not self.lock.acquire(blocking=False):
            self.waiting.set()
            self.lock.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.lock.release()


@both_databases
def test_a_plan_the_refresh_read_is_never_applied_over_a_newer_console_change(settings, store_engine, tmp_path, monkeypatch):
    """The server's refresh from the store (``plan_follower``) reads a plan another process stored; while it loads it,
    an operator promotes a version in the console. The plan the refresh read must not be applied after the console's
    change (it was, for one refresh interval)."""
    from organic.serve import app as server
    from organic.store import versions as store_versions

    seed(store_engine, tmp_path)
    set_serving(store_engine, {"base": 1.0}, note="promote")
    progress = threading.Event()  # the console's change ended, or found the plan being changed and waits its turn
    routers = []

    class Watched(Router):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.changing = Contended(progress)
            routers.append(self)

    monkeypatch.setattr(server, "Router", Watched)
    quiet = settings.model_copy(update={"plan_refresh_s": 0})  # no refresh but the one this test makes
    client = start(quiet, store_engine)
    other, read, go = {"base": 0.5, "cringe-it1": 0.5}, threading.Event(), threading.Event()
    real_serving = store_versions.serving

    def serving_then_pause(engine) -> dict:
        plan = real_serving(engine)
        if plan == other and not read.is_set():
            read.set()
            go.wait(WAIT_S)  # the refresh holds what it read while the operator acts
        return plan

    monkeypatch.setattr(store_versions, "serving", serving_then_pause)
    refresh = server.plan_follower(store_engine, routers[0], quiet)
    set_serving(store_engine, other, note="ab")  # `organic ab` in another process
    promoted = []

    def promote() -> None:
        promoted.append(client.post("/api/admin/console/promote", json={"version": "sft-1"}, headers=ADMIN))
        progress.set()

    refreshing, changing = threading.Thread(target=refresh, daemon=True), threading.Thread(target=promote, daemon=True)
    refreshing.start()
    try:
        assert read.wait(WAIT_S)
        changing.start()
        assert progress.wait(WAIT_S)
    finally:
        go.set()
        refreshing.join(WAIT_S)
        if changing.is_alive():
            changing.join(WAIT_S)
    assert promoted[0].status_code == 200, promoted[0].text
    assert serving(store_engine) == {"sft-1": 1.0}
    assert client.get("/api/admin/stats", headers=ADMIN).json()["serving"] == {"sft-1": 1.0}  # not the plan read before
    client.__exit__(None, None, None)


@both_databases
def test_a_reply_in_flight_on_a_retired_version_ends_and_then_its_backend_is_closed(settings, store_engine, tmp_path):
    seed(store_engine, tmp_path)
    set_serving(store_engine, {"base": 1.0}, note="promote")
    base = Closable("base", gated=True)
    with TestClient(create_app(settings, [base], engine=store_engine, shares={"base": 1.0})) as client:
        session(client)
        convo = client.post("/api/conversations").json()
        replies = []
        chatting = threading.Thread(target=lambda: replies.append(client.post(
            f"/api/conversations/{convo['id']}/messages?stream=false", json={"text": "hello there"}).json()), daemon=True)
        chatting.start()
        try:
            assert base.started.wait(WAIT_S)  # base is writing its reply
            promoted = client.post("/api/admin/console/promote", json={"version": "cringe-it1"}, headers=ADMIN)
            assert promoted.status_code == 200 and promoted.json()["serving"] == {"cringe-it1": 1.0}
            released()
            assert not base.closed.is_set()
        finally:
            base.go.set()
            chatting.join(WAIT_S)
        reply = replies[0]["reply"]
        assert (reply["model_version"], reply["from_model_crash"]) == ("base", False)
        assert reply["text"] == EchoBackend.reply([{"role": "user", "content": "hello there"}])
        released()
        assert base.closed.is_set()  # released once its reply ended
        assert set(versions_of_new_conversations(client, 5)) == {"cringe-it1"}


@both_databases
def test_a_change_overtaken_by_another_is_refused_and_nothing_of_it_is_stored(console, store_engine, monkeypatch):
    """Someone else (the watcher, `organic ab`, another server's console) changes the plan while the console checks its
    own change: the console's is refused with 409, not stored, not audited, not served."""
    real_load_missing = Router.load_missing

    def another_change_first(router, plan, load):
        set_serving(store_engine, {"cringe-it1": 1.0}, note="promote")  # between the console's look and its change
        return real_load_missing(router, plan, load)

    monkeypatch.setattr(Router, "load_missing", another_change_first)
    refused = console.post("/api/admin/console/promote", json={"version": "sft-1"})
    monkeypatch.undo()
    assert refused.status_code == 409, refused.text
    assert "changed meanwhile" in refused.json()["detail"] and "cringe-it1 100%" in refused.json()["detail"]
    assert serving(store_engine) == {"cringe-it1": 1.0} and console.get("/api/admin/console/audit").json() == []
    assert "sft-1" not in console.get("/api/admin/console/ab").json()["serving"]


@both_databases
def test_a_change_based_on_a_plan_no_longer_in_force_is_refused(console, store_engine):
    seen = console.get("/api/admin/console/ab").json()["plan_id"]
    set_serving(store_engine, {"base": 0.5, "cringe-it1": 0.5}, note="ab")  # `organic ab`, after the operator looked
    for action, body in (("promote", {"version": "sft-1"}), ("ab", {"shares": {"sft-1": 1.0}}), ("rollback", {})):
        refused = console.post(f"/api/admin/console/{action}", json={**body, "based_on": seen})
        assert refused.status_code == 409 and "changed meanwhile" in refused.json()["detail"], (action, refused.text)
    assert serving(store_engine) == {"base": 0.5, "cringe-it1": 0.5} and console.get("/api/admin/console/audit").json() == []
    now = console.get("/api/admin/console/ab").json()["plan_id"]
    assert now > seen
    promoted = console.post("/api/admin/console/promote", json={"version": "sft-1", "based_on": now})
    assert promoted.status_code == 200 and serving(store_engine) == {"sft-1": 1.0}
    back = console.post("/api/admin/console/rollback", json={"based_on": console.get("/api/admin/console/ab").json()["plan_id"]})
    assert back.status_code == 200 and serving(store_engine) == {"base": 0.5, "cringe-it1": 0.5}


@both_databases
def test_a_plan_change_and_its_audit_entry_are_stored_together_or_not_at_all(console, store_engine, monkeypatch):
    from organic.store import audit

    def full(*args, **kwargs):
        raise RuntimeError("the audit log is full")

    monkeypatch.setattr(audit, "add", full)
    with pytest.raises(RuntimeError, match="the audit log is full"):
        console.post("/api/admin/console/promote", json={"version": "sft-1"})
    monkeypatch.undo()
    assert serving(store_engine) == {"base": 1.0} and console.get("/api/admin/console/audit").json() == []
    assert set(versions_of_new_conversations(console, 5)) == {"base"}


@both_databases
def test_a_flagged_users_rating_counts_are_the_people_panels(console, store_engine):
    from organic.store.bulk import write_conversations
    from organic.store.records import ConversationRecord, MessageRecord

    rated = [MessageRecord("human", "nasty words again", safety=UNSAFE),
             MessageRecord("bot", "reply one", model_version="base", safety=SAFE, thumb="down", reason="rude"),
             MessageRecord("human", "more nasty words", safety=UNSAFE),
             MessageRecord("bot", "reply two", model_version="base", safety=SAFE, thumb="up")]
    write_conversations(store_engine, [ConversationRecord("c-troll-rates", "troll-1", rated, source="live", model_version="base",
                                                          created_at=day(0, hour=10), age_confirmed=True, save_conversations=True)])
    people = {r["user"]: r for r in console.get("/api/admin/console/people").json()["raters"]}
    flagged = {u["user"]: u for u in console.get("/api/admin/console/trolls?features=tfidf").json()["flagged"]}
    assert people["troll-1"] == {"user": "troll-1", "ratings": 2, "thumbs_down": 1, "thumbs_up": 1}
    assert {k: flagged["troll-1"][k] for k in people["troll-1"]} == people["troll-1"]
