"""The web chat in real headless Chromium: consent, a streamed reply, thumbs down with a reason, the
feedback question and answer, "why this reply?", and user text shown as text, never as HTML."""

from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from organic.store import Feedback, Message, User
from scripted_chat import ScriptedBackend

HOSTILE = '<b id="bold">bold</b><img src=x onerror="window.pwned=1"><script>window.pwned=1</script>'


def test_consent_chat_rate_and_feedback_end_to_end(page, live_server, store_engine):
    base = live_server([ScriptedBackend(["The capital of Australia is Sydney. It is a big city!", "Glad to help."])])
    page.goto(base)
    expect(page.locator("#consent")).to_be_visible()
    expect(page.locator("#start")).to_be_disabled()
    page.check("#age")
    page.check("#terms")
    expect(page.locator("#release")).to_be_disabled()  # release needs "save" first
    page.check("#save")
    page.check("#release")
    page.click("#start")
    expect(page.locator("#chat")).to_be_visible()

    page.fill("#input", "What is the capital of Australia?")
    page.keyboard.press("Enter")
    bot = page.locator("li.bot[data-id]").first
    expect(bot.locator(".text")).to_have_text("The capital of Australia is Sydney. It is a big city!")

    bot.locator(".thumb-down").click()
    bot.locator('.reason[data-reason="nonsensical"]').click()
    expect(bot.locator(".thumb-down")).to_have_attribute("aria-pressed", "true")
    question = page.locator("li.bot").nth(1)
    expect(question).to_have_text("Sorry about that! What should I have said instead?")

    page.fill("#input", "Canberra is the capital.")
    page.click("#send")
    expect(page.locator("li.bot").nth(2)).to_contain_text("Thanks, that helps me learn!")

    bot.locator(".why").click()
    expect(page.locator("#trace")).to_contain_text('"model_version": "scripted-v1"')
    expect(page.locator("#trace")).to_contain_text('"duo_safety": "__ok__"')
    page.keyboard.press("Escape")

    with Session(store_engine) as s:
        user = s.scalar(select(User))
        assert (user.age_confirmed, user.save_conversations, user.allow_release) == (True, True, True)
        feedback = s.scalar(select(Feedback))
        assert (feedback.thumb, feedback.reason) == ("down", "nonsensical")
        rated = s.get(Message, feedback.message_id)
        assert rated.text.startswith("The capital of Australia is Sydney") and rated.sender == "bot"
        answer = s.get(Message, feedback.feedback_message_id)
        assert answer.text == "Canberra is the capital." and answer.is_dislike_feedback and answer.sender == "human"


def test_html_in_messages_is_shown_as_text(page, live_server):
    base = live_server()  # the echo backend repeats the user's words back
    page.goto(base)
    for box in ("#age", "#terms"):
        page.check(box)
    page.click("#start")
    page.fill("#input", HOSTILE)
    page.click("#send")
    expect(page.locator("li.bot[data-id]")).to_have_count(1)
    expect(page.locator("li.human .text")).to_have_text(HOSTILE)
    assert page.locator("#messages #bold").count() == 0 and page.locator("#messages img").count() == 0
    assert page.evaluate("window.pwned") is None


def test_line_and_paragraph_separators_stream_whole(page, live_server):
    base = live_server()  # the echo backend repeats the user's words back, U+2028 and U+2029 included
    page.goto(base)
    for box in ("#age", "#terms"):
        page.check(box)
    page.click("#start")
    text = "one\u2028two\u2029three"
    page.fill("#input", text)
    page.click("#send")
    expect(page.locator("li.bot[data-id]")).to_have_count(1)
    expect(page.locator("li.bot .text")).to_contain_text("three")
    assert "one\u2028two\u2029three" in page.locator("li.bot .text").text_content()


def test_rating_can_be_withdrawn_in_the_ui(page, live_server, store_engine):
    base = live_server()
    page.goto(base)
    for box in ("#age", "#terms", "#save"):
        page.check(box)
    page.click("#start")
    page.fill("#input", "hello")
    page.click("#send")
    bot = page.locator("li.bot[data-id]")
    bot.locator(".thumb-up").click()
    expect(bot.locator(".thumb-up")).to_have_attribute("aria-pressed", "true")
    with Session(store_engine) as s:
        assert s.scalar(select(Feedback.thumb)) == "up"
    bot.locator(".thumb-up").click()
    expect(bot.locator(".thumb-up")).to_have_attribute("aria-pressed", "false")
    with Session(store_engine) as s:
        assert s.scalar(select(Feedback)) is None


def test_a_user_withdraws_release_and_deletes_their_data_from_the_page(page, live_server, store_engine):
    base = live_server()
    page.goto(base)
    for box in ("#age", "#terms", "#save", "#release"):
        page.check(box)
    page.click("#start")
    page.fill("#input", "hello there")
    page.click("#send")
    expect(page.locator("li.bot[data-id]")).to_have_count(1)
    page.click("#my-data")
    with Session(store_engine) as s:
        pseudo_id = s.scalar(select(User.pseudo_id))
    expect(page.locator("#my-id")).to_have_text(pseudo_id)  # the id `organic user delete` takes
    expect(page.locator("#my-release")).to_be_checked()
    page.uncheck("#my-release")
    expect(page.locator("#data-status")).to_have_text("Saved: public release withdrawn.")
    with Session(store_engine) as s:
        assert s.scalar(select(User.allow_release)) is False
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete-me")
    expect(page.locator("#consent")).to_be_visible()
    with Session(store_engine) as s:
        assert s.scalar(select(func.count()).select_from(User)) == 0
        assert s.scalar(select(func.count()).select_from(Message)) == 0
