"""Helpers vs trolls: the trust arithmetic by hand, the SafetyMix generator, detection that beats chance on a
small SafetyMix sample, and scores for the users of a store."""

from __future__ import annotations

import numpy as np
import pytest

from organic.simulate.safetymix import (
    EXPLICIT,
    IMPLICIT,
    SAFE,
    TROLL_TYPES,
    UNSAFE,
    benchmark_pools,
    build_pools,
    safetymix,
)
from organic.stats import detection
from organic.analyze.trolls import (
    Judgement,
    TrustConfig,
    held_out_likelihood,
    score_store,
    troll_ids,
    trust,
    user_trust,
)
from organic.formats.ingest import import_bb3x
from support import FIXTURES


def test_user_trust_by_hand():
    # likelihoods a: 0.9, 0.7; b: 0.2; overall mean 0.6; prior 2:
    # a: (1.6 + 2 * 0.6) / 4 = 0.7, agreement 2/2; b: (0.2 + 1.2) / 3 = 0.4667, agreement 0/1
    scores = user_trust(["a", "a", "b"], np.array([0.9, 0.7, 0.2]), prior=2.0)
    assert scores["a"] == pytest.approx((0.7, 2, 1.0)) and scores["b"] == pytest.approx((1.4 / 3, 1, 0.0))


def test_held_out_folds_never_judge_a_user_by_their_own_labels():
    # one feature, x = +1 good, -1 bad. Four helpers label truthfully; the troll labels everything the other way.
    users, x, labels = [], [], []
    for user in ("h1", "h2", "h3", "h4", "troll"):
        for value in (1.0, -1.0, 1.0, -1.0):
            users.append(user)
            x.append([value])
            labels.append(int(value > 0) if user != "troll" else int(value < 0))
    p = held_out_likelihood(np.array(x), labels, users, folds=5)
    by_user = {u: p[[i for i, v in enumerate(users) if v == u]].mean() for u in set(users)}
    assert by_user["troll"] < 0.3 and min(by_user[h] for h in ("h1", "h2", "h3", "h4")) > 0.6  # C = 1 keeps p from 1


def test_a_users_score_never_depends_on_their_own_labels():
    # folds of users: the model that scores a user was trained without any of their labels, so flipping all of
    # one user's labels flips their likelihoods exactly (p_good unchanged). With folds of examples the user's other
    # labels would teach the model that scores them, and the flip would move it.
    rng = np.random.default_rng(0)
    users = [f"u{i // 8}" for i in range(48)]
    x = rng.normal(size=(48, 4))
    labels = (x[:, 0] + 0.5 * rng.normal(size=48) > 0).astype(int)
    flipped = np.where(np.array(users) == "u2", 1 - labels, labels)
    before = held_out_likelihood(x, labels, users, folds=3)
    after = held_out_likelihood(x, flipped, users, folds=3)
    mine = np.array(users) == "u2"
    np.testing.assert_allclose(after[mine], 1 - before[mine], rtol=0, atol=1e-12)
    assert not np.allclose(after[~mine], before[~mine])  # their labels do teach the models that score the others


def test_trust_needs_three_labels_and_says_so():
    judgements = [Judgement(u, t, l) for u in ("h1", "h2", "h3", "h4") for t, l in (("great answer", 1), ("awful rude answer", 0))] * 3
    judgements += [Judgement("newcomer", "great answer", 0), Judgement("newcomer", "awful rude answer", 1)]  # 2, both odd
    judgements += [Judgement("troll", "great answer", 0), Judgement("troll", "awful rude answer", 1)] * 2  # 4
    result = trust(judgements, featurize="tfidf", messages={"silent": (3, 0)})
    rows = {r.user: r for r in result.users}
    newcomer = rows["newcomer"]
    assert (newcomer.trust, newcomer.agreement, newcomer.labels, newcomer.is_troll) == (None, None, 2, False)
    assert newcomer.too_few_labels and "too few labels for a trust score: 2 rated turns, fewer than 3" in newcomer.why
    assert newcomer.to_json()["too_few_labels"] is True
    assert rows["troll"].is_troll and rows["troll"].trust is not None and not rows["troll"].too_few_labels
    assert not rows["silent"].too_few_labels and rows["silent"].trust is None  # never rated: not a rater
    assert result.too_few_labels == 1
    strict = trust(judgements, TrustConfig(min_labels=5), featurize="tfidf")
    assert strict.too_few_labels == 2 and troll_ids(strict.users) == set()


