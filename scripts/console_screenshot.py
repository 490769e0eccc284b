"""The console's screenshot in the README (``docs/console.png``): the test store of ``tests/console_store.py`` with an A/B
and a watcher's round in its audit log, served by a real uvicorn server and shot in headless Chromium.

    python scripts/console_screenshot.py [--out docs/console.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from console_store import seed  # noqa: E402

from organic.serve.app import build_app  # noqa: E402
from organic.serve.local import LocalServer  # noqa: E402
from organic.settings import Settings  # noqa: E402
from organic.store import audit, connect  # noqa: E402
from organic.store.versions import set_serving  # noqa: E402

TOKEN = "screenshot"


def watcher_round(engine) -> None:
    """The audit entries of one watcher round that ended in an A/B, as ``organic loop --watch`` writes them."""
    steps = [("analyze", "24 ratings of 7 users; 1 flagged"), ("reward", "held-out ROC AUC 0.71 on 12 thumbs"),
             ("train", "1 CRINGE iteration from base: cringe-it1"),
             ("eval", "judged bad 40.0% vs 48.0% on 50 held-out contexts"),
             ("gate", "the candidate passed the offline gate"), ("ab", "cringe-it1 serves 40% of new conversations")]
    audit.record(engine, "watcher", "watch_start", {"round": 1, "message": "24 new ratings and feedback answers"})
    for step, message in steps:
        audit.record(engine, "watcher", "ab" if step == "ab" else f"watch_{step}", {"round": 1, "step": step, "message": message})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/console.png"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        settings = Settings(home=tmp / "home", database_url=f"sqlite:///{tmp / 'organic.db'}", admin_token=TOKEN,
                            backend="echo")
        engine = connect(settings.url)
        seed(engine, tmp, settings.home / "report")
        set_serving(engine, {"base": 1.0}, note="promote")
        watcher_round(engine)
        set_serving(engine, {"base": 0.6, "cringe-it1": 0.4}, note="watch round 1: A/B")
        with LocalServer(build_app(settings, engine)) as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium")
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(base + "/admin")
            page.fill("#token", TOKEN)
            page.fill("#name", "alice")
            page.click("#login-form button")
            expect(page.locator("#whoami")).to_have_text("logged in as alice")
            page.wait_for_load_state("networkidle")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
            browser.close()
        engine.dispose()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
