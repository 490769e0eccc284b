"""The annotation page in real headless Chromium: a token link, an utterance in its conversation, a label
stored, sampling switched, "Other" only for bot replies, and text shown as text, never as HTML."""

from __future__ import annotations

import json

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from organic.formats.ingest import import_bb3x
from organic.store import Annotation, Message
from support import FIXTURES

HOSTILE = '<b id="bold">bold</b><img src=x onerror="window.pwned=1"><script>window.pwned=1</script>'


@pytest.fixture
def annotation_server(live_server):
    """Base URL of the whole app (its annotation router included) on a real uvicorn server, on the test store."""
    return live_server()


def link(base: str, name: str = "ann1") -> str:
    response = httpx.post(f"{base}/api/admin/annotators", json={"name": name}, headers={"Authorization": "Bearer admin-secret"}, timeout=30)
    assert response.status_code == 201, response.text
    return base + response.json()["url"]


def test_label_an_utterance_in_its_conversation(page, annotation_server, engine):
    import_bb3x(engine, [FIXTURES / "bb3x_sample.jsonl"])
    page.goto(link(annotation_server))
    expect(page.locator("#whoami")).to_have_text("ann1 · 0 labelled")
    assert "token" not in page.url  # the token leaves the address bar
    # disliked first: c-002's wrong answer, after its question
    page.select_option("#sampling", "disliked")
    target = page.locator("#context li.target")
    expect(target.locator(".text")).to_have_text("The capital of Australia is Sydney.")
    expect(page.locator("#context li")).to_have_count(2)
    expect(page.locator("#context li").first.locator(".text")).to_have_text("What's the capital of Australia?")
    expect(page.locator('#labels button[data-label="other"]')).to_be_visible()  # a bot reply: Other allowed
    page.click('#labels button[data-label="nonsensical"]')
    expect(page.locator("#whoami")).to_have_text("ann1 · 1 labelled")
    with engine.connect() as conn:
        stored = conn.execute(select(Message.text, Annotation.label, Annotation.annotator)
                              .join(Message, Annotation.message_id == Message.id).where(Annotation.annotator == "ann1")).all()
    assert [tuple(r) for r in stored] == [("The capital of Australia is Sydney.", "nonsensical", "ann1")]

    page.select_option("#sender", "human")  # human utterances only: no Other
    expect(page.locator("#context li.target")).to_have_class("human target")
    expect(page.locator('#labels button[data-label="other"]')).to_be_hidden()
    page.keyboard.press("1")  # 1 = Good
    expect(page.locator("#whoami")).to_have_text("ann1 · 2 labelled")


def test_text_is_shown_as_text_and_the_end_is_said(page, annotation_server, engine, tmp_path):
    convo = {"user_pseudo_id": "u-x", "convo_id": "c-x", "message_history": [
        {"text": HOSTILE, "sender": "human"}, {"text": HOSTILE + " again", "sender": "bot"}]}
    path = tmp_path / "hostile.jsonl"
    path.write_text(json.dumps(convo) + "\n")
    import_bb3x(engine, [path])
    page.goto(link(annotation_server))
    page.select_option("#sender", "bot")
    expect(page.locator("#context li.target .text")).to_have_text(HOSTILE + " again")
    expect(page.locator("#context li.human .text")).to_have_text(HOSTILE)
    assert page.locator("#context #bold").count() == 0 and page.locator("#context img").count() == 0
    page.click('#labels button[data-label="inappropriate"]')
    expect(page.locator("#status")).to_contain_text("nothing left to annotate")
    assert page.evaluate("window.pwned") is None


def test_without_a_valid_token_the_page_asks_for_one(page, annotation_server, engine):
    page.goto(annotation_server + "/annotate#token=forged")
    expect(page.locator("#login")).to_be_visible()
    expect(page.locator("#status")).to_contain_text("invalid annotator token")
    token = link(annotation_server).split("#token=")[1]
    page.fill("#token", token)
    page.click("#login-form button")
    expect(page.locator("#work")).to_be_visible()
    expect(page.locator("#status")).to_contain_text("nothing left to annotate")  # an empty store