def test_a_troll_is_flagged_with_a_reason_and_a_helper_is_not():
    judgements = [Judgement(u, t, l) for u in ("h1", "h2", "h3", "h4") for t, l in (("great answer", 1), ("awful rude answer", 0))] * 3
    judgements += [Judgement("troll", "great answer", 0), Judgement("troll", "awful rude answer", 1)] * 3
    result = trust(judgements, TrustConfig(min_messages=5), featurize="tfidf", messages={"troll": (6, 3), "quiet": (2, 2)})
    rows = {r.user: r for r in result.users}
    assert result.users[0].user == "troll" and rows["troll"].is_troll and not rows["h1"].is_troll
    assert rows["troll"].why.startswith("troll: a model trained on other users agrees with 0% of their 6 labels")
    assert "3 of their 6 messages failed the safety check (50%)" in rows["troll"].why
    assert rows["quiet"].trust is None and not rows["quiet"].is_troll  # 2 messages: too few to judge by
    assert rows["quiet"].unsafe_rate == 1.0 and "no labels" not in rows["quiet"].why
    assert troll_ids(result.users) == {"troll"}
    assert len(result.example_scores) == len(judgements)
    assert rows["troll"].to_json()["labels"] == 6
    with pytest.raises(ValueError, match="labels must be"):
        trust([Judgement("a", "x", 2)], featurize="tfidf")


@pytest.fixture(scope="module")
def pools():
    return build_pools(size=40, seed=1)


def test_pools_are_real_utterances_made_unsafe_by_construction(pools):
    assert all(len(getattr(pools, name)) == 40 for name in ("standard_safe", "standard_unsafe", "adversarial_safe", "adversarial_unsafe"))
    assert all(any(p in i.text.lower() for p in EXPLICIT) and i.truth == UNSAFE for i in pools.standard_unsafe)
    assert all(any(p in i.text.lower() for p in IMPLICIT) and i.adversarial for i in pools.adversarial_unsafe)
    assert len({i.text for i in pools.all()}) == 160
    flagged = benchmark_pools(pools)
    assert flagged["standard_unsafe"] == 1.0 and flagged["standard_safe"] == 0.0  # explicit insults are caught
    assert flagged["adversarial_unsafe"] < 0.5  # hostile statements without listed words mostly slip past


def test_safetymix_users_behave_as_their_type(pools):
    data = safetymix("gaslight_troll", 0.3, pools, users=50, seed=3)
    users = {e.user: e.user_type for e in data}
    assert sum(t == "gaslight_troll" for t in users.values()) == 15
    for e in data:
        if e.user_type == "helper":
            assert e.label == e.truth
        else:
            assert e.truth == UNSAFE and e.label == SAFE and e.adversarial
    for kind in TROLL_TYPES:
        mix = safetymix(kind, 0.5, pools, users=20, seed=4)
        trolls = [e for e in mix if e.is_troll]
        assert trolls and all(e.user_type == kind for e in trolls)
    assert all(e.label == UNSAFE for e in safetymix("unsafe_troll", 0.5, pools, users=10) if e.is_troll)
    with pytest.raises(ValueError, match="unknown troll type"):
        safetymix("ogre", 0.3, pools)


@pytest.mark.parametrize("kind", ["troll", "master_troll"])
def test_user_level_detection_beats_chance_on_a_small_sample(pools, kind):
    data = safetymix(kind, 0.3, pools, users=40, seed=5)
    result = trust([Judgement(e.user, e.text, e.label) for e in data], TrustConfig(folds=4), featurize="tfidf")
    truth = {e.user: e.is_troll for e in data}
    users = detection([truth[r.user] for r in result.users], [1 - r.trust for r in result.users],
                      [r.is_troll for r in result.users])
    assert users.auc > 0.8 and users.recall > 0.5 and users.precision > 0.5


def test_scores_for_the_users_of_a_store(engine):
    import_bb3x(engine, [FIXTURES / "bb3x_sample.jsonl"])
    rows = {r.user: r for r in score_store(engine, config=TrustConfig(min_messages=3, unsafe_threshold=0.3), featurize="tfidf")}
    # thumbs on model replies: alice 1, bob 2; troll's are on canned replies and do not count
    assert (rows["u-alice"].labels, rows["u-bob"].labels, rows["u-troll"].labels) == (1, 2, 0)
    assert set(rows) == {"u-alice", "u-bob", "u-troll", "u-chloé", "u-erin"}
    # troll: 1 of 3 human messages has an unsafe stored verdict; chloé's message has none and is checked now
    assert (rows["u-troll"].messages, rows["u-troll"].unsafe_messages) == (3, 1)
    assert rows["u-troll"].is_troll and "1 of their 3 messages failed the safety check (33%), over 30%" in rows["u-troll"].why
    assert (rows["u-chloé"].messages, rows["u-chloé"].unsafe_messages) == (1, 0) and not rows["u-chloé"].is_troll
    # three thumbs say too little to judge anyone by their labels
    assert not rows["u-alice"].is_troll and not rows["u-bob"].is_troll
    assert "too few labels" in rows["u-alice"].why or "not judged" in rows["u-alice"].why


def test_labels_judge_no_one_when_the_model_learns_nothing():
    # every user labels the same text both ways: nothing to learn, so no one is flagged for their labels
    judgements = [Judgement(f"u{i}", "the same reply", label) for i in range(6) for label in (0, 1, 0, 1)]
    result = trust(judgements, featurize="tfidf")
    assert result.model_agreement == pytest.approx(0.5, abs=0.1)
    assert not any(r.is_troll for r in result.users) and all("not judged" in r.why for r in result.users)
