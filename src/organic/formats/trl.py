"""Training sets in TRL's formats, from labelled examples (``organic.examples``).

- SFT: ``{"messages": [...context, assistant reply]}`` for positives;
- KTO: ``{"prompt": context, "completion": [assistant reply], "label": bool}`` for every labelled reply;
- DPO: ``{"prompt": context, "chosen": [...], "rejected": [...]}`` where a context has a good and a bad reply
  (a liked and a disliked reply to the same context, or a disliked reply and the user's own answer to
  "what should I have said?").
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from organic.examples import Example

TRL_FORMATS = ("sft", "kto", "dpo")


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def sft_rows(examples: Iterable[Example]) -> Iterator[dict[str, Any]]:
    for ex in examples:
        if ex.label == 1:
            yield {"messages": ex.context + _assistant(ex.reply)}


def kto_rows(examples: Iterable[Example]) -> Iterator[dict[str, Any]]:
    for ex in examples:
        if ex.label in (0, 1):
            yield {"prompt": ex.context, "completion": _assistant(ex.reply), "label": ex.label == 1}


def dpo_rows(examples: Iterable[Example]) -> Iterator[dict[str, Any]]:
    """Pairs within one conversation's context: examples of one context arrive together."""
    current_key, good, bad = None, [], []
    for ex in [*examples, None]:
        key = None if ex is None else (ex.conversation_id, json.dumps(ex.context))
        if key != current_key:
            for chosen, rejected in zip(good, bad):
                yield {"prompt": chosen.context, "chosen": _assistant(chosen.reply), "rejected": _assistant(rejected.reply)}
            current_key, good, bad = key, [], []
        if ex is not None and ex.label in (0, 1):
            (good if ex.label == 1 else bad).append(ex)


ROWS = {"sft": sft_rows, "kto": kto_rows, "dpo": dpo_rows}
