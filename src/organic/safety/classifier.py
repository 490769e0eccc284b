"""The offensive-language classifier behind the ``duo_safety`` verdict: the small linear model
(TF-IDF + calibrated linear SVMs) that ships inside ``alt-profanity-check``.

BB3 used a transformer safety classifier here; this one is a stand-in that runs anywhere in
milliseconds. It is loaded once, on first use (about a second), so importing ``organic.safety``
stays cheap. This module only scores text; turning scores into verdicts is ``check.py``'s job.

The server checks every message and every sentence of every reply, so scoring is on its hot path.
scikit-learn's ``CalibratedClassifierCV.predict_proba`` spends milliseconds per call on input
validation around five tiny linear models; ``_Linear`` computes the same numbers with one matrix
product (the test compares it with the library on hundreds of texts).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
from scipy.special import expit


class _Linear:
    """The package's calibrated ensemble, folded: mean over folds of sigmoid(-(a * (w.x + b) + c))."""

    def __init__(self, vectorizer, calibrated):
        folds = calibrated.calibrated_classifiers_
        if calibrated.method != "sigmoid" or any(len(f.calibrators) != 1 for f in folds):
            raise ValueError("expected a binary, sigmoid-calibrated ensemble of linear models")
        self.vectorizer = vectorizer
        self.weights = np.vstack([f.estimator.coef_[0] for f in folds]).T  # [vocabulary, folds]
        self.bias = np.array([f.estimator.intercept_[0] for f in folds])
        self.a = np.array([f.calibrators[0].a_ for f in folds])
        self.c = np.array([f.calibrators[0].b_ for f in folds])
        self.positive_first = list(calibrated.classes_) == [1, 0]

    def predict_prob(self, texts: list[str]) -> np.ndarray:
        scores = self.vectorizer.transform(texts) @ self.weights + self.bias
        p = expit(-(self.a * scores + self.c)).mean(axis=1)
        return 1 - p if self.positive_first else p


def offensive_probability(texts: list[str]) -> list[float]:
    """Probability that each text is offensive, in [0, 1]."""
    if not texts:
        return []
    return [float(p) for p in _model().predict_prob(texts)]


@functools.cache
def _library():
    with warnings.catch_warnings():  # the pickled scikit-learn model may warn about the version it was saved with
        warnings.simplefilter("ignore")
        from profanity_check import profanity_check  # loads the pickled model at import time: keep this import lazy
    return profanity_check


@functools.cache
def _model() -> _Linear:
    library = _library()
    return _Linear(library.vectorizer, library.model)
