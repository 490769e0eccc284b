"""The Table 9 breakdown and the pairwise statistics against values worked out by hand or published.

Wilson 95% for 7 of 10 is [0.3968, 0.8922] and for 17 of 20 [0.6396, 0.9476] (Newcombe 1998's method 3);
the two-sided sign test of 7 wins in 10 is 2 * (C(10,7) + C(10,8) + C(10,9) + C(10,10)) / 2^10 = 352 / 1024.
"""

from __future__ import annotations

import pytest

from organic.evaluate.breakdown import COLUMNS, bad_rate, breakdown, render_html, render_markdown
from organic.evaluate.pairwise import pairwise, tally
from organic.taxonomy import CrowdLabel as L


def test_breakdown_counts_shares_and_wilson_intervals():
    labels = [L.GOOD] * 17 + [L.INAPPROPRIATE] + ["off_topic", "Off topic"]  # strings are parsed like the taxonomy
    table = breakdown(labels)
    assert table.n == 20 and table.counts[L.GOOD] == 17 and table.counts[L.OFF_TOPIC] == 2 and table.counts[L.OTHER] == 0
    good = table.share(L.GOOD)
    assert good.share == 0.85 and good.ci == pytest.approx((0.6396, 0.9476), abs=1e-4)
    assert table.bad.count == 3 and table.bad.n == 20 and bad_rate(labels).count == 3 and bad_rate(table) == table.bad
    data = table.to_json()
    assert list(data) == ["n", *(c.value for c in COLUMNS), "bad"]
    assert data["good"] == {"count": 17, "n": 20, "percent": 85.0, "ci95": [63.958, 94.763]}
    assert data["other"]["percent"] == 0.0 and data["other"]["ci95"][0] == 0.0  # none seen: [0, 16.1]
    assert data["other"]["ci95"][1] == pytest.approx(16.113, abs=1e-3)
    assert breakdown([]).to_json()["good"]["n"] == 0
    with pytest.raises(ValueError, match="unknown CrowdLabel"):
        breakdown(["splendid"])


def test_tables_render_one_row_per_model_with_extra_columns():
    tables = {"base": breakdown([L.GOOD] * 7 + [L.REPEATING] * 3), "cringe|1": breakdown([L.GOOD] * 10)}
    extra = {"base": {"Perplexity": "12.30"}, "cringe|1": {"Perplexity": "12.90", "Reward P(good)": "0.71"}}
    markdown = render_markdown(tables, extra)
    lines = markdown.strip().split("\n")
    assert lines[0] == ("| Model | n | Good | Inappropriate | Off topic | Nonsensical | Ignoring the last turn | Repeating "
                        "| Other | Bad | Perplexity | Reward P(good) |")
    assert lines[2].startswith("| base | 10 | 70.0 [39.7, 89.2] (7) | 0.0 [0.0, 27.8] (0) |")
    assert lines[2].endswith("| 30.0 [10.8, 60.3] (3) | 12.30 |  |")
    assert lines[3].startswith("| cringe\\|1 | 10 | 100.0 [72.2, 100.0] (10) |")  # a pipe in a name is escaped
    page = render_html({"<b>x</b>": breakdown([L.GOOD])})
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>" not in page and page.count("<tr>") == 2


def test_win_rate_interval_and_sign_test_known_values():
    result = pairwise(7, 3, ties=5, model_a="cringe", model_b="base")
    assert (result.decided, result.total, result.win_rate) == (10, 15, 0.7)
    assert result.ci95 == pytest.approx((0.3968, 0.8922), abs=1e-4)
    assert result.p_value == pytest.approx(352 / 1024) and not result.significant()
    strong = pairwise(9, 1)
    assert strong.p_value == pytest.approx(22 / 1024) and strong.significant()  # 2 * (10 + 1) / 1024
    assert pairwise(50, 50).p_value == pytest.approx(1.0)
    assert pairwise(60, 40).p_value == pytest.approx(0.0569, abs=1e-4)
    only_ties = pairwise(0, 0, ties=4)
    assert only_ties.win_rate is None and only_ties.p_value == 1.0 and only_ties.ci95 == (0.0, 1.0)
    assert result.to_json() == {"model_a": "cringe", "model_b": "base", "wins": 7, "losses": 3, "ties": 5, "decided": 10,
                                "win_rate": 0.7, "ci95": [0.3968, 0.8922], "p_value": 0.34375}
    with pytest.raises(ValueError):
        pairwise(-1, 2)


def test_tally_groups_votes_by_pair_whatever_the_order():
    votes = [("base", "cringe", "cringe"), ("cringe", "base", "cringe"), ("cringe", "base", "base"),
             ("base", "cringe", None), ("sft", "base", "sft")]
    results = {(r.model_a, r.model_b): r for r in tally(votes)}
    assert set(results) == {("base", "cringe"), ("base", "sft")}
    assert (results["base", "cringe"].wins, results["base", "cringe"].losses, results["base", "cringe"].ties) == (1, 2, 1)
    assert (results["base", "sft"].wins, results["base", "sft"].losses) == (0, 1)
    with pytest.raises(ValueError, match="neither"):
        tally([("a", "b", "c")])
    with pytest.raises(ValueError, match="itself"):
        tally([("a", "a", None)])
