"""Which model version serves a new conversation: one backend per version, chosen by traffic shares.

With one version it always serves. With several (live A/B), each new conversation draws a version by
its share; the conversation keeps that version to the end, so per-version thumbs rates compare like
with like.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from organic.generate import Backend


class Router:
    def __init__(self, backends: list[Backend], shares: dict[str, float] | None = None, rng: random.Random | None = None):
        if not backends:
            raise ValueError("the server needs at least one generation backend")
        self.backends = {b.model_version: b for b in backends}
        self.shares = _checked(shares or {b.model_version: 1.0 for b in backends}, self.backends)
        self.rng = rng or random.Random()

    def follow(self, shares: dict[str, float], backends: Iterable[Backend] = ()) -> None:
        """Draw new conversations by ``shares`` from now on (a new serving plan), adding ``backends`` for versions
        not served yet. Backends already served stay: a conversation keeps its version to the end."""
        merged = {**self.backends, **{b.model_version: b for b in backends}}
        shares = _checked(dict(shares), merged)
        self.backends, self.shares = merged, shares  # swapped whole: a concurrent ``choose`` sees one plan or the other

    def load_missing(self, plan: dict[str, float], load: Callable[[str], Backend]) -> list[Backend]:
        """The backends of ``plan``'s served versions (share above 0) that this router lacks, made by ``load(name)``;
        ``ValueError`` when a model folder serves another version than the one it was registered as."""
        missing = [name for name, share in plan.items() if share > 0 and name not in self.backends]
        loaded = [load(name) for name in missing]
        wrong = [f"the folder of {name} serves {b.model_version}" for name, b in zip(missing, loaded) if b.model_version != name]
        if wrong:
            raise ValueError("; ".join(wrong))
        return loaded

    def choose(self) -> str:
        """The version for a new conversation, drawn by share."""
        shares = self.shares
        versions = list(shares)
        return self.rng.choices(versions, weights=[shares[v] for v in versions])[0]

    def backend(self, version: str | None) -> Backend:
        """The backend of a conversation's version (the first one for a version no longer served)."""
        return self.backends.get(version) or next(iter(self.backends.values()))


def _checked(shares: dict[str, float], backends: dict[str, Backend]) -> dict[str, float]:
    unknown = set(shares) - set(backends)
    if unknown:
        raise ValueError(f"traffic shares name versions that are not served: {', '.join(sorted(unknown))}")
    if any(v < 0 for v in shares.values()) or sum(shares.values()) <= 0:
        raise ValueError("traffic shares must be non-negative and add up to more than zero")
    return shares
