"""A small learned judge for tests: fitted on synthetic rows of signals where only the share of words copied from
the user and the similarity to the last turn decide the label. It needs no reference model, so tests that run
the evaluation or the loop on tiny models do not load SmolLM2."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from organic.evaluate.judge import Judge, fit
from organic.evaluate.signals import GROUPS, LM_NAMES, NAMES
from organic.taxonomy import CrowdLabel as L


def synthetic(n: int, seed: int) -> tuple[np.ndarray, list[L]]:
    rng = np.random.default_rng(seed)
    x = np.full((n, len(NAMES)), np.nan)  # no reference model: its signals are empty
    measured = [i for i, k in enumerate(NAMES) if k not in LM_NAMES]
    x[:, measured] = rng.normal(size=(n, len(measured)))
    x[:, NAMES.index("offensive")] = 0.0  # the safety layer found nothing
    x[:, [NAMES.index(k) for k in GROUPS["embedding"]]] = 0.0  # no words to learn from: rows are only signals
    copy, sim = NAMES.index("user_trigram_share"), NAMES.index("sim_last")
    labels = [L.REPEATING if row[copy] > 0.8 else L.IGNORING if row[sim] < -0.8 else L.GOOD for row in x]
    return x, labels


def small_judge(folder: Path | None = None, seed: int = 4, name: str | None = None) -> Judge:
    """Fitted on 300 synthetic rows; saved to ``folder`` when given; ``name`` in its info tells it from another."""
    judge = fit(*synthetic(300, seed))
    judge.info = {"test": {}, "name": name}
    if folder is not None:
        judge.save(folder)
    return judge
