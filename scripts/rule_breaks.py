"""Deliberate breaks of the loop's rules: each made alone in the source, the tests that cover it run, the source
restored. A break the tests pass is a missing test.

    python scripts/rule_breaks.py            # every break (about 15 minutes on 2 cores)
    python scripts/rule_breaks.py 3 6        # some of them, by number

Needs the test services (``bash scripts/services.sh`` writes ``.services.env``). A break whose line moved or changed
says PATTERN: bring it up to date with the code rather than dropping it."""
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
S = "src/organic/"
M = [
 ("thumb label swapped", S+"examples.py", 'return (GOOD if message.thumb == Thumb.UP else BAD), "thumb"', 'return (BAD if message.thumb == Thumb.UP else GOOD), "thumb"', "tests/test_examples.py"),
 ("crowd tie decides", S+"examples.py", "if good != bad:", "if good >= bad:", "tests/test_examples.py"),
 ("canned replies trained", S+"examples.py", "if message.sender == Sender.BOT.value and not is_canned(message):", "if message.sender == Sender.BOT.value:", "tests/test_examples.py"),
 ("feedback exchange trained", S+"examples.py", " or module in (FEEDBACK_REQUEST, FEEDBACK_THANKS)", "", "tests/test_examples.py"),
 ("3 copies of a positive", S+"examples.py", "copies[ex.reply] > max_copies", "copies[ex.reply] > max_copies + 1", "tests/test_examples.py"),
 ("no balancing", S+"examples.py", "    if balance:\n", "    if False:\n", "tests/test_examples.py tests/test_loop.py"),
 ("held-out trained", S+"loop.py", "held_out(c.external_id, config.held_out_share, config.seed) == held)", "(held_out(c.external_id, config.held_out_share, config.seed) == held or not held))", "tests/test_loop.py"),
 ("flagged users trained", S+"examples.py", "c for c in convos if c.user_pseudo_id not in exclude_users", "c for c in convos if True", "tests/test_examples.py tests/test_loop.py"),
 ("train --exclude-trolls ignored", S+"loop.py", "exclude |= troll_ids(score_store(engine))", "exclude |= set()", "tests/cli/test_learning.py tests/test_loop.py"),
 ("unsafe feedback answer as positive", S+"examples.py", "if answer is not None and not unsafe_verdict(answer.safety):", "if answer is not None:", "tests/test_examples.py"),
 ("blocked feedback kept", S+"examples.py", "if verdict.blocked}", "if False}", "tests/test_examples.py"),
 ("release without consent filter", S+"formats/export.py", 'filters = replace(filters, consent="release")', "pass", "tests/formats/test_export.py"),
 ("release consent SQL", S+"store/read.py", "query = query.where(User.allow_release.is_(True))", "query = query", "tests/formats/test_export.py"),
 ("release unscrubbed", S+"formats/export.py", "convo = scrub(convo) if scrub else convo", "convo = convo", "tests/formats/test_export.py"),
 ("unsaved users stored", S+"serve/server.py", "self.stores[consent.save_conversations].create_user(consent)", "self.stores[True].create_user(consent)", "tests/serve/test_api.py tests/serve/test_live_server.py"),
 ("feedback asked after canned reply", S+"serve/turn.py", "None if canned else await", "await", "tests/serve/test_api.py tests/serve/test_feedback_link.py tests/serve/test_live_server.py"),
 ("feedback asked after thumbs up", S+"serve/turn.py", "        if thumb != Thumb.DOWN:\n            return rating, None\n", "", "tests/serve/test_api.py tests/serve/test_feedback_link.py tests/serve/test_live_server.py"),
 ("age not required", S+"serve/routes/session.py", "if not body.age_confirmed:", "if False:", "tests/serve/test_api.py tests/serve/test_feedback_link.py tests/serve/test_live_server.py"),
 ("deleted user kept", S+"store/users.py", "conn.execute(delete(User).where(User.id == user_id))", "pass", "tests/serve/test_api.py tests/serve/test_live_server.py tests/store tests/formats"),
 ("crowd tie majority", S+"taxonomy.py", "if not top or (len(top) == 2 and top[0][1] == top[1][1]):", "if not top:", "tests/test_taxonomy.py tests/evaluate"),
 ("reward trained on flagged", S+"loop.py", 'sources=("thumb", "crowd"), exclude_users=flagged),', 'sources=("thumb", "crowd")),', "tests/test_loop.py"),
 ("rater/evaluator halves merged", S+"evaluate/labelled.py", 'return "rater" if _unit(f"half:{conversation}") < 0.5 else "evaluator"', 'return "rater" if _unit(f"half:{conversation}") < 2 else "evaluator"', "tests/evaluate"),
 ("judge fitted on both halves", S+"evaluate/judge.py", 'items = [i for i in items if part == "all" or i.split != "train" or labelled.half_of(i.conversation) == part]', "items = list(items)", "tests/evaluate/test_learned_judge.py"),
 ("loop scores with the raters' judge", S+"loop.py", "judge=evaluator, rater=rater", "judge=rater, rater=rater", "tests/test_loop.py"),
 ("people rate with the evaluator's judge", S+"loop.py", "rater=judge_rater(rater)", "rater=judge_rater(evaluator)", "tests/test_loop.py"),
]
only = sys.argv[1:]
missed = []
for i, (name, path, old, new, tests) in enumerate(M):
    if only and str(i) not in only:
        continue
    p = ROOT / path
    src = p.read_text()
    if src.count(old) != 1:
        print(f"{i:2} {name}: PATTERN x{src.count(old)}", flush=True)
        missed.append(name)
        continue
    p.write_text(src.replace(old, new))
    t = time.time()
    try:
        r = subprocess.run(f". ./.services.env && HF_HUB_OFFLINE=1 timeout 900 {sys.executable} -m pytest -x -q -n 2 -p no:cacheprovider {tests}",
                           shell=True, cwd=ROOT, capture_output=True, text=True, executable="/bin/bash")
    finally:
        p.write_text(src)
    failed = [l for l in r.stdout.splitlines() if l.startswith("FAILED")]
    status = "CAUGHT" if r.returncode in (1, 2) and failed else ("MISSED" if r.returncode == 0 else f"rc={r.returncode}")
    print(f"{i:2} {name}: {status} ({time.time()-t:.0f}s) {failed[:1]}", flush=True)
    if status != "CAUGHT":
        missed.append(name)
    if status.startswith("rc"):  # a crash or a timeout, not a test's verdict
        print(r.stdout[-1500:], r.stderr[-800:])
print(f"{len(missed)} not caught" + (": " + "; ".join(missed) if missed else ""))
sys.exit(1 if missed else 0)
