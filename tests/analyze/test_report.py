"""The report from a BB3x file, from the store and from flat exports, with figures counted by hand from
tests/fixtures/bb3x_sample.jsonl:

conversation  user     messages                                         notes
c-001         alice    human, bot (liked; crowd good 2 + off_topic 1), human (crowd good 3)
c-002         bob      human, bot (disliked: nonsensical; reward __notok__), bot, human (feedback), bot (liked)
c-003         troll    human (unsafe), canned bot (disliked), human, canned bot (disliked), human, crash bot
c-004         chloé    human, bot (no verdicts)
c-005         dave     no messages: not in the message table, so not counted
c-006         erin     human, bot (no verdicts)
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import insert, select

from organic.analyze.figures import annotator_pairs
from organic.analyze.report import build_report
from organic.formats.export import export
from organic.formats.ingest import import_bb3x
from organic.store import Annotation, Message
from support import FIXTURES, both_databases

SAMPLE = FIXTURES / "bb3x_sample.jsonl"
COUNTS = {"users": 5, "conversations": 5, "messages": 18, "bot_messages": 9, "human_messages": 9, "thumbs_up": 2,
          "thumbs_down": 3, "dislike_feedback_messages": 1, "feedback_items": 6, "canned_safety_replies": 3,
          "model_crash_replies": 1, "annotated_messages": 2, "annotations": 6}


def percent(cell: dict) -> tuple[int, int]:
    return cell["count"], cell["n"]


def check_sample_figures(figures: dict) -> None:
    assert {k: figures[k] for k in COUNTS} == COUNTS
    assert percent(figures["rating"]["rated"]) == (5, 9)
    assert percent(figures["rating"]["up_share_of_thumbs"]) == (2, 5)
    assert {r["reason"]: r["count"] for r in figures["reasons"]} == {"nonsensical": 1, "agree_sensitive": 1, "disagree_sensitive": 1}
    # lengths 3, 5, 6, 2, 2 -> mean 18/5, median 3, max 6
    length = figures["conversation_length"]["messages"]
    assert (length["mean"], length["median"], length["max"]) == (3.6, 3.0, 6.0)
    assert figures["conversation_length"]["histogram"] == [[2, 2], [3, 1], [5, 1], [6, 1]]
    assert percent(figures["activity_per_user"]["users_who_rated"]) == (3, 5)  # alice, bob, troll
    # one adversarial conversation: c-003, whose first human message failed the safety check
    assert figures["conversation_kinds"]["standard"] == 4 and percent(figures["conversation_kinds"]["adversarial"]) == (1, 5)
    assert percent(figures["safety"]["unsafe_human_messages"]) == (1, 7)  # 2 human messages have no verdict

    table = figures["table2"]["combined"]
    # humans: 6 Good, 1 Inappropriate of 7 judged; the standard ones (c-001, c-002) are all Good
    assert table["all"]["human"]["n"] == 7 and percent(table["all"]["human"]["good"]) == (6, 7)
    assert percent(table["all"]["human"]["inappropriate"]) == (1, 7)
    assert percent(table["standard"]["human"]["good"]) == (4, 4)
    assert percent(table["adversarial"]["human"]["inappropriate"]) == (1, 3)
    # bots: b1 Good by the crowd, b2 Other by its __notok__ reward, the other 5 judged ones Good by their verdicts
    assert percent(table["all"]["bot"]["good"]) == (6, 7) and percent(table["all"]["bot"]["other"]) == (1, 7)
    assert percent(table["standard"]["bot"]["other"]) == (1, 4) and percent(table["adversarial"]["bot"]["good"]) == (3, 3)
    assert table["all"]["bot"]["good"]["ci95"] == [48.687, 97.432]  # Wilson, 6 of 7
    crowd = figures["table2"]["crowd"]["all"]
    assert (crowd["human"]["n"], crowd["bot"]["n"]) == (1, 1) and percent(crowd["bot"]["good"]) == (1, 1)

    # b1 {good 2, off_topic 1} and h2 {good 3}: P = (1/3 + 1) / 2, P_e = (5/6)^2 + (1/6)^2 = 26/36 -> kappa -0.2;
    # Krippendorff: o_gg = 1 + 3, o_go = o_og = 1, n_g = 5, n_o = 1 -> alpha = 1 - 5 * 2 / (2 * 5 * 1) = 0
    agreement = figures["agreement"]
    assert (agreement["items"], agreement["labels"]) == (2, 6)
    assert agreement["fleiss_kappa"] == pytest.approx(-0.2) and agreement["krippendorff_alpha"] == pytest.approx(0.0)


def test_report_from_a_bb3x_file(tmp_path):
    figures = build_report(SAMPLE, tmp_path / "out")
    check_sample_figures(figures)
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    assert {k: written[k] for k in COUNTS} == COUNTS and written["source"] == str(SAMPLE)
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.count("<img") >= 4 and "data:image/png;base64," in page
    assert "Quality of utterances (Table 2)" in page and "Krippendorff" in page


@both_databases
def test_report_from_the_store_with_named_annotators(engine, tmp_path):
    import_bb3x(engine, [SAMPLE], model_version="<b>bb3</b>")
    with engine.begin() as conn:
        bots = conn.execute(select(Message.id).where(Message.sender == "bot").order_by(Message.id).limit(4)).scalars().all()
        # alice: good good bad good; bob: good bad bad good -> p_o = 3/4; p_e = 3/4 * 1/2 + 1/4 * 1/2 = 1/2 -> kappa 1/2
        for annotator, labels in (("alice", ["good", "good", "off_topic", "good"]), ("bob", ["good", "off_topic", "off_topic", "good"])):
            conn.execute(insert(Annotation), [{"message_id": m, "annotator": annotator, "label": l} for m, l in zip(bots, labels)])
    figures = build_report(None, tmp_path / "out", engine)
    assert figures["source"] == "store"
    assert {k: figures[k] for k in ("users", "conversations", "messages", "thumbs_up", "thumbs_down")} == \
        {"users": 5, "conversations": 5, "messages": 18, "thumbs_up": 2, "thumbs_down": 3}
    assert figures["annotated_messages"] == 2 + 3  # b1 had crowd counts already; three more bot messages now
    assert figures["agreement"]["annotator_pairs"] == []  # a pair needs 5 shared utterances by default
    assert annotator_pairs(engine, min_shared=4) == [{"annotators": ["alice", "bob"], "shared": 4, "cohen_kappa": 0.5}]
    assert [v["model_version"] for v in figures["model_versions"]] == ["<b>bb3</b>"]
    assert figures["over_time"]["unit"] == "day" and sum(r["messages"] for r in figures["over_time"]["rows"]) == 18
    page = (tmp_path / "out" / "report.html").read_text()
    assert "&lt;b&gt;bb3&lt;/b&gt;" in page and "<b>bb3</b>" not in page  # names are escaped


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_report_from_a_flat_export_matches_the_file(engine, tmp_path, fmt):
    import_bb3x(engine, [SAMPLE])
    path = tmp_path / f"messages.{fmt}"
    export(engine, fmt, path)
    check_sample_figures(build_report(path, tmp_path / "out", plots=False))


def test_bad_sources_say_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="nothing to analyse"):
        build_report(None, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="no such file"):
        build_report(tmp_path / "missing.jsonl", tmp_path / "out")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no .parquet files"):
        build_report(empty, tmp_path / "out")
    lines = tmp_path / "mixed.jsonl"
    lines.write_text(SAMPLE.read_text() + "not json\n[1, 2]\n")
    figures = build_report(lines, tmp_path / "out", plots=False)
    assert figures["skipped_lines"] == 2 and figures["messages"] == 18


def test_an_empty_store_gives_a_report_of_zeros(engine, tmp_path):
    figures = build_report(None, tmp_path / "out", engine)
    assert figures["messages"] == 0 and figures["users"] == 0 and figures["agreement"]["fleiss_kappa"] is None
    assert (tmp_path / "out" / "report.html").exists()


def test_messages_without_a_verdict_can_be_checked_now(tmp_path):
    figures = build_report(SAMPLE, tmp_path / "out", plots=False, check_safety=True)
    # chloé's and erin's two human and two bot messages had no verdict; all four are safe
    assert figures["safety"]["checked_now"] == 4 and figures["safety"]["messages_without_verdict"] == 0
    assert percent(figures["safety"]["unsafe_human_messages"]) == (1, 9)
    assert percent(figures["table2"]["classifier"]["all"]["human"]["good"]) == (8, 9)


def test_tied_crowd_votes_and_mostly_unsafe_users_follow_the_rules_used_elsewhere(tmp_path):
    """A tied crowd vote is no majority (``taxonomy.crowd_majority``), so the utterance falls to its classifier
    verdict; "mostly unsafe" users are those ``organic trolls`` flags (``TrustConfig``), not a threshold of the report's."""
    from organic.analyze.trolls import TrustConfig
    from organic.taxonomy import crowd_majority

    safe, unsafe = json.dumps({"duo_safety": "__ok__"}), json.dumps({"duo_safety": "__notok__"})
    rows = []

    def message(user: str, position: int, sender: str, safety: str, crowd: dict | None = None) -> None:
        rows.append({"conversation_id": f"c-{user}", "user_pseudo_id": user, "position": position, "sender": sender,
                     "text": "hi", "safety": safety, "crowd_labels": json.dumps(crowd) if crowd else None,
                     "created_at": "2026-01-01T00:00:00+00:00"})

    flag = TrustConfig()
    for user, n_unsafe in (("mostly", 3), ("some", 2)):  # 3 of 5 unsafe is over TrustConfig's share, 2 of 5 is not
        for i in range(flag.min_messages):
            message(user, 2 * i, "human", unsafe if i < n_unsafe else safe)
            message(user, 2 * i + 1, "bot", safe)
    tied, clear = {"good": 1, "off_topic": 1}, {"good": 2, "off_topic": 1}
    rows[1]["crowd_labels"], rows[3]["crowd_labels"] = json.dumps(tied), json.dumps(clear)
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    figures = build_report(source, tmp_path / "out", plots=False)

    assert crowd_majority(tied) is None and crowd_majority(clear) is not None
    crowd = figures["table2"]["crowd"]["all"]["bot"]
    assert crowd["n"] == 1 and percent(crowd["good"]) == (1, 1)  # the tied vote is not a crowd label
    assert 2 / flag.min_messages <= flag.unsafe_threshold < 3 / flag.min_messages
    assert percent(figures["users_by_unsafe_rate"]["mostly_adversarial"]) == (1, 2)
