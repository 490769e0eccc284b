"""The compare page in real headless Chromium: a token link, two replies side by side with no model names, a vote
counted in the results, text shown as text, and the end of the items said."""

from __future__ import annotations


import httpx
import pytest
from playwright.sync_api import expect


ADMIN = {"Authorization": "Bearer admin-secret"}
HOSTILE = '<b id="bold">bold</b><img src=x onerror="window.pwned=1">'


@pytest.fixture
def compare_server(live_server):
    """Base URL of the whole app (its compare router included) on a real uvicorn server, on the test store."""
    return live_server()


def link(base: str, name: str = "rater1") -> str:
    response = httpx.post(f"{base}/api/admin/raters", json={"name": name}, headers=ADMIN, timeout=30)
    assert response.status_code == 201, response.text
    return base + response.json()["url"]


def test_compare_two_replies_blind_and_vote(page, compare_server):
    item = {"context": [{"role": "user", "content": "What's the capital of Australia?"}],
            "model_a": "base-model-x", "model_b": "cringe-model-y", "reply_a": "Sydney, I think.", "reply_b": "It is Canberra."}
    assert httpx.post(f"{compare_server}/api/admin/comparisons", json=item, headers=ADMIN, timeout=30).status_code == 201
    page.goto(link(compare_server))
    expect(page.locator("#whoami")).to_have_text("rater1 · 0 compared · 1 left")
    assert "token" not in page.url  # the token leaves the address bar
    expect(page.locator("#context li .text")).to_have_text(["What's the capital of Australia?"])
    a, b = page.locator("#reply-A"), page.locator("#reply-B")
    expect(a).not_to_be_empty()
    shown = {a.text_content(), b.text_content()}
    assert shown == {"Sydney, I think.", "It is Canberra."}
    content = page.content()
    assert "base-model-x" not in content and "cringe-model-y" not in content  # blind
    canberra_side = "A" if a.text_content() == "It is Canberra." else "B"
    page.fill("#reason", "Canberra is right")
    page.click(f'#choices button[data-choice="{canberra_side}"]')
    expect(page.locator("#whoami")).to_have_text("rater1 · 1 compared · 0 left")
    expect(page.locator("#status")).to_contain_text("nothing left to compare")
    expect(page.locator("#choices")).to_be_hidden()
    [pair] = httpx.get(f"{compare_server}/api/admin/comparisons/results", headers=ADMIN, timeout=30).json()["pairs"]
    assert (pair["model_a"], pair["wins"], pair["losses"], pair["ties"]) == ("base-model-x", 0, 1, 0)


def test_text_is_shown_as_text_and_keys_vote(page, compare_server):
    item = {"context": [{"role": "user", "content": HOSTILE}], "model_a": "m1", "model_b": "m2",
            "reply_a": HOSTILE + " a", "reply_b": HOSTILE + " b"}
    httpx.post(f"{compare_server}/api/admin/comparisons", json=[item, item], headers=ADMIN, timeout=30)
    page.goto(link(compare_server))
    expect(page.locator("#context li .text")).to_have_text([HOSTILE])
    expect(page.locator("#reply-A")).to_contain_text(HOSTILE)
    assert page.locator("#bold").count() == 0 and page.locator("main img, #work img").count() == 0
    page.keyboard.press("t")  # t = about the same
    expect(page.locator("#whoami")).to_have_text("rater1 · 1 compared · 1 left")
    page.keyboard.press("b")
    expect(page.locator("#whoami")).to_have_text("rater1 · 2 compared · 0 left")
    assert page.evaluate("window.pwned") is None
    results = httpx.get(f"{compare_server}/api/admin/comparisons/results", headers=ADMIN, timeout=30).json()
    assert results["sides"] == {"A": 0, "B": 1, "tie": 1}


def test_keys_pressed_while_the_next_item_loads_are_refused_and_the_page_says_so(page, compare_server):
    item = {"context": [{"role": "user", "content": "Hi there"}], "model_a": "m1", "model_b": "m2",
            "reply_a": "Hello!", "reply_b": "Hey."}
    httpx.post(f"{compare_server}/api/admin/comparisons", json=[item, item], headers=ADMIN, timeout=30)
    page.goto(link(compare_server))
    expect(page.locator("#whoami")).to_have_text("rater1 · 0 compared · 2 left")
    held = []
    page.route("**/api/compare/next", lambda route: held.append(route))  # the next item waits until released
    page.keyboard.press("t")
    page.wait_for_function("document.getElementById('busy').hidden === false")
    expect(page.locator("#busy")).to_be_visible()
    expect(page.locator('#choices button[data-choice="B"]')).to_be_disabled()
    page.keyboard.press("b")  # refused: no item is on screen
    page.wait_for_timeout(200)  # time for a wrongly accepted key to reach the server; not a timing assertion
    for _ in range(200):  # the held request reaches the handler while the page waits on it
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the page never asked for the next item"
    held[0].continue_()
    page.unroute("**/api/compare/next")
    expect(page.locator("#whoami")).to_have_text("rater1 · 1 compared · 1 left")
    expect(page.locator("#busy")).to_be_hidden()
    results = httpx.get(f"{compare_server}/api/admin/comparisons/results", headers=ADMIN, timeout=30).json()
    assert results["sides"] == {"A": 0, "B": 0, "tie": 1}
    page.keyboard.press("a")  # once the item is shown, keys vote again
    expect(page.locator("#whoami")).to_have_text("rater1 · 2 compared · 0 left")


def test_without_a_valid_token_the_page_asks_for_one(page, compare_server):
    page.goto(compare_server + "/compare#token=forged")
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#status")).to_contain_text("invalid rater token")
    page.fill("#token", link(compare_server).split("#token=")[1])
    page.click("#login-form button")
    expect(page.locator("#work")).to_be_visible()
    expect(page.locator("#status")).to_contain_text("nothing left to compare")  # no items yet
