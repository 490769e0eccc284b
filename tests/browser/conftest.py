"""Real headless Chromium (Debian's package) driven by Playwright for Python; never `playwright install`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # this machine has no network: don't let Chromium try


@pytest.fixture(scope="module")  # module: Playwright's sync API holds an event loop that asyncio.run elsewhere must not meet
def browser():
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium package (scripts/services.sh does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture(autouse=True)
def _patient_assertions():
    from playwright.sync_api import expect

    expect.set_options(timeout=20_000)


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)  # actions; and assertions get as long (5 s is short on a busy 2-core machine)
    yield page
    context.close()
