"""Which model version serves a new conversation: one backend per version, chosen by traffic shares.

With one version it always serves. With several (live A/B), each new conversation draws a version by
its share; the conversation keeps that version to the end, so per-version thumbs rates compare like
with like.
"""

from __future__ import annotations

import random

from organic.generate import Backend


class Router:
    def __init__(self, backends: list[Backend], shares: dict[str, float] | None = None, rng: random.Random | None = None):
        if not backends:
            raise ValueError("the server needs at least one generation backend")
        self.backends = {b.model_version: b for b in backends}
        shares = shares or {b.model_version: 1.0 for b in backends}
        unknown = set(shares) - set(self.backends)
        if unknown:
            raise ValueError(f"traffic shares name versions that are not served: {', '.join(sorted(unknown))}")
        if any(v < 0 for v in shares.values()) or sum(shares.values()) <= 0:
            raise ValueError("traffic shares must be non-negative and add up to more than zero")
        self.shares = shares
        self.rng = rng or random.Random()

    def choose(self) -> str:
        """The version for a new conversation, drawn by share."""
        versions = list(self.shares)
        return self.rng.choices(versions, weights=[self.shares[v] for v in versions])[0]

    def backend(self, version: str | None) -> Backend:
        """The backend of a conversation's version (the first one for a version no longer served)."""
        return self.backends.get(version) or next(iter(self.backends.values()))
