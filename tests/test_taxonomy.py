"""The vocabulary's one rule: the crowd majority of an utterance."""

from organic.taxonomy import CrowdLabel as L
from organic.taxonomy import crowd_majority


def test_crowd_majority_is_the_label_most_gave_and_none_on_a_tie():
    assert crowd_majority({"good": 2, "off_topic": 1}) is L.GOOD
    assert crowd_majority({"rude": 3, "good": 1}) is L.INAPPROPRIATE  # an alias of the taxonomy's label
    assert crowd_majority({"good": 1, "off_topic": 1}) is None
    assert crowd_majority({}) is None and crowd_majority({"good": 0}) is None  # nobody gave a label
    assert crowd_majority({"good": 0, "repeating": 1}) is L.REPEATING
