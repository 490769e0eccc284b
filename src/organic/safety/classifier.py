"""The offensive-language classifier behind the ``duo_safety`` verdict: the small linear model
(TF-IDF + SVM) that ships inside ``alt-profanity-check``.

BB3 used a transformer safety classifier here; this one is a stand-in that runs anywhere in
milliseconds. It is loaded once, on first use (about a second), so importing ``organic.safety``
stays cheap. This module only scores text; turning scores into verdicts is ``check.py``'s job.
"""

from __future__ import annotations

import functools
import warnings


def offensive_probability(texts: list[str]) -> list[float]:
    """Probability that each text is offensive, in [0, 1]."""
    if not texts:
        return []
    return [float(p) for p in _model().predict_prob(texts)]


@functools.cache
def _model():
    with warnings.catch_warnings():  # the pickled scikit-learn model may warn about the version it was saved with
        warnings.simplefilter("ignore")
        import profanity_check  # loads the pickled model at import time: keep this import lazy
    return profanity_check
