"""The one interface every generation backend implements, and the settings a request carries.

A backend turns a chat (a list of ``{"role": ..., "content": ...}`` messages, OpenAI style) into the
next assistant reply, streamed as text deltas. Its ``name`` and ``model_version`` are stored with
every bot message, so a reply can always be traced to the exact model that wrote it. Backends must
not apply safety checks or store anything: the server does both around them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import NamedTuple, Protocol

_CLOSED = re.compile(r"""[.!?)"'\]…:;*~]\s*$|[\U0001F300-\U0001FAFF\u2600-\u27BF]\s*$""")


class _CutOff(str):
    pass


CUT_OFF = _CutOff("")
"""The last delta of a reply that stopped at its ``max_new_tokens`` rather than at its end of turn: an empty
string, so that joining a stream is unchanged, told apart by identity (``delta is CUT_OFF``)."""


def unfinished(text: str) -> bool:
    """True for text that stops without closing punctuation (or an emoji): what a reply cut off at its token
    limit looks like, mid-sentence."""
    return bool(text.strip()) and not _CLOSED.search(text)


class Reply(NamedTuple):
    """A reply generated offline (``generate.batch.generate_replies``), on either engine."""

    text: str  # stripped, special tokens removed
    tokens: int  # new tokens generated (EOS not counted)
    cut: bool  # stopped by max_new_tokens rather than by the model's end of turn


class GenerationError(RuntimeError):
    """The model failed to produce a reply (crash, server error, lost connection).

    The server answers with a canned reply flagged ``from_model_crash`` when it catches this.
    """


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 64  # longest reply, in tokens
    temperature: float = 0.7  # softmax temperature when sampling
    top_p: float = 0.9  # nucleus sampling: keep the smallest set of tokens with this much probability
    do_sample: bool = True  # False: greedy decoding (temperature and top_p are ignored)
    seed: int | None = None  # makes sampling reproducible for this request

    def __post_init__(self):
        if self.max_new_tokens < 0 or self.temperature < 0 or not 0 <= self.top_p <= 1:
            raise ValueError(f"invalid generation settings {self}: need max_new_tokens >= 0, temperature >= 0, 0 <= top_p <= 1")

    def to_json(self) -> dict:
        return asdict(self)


class Backend(Protocol):
    name: str  # "transformers", "openai", "echo"
    model_version: str  # stable identifier of the weights that write the replies

    def stream(self, messages: list[dict], settings: GenerationSettings) -> AsyncIterator[str]:
        """Yield the reply as text deltas, then ``CUT_OFF`` if it stopped at ``settings.max_new_tokens``; raise
        ``GenerationError`` if the model fails."""
        ...

    async def generate(self, messages: list[dict], settings: GenerationSettings) -> str:
        """The whole reply at once (default: join the stream)."""
        return "".join([delta async for delta in self.stream(messages, settings)])
