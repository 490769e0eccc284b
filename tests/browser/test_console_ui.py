"""The operator's console in real headless Chromium on a seeded store (``console_store.py``): log in, every panel filled,
the A/B shares changed and new conversations following them, promote and roll back with their audit rows; the
admin token never in an address, and no request to another host (each one is intercepted and fails the test)."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from console_store import ANSWER, seed
from organic.serve.app import build_app
from organic.serve.local import LocalServer
from organic.settings import Settings
from organic.store import AuditEntry
from organic.store.versions import serving, set_serving
from scripted_chat import CONSENT

TOKEN = "admin-secret"


@pytest.fixture
def settings(tmp_path, database_url):
    return Settings(home=tmp_path / "home", database_url=database_url, admin_token=TOKEN, backend="echo")


@pytest.fixture
def console_server(settings, store_engine, tmp_path):
    """Base URL of the app as `organic serve` makes it (the store's plan: base only) on a real uvicorn server."""
    seed(store_engine, tmp_path, settings.home / "report")
    set_serving(store_engine, {"base": 1.0}, note="promote")
    with LocalServer(build_app(settings, store_engine)) as base:
        yield base


@pytest.fixture
def requests(page, console_server):
    """Every address the browser asks for; one on another host is aborted, and the test fails at its end, as it does
    when the page's Content-Security-Policy stopped one before it was sent."""
    seen, foreign = [], []
    page.on("console", lambda m: foreign.append(m.text) if "Content Security Policy" in m.text else None)

    def handle(route):
        url = route.request.url
        seen.append(url)
        if url == console_server or url.startswith(console_server + "/"):
            route.continue_()
        else:
            foreign.append(url)
            route.abort()

    page.context.route("**/*", handle)
    yield seen
    assert not foreign, f"the console asked another host for {foreign}"


def log_in(page, base: str, name: str = "alice") -> None:
    page.goto(base + "/admin")
    expect(page.locator("#login")).to_be_visible()
    page.fill("#token", TOKEN)
    page.fill("#name", name)
    page.click("#login-form button")
    expect(page.locator("#whoami")).to_have_text(f"logged in as {name}")


def new_conversations(base: str, n: int) -> set[str]:
    with httpx.Client(base_url=base, timeout=30) as client:
        assert client.post("/api/session", json=CONSENT).status_code == 200
        return {client.post("/api/conversations").json()["model_version"] for _ in range(n)}


def test_log_in_and_see_every_panel(page, console_server, requests):
    page.goto(console_server + "/admin")
    page.fill("#token", "not-the-token")
    page.click("#login-form button")
    expect(page.locator("#status")).to_have_text("wrong admin token")
    expect(page.locator("#console")).to_be_hidden()
    log_in(page, console_server)

    traffic = page.locator("#traffic")
    expect(traffic.locator('[data-plot="conversations"] rect')).to_have_count(30)
    expect(traffic.locator('[data-plot="active-users"] rect')).to_have_count(30)
    expect(traffic.locator('[data-plot="version-shares"]')).to_contain_text("63.6% (7)")  # base: 7 of 11
    feedback = page.locator("#feedback")
    expect(feedback.locator('[data-plot="down-by-version"] circle')).to_have_count(2)
    expect(feedback.locator('[data-plot="reasons"]')).to_contain_text("Nonsensical / incorrect")
    expect(feedback.locator("table").first).to_contain_text("15.8% [")  # base: 3 thumbs down of 19 bot messages
    expect(page.locator("#canned")).to_contain_text("Canned safety replies: 22.2%")
    expect(feedback).to_contain_text(ANSWER)
    ab = page.locator("#ab")
    expect(ab.locator("input[data-version]")).to_have_count(3)
    expect(ab).to_contain_text("base (incumbent)")
    expect(page.locator("#people")).to_contain_text("h0")
    page.select_option("#troll-features", "tfidf")
    page.click("#score-trolls")
    expect(page.locator("#trolls")).to_contain_text("6 of their 6 messages failed the safety check")
    expect(page.locator("#annotation")).to_contain_text("ann1 & ann2")
    expect(page.locator("#agreement")).to_contain_text("Fleiss' kappa")
    models = page.locator("#models")
    expect(models).to_contain_text("judged bad 40.0% [27.6, 53.8] (20/50)")
    expect(models.locator("tr", has_text="sft-1")).to_contain_text("no eval recorded")
    with page.expect_popup() as opened:
        page.click("#report a")
    expect(opened.value.locator("h1")).to_have_text("The organic-data report")

    page.select_option("#link-role", "rater")
    page.fill("#link-name", "r1")
    page.click("#link-form button")
    expect(page.locator("#link-out")).to_have_value(re.compile(rf"^{re.escape(console_server)}/compare#token=\S+$"))

    assert TOKEN not in page.url and not any(TOKEN in url for url in requests)
    assert "organic_admin" not in page.evaluate("document.cookie")  # HttpOnly: no script can read the session
    cookie = next(c for c in page.context.cookies() if c["name"] == "organic_admin")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and TOKEN not in cookie["value"]
    page.click("#logout")
    expect(page.locator("#login")).to_be_visible()
    page.reload()
    expect(page.locator("#login")).to_be_visible()


def test_change_shares_promote_and_roll_back(page, console_server, store_engine, requests):
    log_in(page, console_server)
    ab = page.locator("#ab")
    page.fill('#ab input[data-version="base"]', "0")
    page.fill('#ab input[data-version="cringe-it1"]', "100")
    page.click("#apply-shares")
    expect(page.locator("#confirm-text")).to_have_text("Split new conversations: cringe-it1 100%?")
    page.click("#confirm-no")  # asked, declined: nothing changes
    expect(page.locator("#confirm")).to_be_hidden()
    assert serving(store_engine) == {"base": 1.0} and new_conversations(console_server, 5) == {"base"}

    page.click("#apply-shares")
    page.click("#confirm-yes")
    expect(page.locator("#ab-done")).to_have_text("Now serving cringe-it1 100% (audit entry 1).")
    assert new_conversations(console_server, 10) == {"cringe-it1"}
    expect(page.locator("#audit tbody tr").first).to_contain_text("alice")

    ab.locator('button[data-version="base"]').click()
    expect(page.locator("#confirm-text")).to_have_text("Serve base to every new conversation?")
    page.click("#confirm-yes")
    expect(page.locator("#ab-done")).to_have_text("Now serving base 100% (audit entry 2).")
    assert new_conversations(console_server, 10) == {"base"}

    page.click("#rollback")
    page.click("#confirm-yes")
    expect(page.locator("#ab-done")).to_have_text("Now serving cringe-it1 100% (audit entry 3).")
    assert new_conversations(console_server, 10) == {"cringe-it1"}
    expect(page.locator("#audit tbody tr")).to_have_count(3)
    expect(page.locator("#audit tbody tr").first).to_contain_text("rollback")
    expect(page.locator("#audit tbody tr").nth(1)).to_contain_text("promote")
    with store_engine.connect() as conn:
        rows = conn.execute(select(AuditEntry.who, AuditEntry.action).order_by(AuditEntry.id)).all()
    assert [tuple(r) for r in rows] == [("alice", "ab"), ("alice", "promote"), ("alice", "rollback")]

    page.fill('#ab input[data-version="base"]', "50")
    page.fill('#ab input[data-version="cringe-it1"]', "40")
    page.click("#apply-shares")
    page.click("#confirm-yes")
    expect(page.locator("#status")).to_have_text("the shares add up to 0.9; they must add up to 1")
    assert serving(store_engine) == {"cringe-it1": 1.0}
    assert not any(TOKEN in url for url in requests)
