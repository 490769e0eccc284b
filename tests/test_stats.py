"""Every statistic on a small dataset whose answer is worked out by hand (or published with its working)."""

from __future__ import annotations

import math

import pytest

from organic.stats import (
    Proportion,
    agreement,
    cohen_kappa,
    detection,
    fleiss_kappa,
    krippendorff_alpha,
    summary,
    wilson,
)


def test_wilson_interval_of_8_in_10():
    # p = 0.8, z^2 = 3.8415: centre = (0.8 + 0.19208) / 1.38415 = 0.71674,
    # half = 1.96 * sqrt(0.016 + 0.0096) / 1.38415 = 0.22658  ->  (0.4902, 0.9433)
    low, high = wilson(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)


def test_wilson_edges():
    low, high = wilson(0, 10)  # centre = half = 0.19208 / 1.38415: the interval starts at 0 exactly
    assert low == 0.0 and high == pytest.approx(3.8415 / 13.8415, abs=1e-4)
    assert wilson(10, 10)[1] == 1.0
    assert wilson(0, 0) == (0.0, 1.0)  # no data: no information
    with pytest.raises(ValueError):
        wilson(11, 10)


def test_proportion_json_in_percent():
    assert Proportion(8, 10).to_json() == {"count": 8, "n": 10, "percent": 80.0, "ci95": [49.016, 94.332]}


def test_cohen_kappa_textbook_table():
    # 50 items: both yes 20, A yes / B no 5, A no / B yes 10, both no 15.
    # p_o = 35/50 = 0.7; A says yes 25/50, B 30/50: p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = 0.2/0.5 = 0.4
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(["good", "bad"], ["good", "bad"]) == 1.0
    assert cohen_kappa(["good"] * 3, ["good"] * 3) == 1.0
    with pytest.raises(ValueError):
        cohen_kappa(["good"], [])


def test_fleiss_and_krippendorff_on_three_items():
    # two annotators, two labels; items: both Good, both Bad, one each.
    # Fleiss: P_i = 1, 1, 0 -> P = 2/3; p = (1/2, 1/2) -> P_e = 1/2; kappa = (2/3 - 1/2) / (1/2) = 1/3.
    # Krippendorff: o_gg = 2, o_bb = 2, o_gb = o_bg = 1; n_g = n_b = 3, n = 6;
    # alpha = 1 - (n - 1) * 2 / (2 * 3 * 3) = 1 - 10/18 = 4/9.
    counts = [[2, 0], [0, 2], [1, 1]]
    assert fleiss_kappa(counts) == pytest.approx(1 / 3)
    assert krippendorff_alpha(counts) == pytest.approx(4 / 9)


def test_fleiss_kappa_published_example():
    # Fleiss (1971) as worked on Wikipedia: 10 items, 14 raters, 5 categories: P = 0.378, P_e = 0.213, kappa = 0.210
    counts = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
              [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(counts) == pytest.approx(0.210, abs=5e-4)


def test_krippendorff_alpha_published_example_with_missing_labels():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 observers, 12 units, nominal
    # values 1-5 with missing labels; the paper works it out to alpha = 0.743. Unit 12 has one label: left out.
    counts = [[3, 0, 0, 0, 0], [0, 3, 1, 0, 0], [0, 0, 4, 0, 0], [0, 0, 4, 0, 0], [0, 4, 0, 0, 0], [1, 1, 1, 1, 0],
              [0, 0, 0, 4, 0], [3, 1, 0, 0, 0], [0, 4, 0, 0, 0], [0, 0, 0, 0, 3], [2, 0, 0, 0, 0], [0, 0, 1, 0, 0]]
    assert krippendorff_alpha(counts) == pytest.approx(0.743, abs=5e-4)


def test_agreement_perfect_and_undefined():
    assert agreement([[3, 0], [0, 3]])["fleiss_kappa"] == 1.0
    empty = agreement([[1, 0], [0, 1]])  # nobody labelled the same item twice
    assert empty == {"items": 0, "labels": 0, "fleiss_kappa": None, "krippendorff_alpha": None, "good_vs_bad": None}
    both = agreement([[2, 0, 0], [0, 1, 1], [1, 0, 1]])
    # good vs bad: [[2, 0], [0, 2], [1, 1]] -> the three-item example above
    assert both["good_vs_bad"] == {"fleiss_kappa": pytest.approx(1 / 3, abs=1e-4), "krippendorff_alpha": pytest.approx(4 / 9, abs=1e-4)}
    assert both["items"] == 3 and both["labels"] == 6


def test_detection_metrics():
    # scores rank 2 of 3 positive-negative pairs... by hand: positives score 0.9, 0.4; negatives 0.5, 0.1
    # pairs (pos > neg): 0.9>0.5, 0.9>0.1, 0.4>0.1, 0.4<0.5 -> AUC = 3/4; flag 0.9 and 0.5: precision 1/2, recall 1/2
    result = detection([True, True, False, False], [0.9, 0.4, 0.5, 0.1], [True, False, True, False])
    assert (result.auc, result.precision, result.recall, result.flagged) == (0.75, 0.5, 0.5, 2)
    assert detection([False, False], [0.1, 0.2], [False, False]).auc is None


def test_summary_of_a_histogram():
    # values 2,2,2,4,10 -> mean 20/5 = 4, median 2, p90 and p99 10, max 10
    assert summary({2: 3, 4: 1, 10: 1}) == {"n": 5, "mean": 4.0, "median": 2.0, "p90": 10.0, "p99": 10.0, "max": 10.0}
    assert summary({})["mean"] is None
    assert not math.isnan(summary({1: 1})["mean"])
