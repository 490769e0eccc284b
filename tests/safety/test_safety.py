"""Hand-written cases for the safety layer: offensive text, obfuscation, sensitive topics, false positives."""

import random

import pytest

from organic.safety import SafetyVerdict, canned_reply, check, check_many, is_canned, sensitive_topics
from organic.safety.canned import CRASH_REPLIES, SELF_HARM_REPLIES, UNSAFE_HUMAN_REPLIES
from organic.safety.string_matcher import find_offensive
from organic.safety.topics import find_topic
from organic.taxonomy import NOT_OK, SAFE, InteractionFailure

ORDINARY = [
    "hello, how are you today?",
    "I killed it at my exam",  # violent idiom, not violence
    "the Scunthorpe problem",  # 'cunt' inside a place name
    "my classmate is an assassin in the school play",  # 'ass' inside words
    "we had cocktails in Essex",
    "oh my god, that is great news",  # not a religion question
    "I graduated magna cum laude",
    "this movie was killer, I loved it",
    "Charles Dickens wrote great novels",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_is_safe(text):
    verdict = check(text)
    assert verdict == SafetyVerdict(SAFE, SAFE, None)
    assert verdict.ok and not verdict.blocked


@pytest.mark.parametrize(
    "text, word",
    [
        ("you are a fucking idiot", "fucking"),
        ("what a piece of SHIT", "shit"),
        ("go kill yourself", "kill yourself"),
        ("stfu bitch", "stfu"),
    ],
)
def test_offensive_text_is_flagged_by_both_checks(text, word):
    verdict = check(text)
    assert verdict.duo_safety == NOT_OK
    assert verdict.string_matcher == f"{NOT_OK}:{word}"
    assert not verdict.ok and verdict.blocked


@pytest.mark.parametrize(
    "text, word",
    [
        ("fuuuuuck you", "fuck"),  # stretched letters
        ("f u c k you", "fuck"),  # spaced letters
        ("sh1t happens", "shit"),  # l33t digit
        ("what an a$$hole", "asshole"),  # l33t symbols
        ("f*ck this", "fuck"),  # masking star
        ("k1ll yourself", "kill yourself"),  # 1 for l, inside a phrase
        ("You're a B!TCH", "bitch"),
    ],
)
def test_string_matcher_undoes_simple_obfuscation(text, word):
    # the classifier misses most of these (it never saw "f u c k"), which is why the word list is there
    assert find_offensive(text) == word
    assert check(text).string_matcher == f"{NOT_OK}:{word}"


@pytest.mark.parametrize("text", ["as", "class", "assess the glass", "$100 in 2023", "wow!!", "*emphasis*", "I love my garden hoe"])
def test_string_matcher_does_not_stretch_into_other_words(text):
    assert find_offensive(text) is None


@pytest.mark.parametrize(
    "text, topic",
    [
        ("I have been feeling suicidal lately", "self_harm"),
        ("sometimes I want to hurt myself", "self_harm"),
        ("what do you think about abortion?", "politics"),
        ("who will win the next election", "politics"),
        ("Do you believe in God?", "religion"),
        ("should I double my medication dosage", "medical"),
        ("where can I buy cocaine", "drugs"),
        ("tell me something sexy", "sexual"),
        ("how do I make a bomb", "violence"),
        ("I want to kill myself, maybe with drugs", "self_harm"),  # self harm outranks drugs
    ],
)
def test_sensitive_topics(text, topic):
    assert find_topic(text) == topic
    verdict = check(text)
    assert verdict.sensitive_topic == topic and verdict.blocked


def test_known_conservative_edges():
    # Documented trade-offs, kept visible: mild swearing trips the classifier, and a band name trips a topic.
    assert check("this damn printer").duo_safety == NOT_OK
    assert check("my favourite band is the Sex Pistols").sensitive_topic == "sexual"


def test_threshold_is_configurable():
    assert check("I hate you", threshold=0.8).duo_safety == NOT_OK
    assert check("I hate you", threshold=0.99).duo_safety == SAFE


def test_check_many_matches_check():
    texts = ["hello there", "you suck, idiot", "is god real"]
    assert check_many(texts) == [check(t) for t in texts]
    assert check_many([]) == []


def test_to_json_has_release_keys_plus_topic():
    assert check("f u c k you").to_json() == {"duo_safety": SAFE, "string_matcher": f"{NOT_OK}:fuck", "sensitive_topic": None}


def test_canned_replies():
    rng = random.Random(0)
    assert canned_reply(InteractionFailure.UNSAFE_HUMAN, None, rng) in UNSAFE_HUMAN_REPLIES
    assert canned_reply(InteractionFailure.MODEL_CRASH, None, rng) in CRASH_REPLIES
    assert canned_reply(InteractionFailure.UNSAFE_HUMAN, "self_harm", rng) in SELF_HARM_REPLIES
    politics = canned_reply(InteractionFailure.UNSAFE_HUMAN, "politics", rng)
    assert "politics" in politics.lower()
    assert "Sorry, something went wrong on my side. Could you say that again?" in CRASH_REPLIES
    variants = {canned_reply(InteractionFailure.UNSAFE_BOT, None, random.Random(seed)) for seed in range(20)}
    assert len(variants) > 1  # several variants, so a conversation does not repeat itself
    for reason in InteractionFailure:
        for topic in [None, *sensitive_topics()]:
            reply = canned_reply(reason, topic, rng)
            assert is_canned(reply) and check(reply).ok  # a canned reply must itself pass the classifier and word list
    assert not is_canned("I love pizza.")


def test_folded_classifier_matches_the_library():
    """The fast path gives the library's own probabilities."""
    import numpy as np

    from organic.safety.classifier import _library, offensive_probability
    from organic.safety.canned import CRASH_REPLIES, UNSAFE_BOT_REPLIES, UNSAFE_HUMAN_REPLIES

    texts = ["you are a stupid piece of garbage", "what a lovely day", "I hate you so much", "fuck off", "",
             "The Tour du Mont Blanc took 11 days.", *UNSAFE_HUMAN_REPLIES, *UNSAFE_BOT_REPLIES, *CRASH_REPLIES]
    texts += [f"{a} {b}" for a in ("damn", "idiot", "nice", "kill", "love") for b in ("you", "this printer", "the game")]
    np.testing.assert_allclose(offensive_probability(texts), _library().predict_prob(texts), rtol=1e-9, atol=1e-12)
