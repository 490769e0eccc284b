"""The labelled set: real (context, reply) items, each labelled by reading it (shared/LABELLING.md).

Two files in ``evaluate/labels/``, kept apart on purpose:
- ``items.jsonl``: one item per line: ``id``, ``conversation``, ``split``, ``context`` (chat messages), ``reply`` and
  ``source`` (the model and settings that wrote it, or ``{"model": "human"}`` for the real next turn). Made by
  ``scripts/make_label_items.py``.
- ``labels.jsonl``: one judgement per line: ``id``, ``label`` (a ``taxonomy.CrowdLabel`` value), ``labeller``,
  ``pass`` (1 for the main pass, 2 for the independent second pass over a subset) and an optional ``note``.
  A label is written by someone reading the item; no program writes this file.

Items are split by conversation (``split_of``): the judge is fitted on ``train``, its threshold chosen on ``dev``,
and ``test`` is only ever scored. Two kinds of items:
- made for the set by ``scripts/make_label_items.py`` from ``reserved`` conversations, which the simulator never
  draws: the base model, briefly trained models and the real human next turn;
- read in a blind check of a loop run (``scripts/blind_check.py fold RUN``): the replies of the models that loop
  trained, to its held-out simulated conversations. Their source names the ``run``, and their conversation is
  the run's name and the conversation's opening message.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from organic.taxonomy import CrowdLabel

HOME = Path(__file__).parent / "labels"
ITEMS = HOME / "items.jsonl"
LABELS = HOME / "labels.jsonl"
SPLITS = (("train", 0.5), ("dev", 0.63), ("test", 1.0))  # cumulative shares of conversations


def _unit(text: str) -> float:
    return int(hashlib.sha1(text.encode()).hexdigest()[:12], 16) / 16**12


def reserved(conversation: str) -> bool:
    """True for the tenth of the bundled conversations (``chitchat:<id>``, ``sharegpt:<id>``) kept for labelling."""
    return _unit(f"labelled-set:{conversation}") < 0.1


def half_of(conversation: str) -> str:
    """``rater`` or ``evaluator``: which of two disjoint halves of the train split a conversation's items fit. The
    simulated people rate with a judge fitted on one half, the loop's evaluation uses a judge fitted on the other."""
    return "rater" if _unit(f"half:{conversation}") < 0.5 else "evaluator"


def split_of(conversation: str) -> str:
    u = _unit(f"split:{conversation}")
    return next(name for name, upto in SPLITS if u < upto)


@dataclass(frozen=True)
class Item:
    id: str
    conversation: str
    split: str
    context: list[dict]
    reply: str
    source: dict
    label: CrowdLabel  # the main pass's label
    labeller: str
    second: CrowdLabel | None = None  # the independent second pass, where there is one

    @property
    def model(self) -> str:
        return self.source.get("model", "unknown")


def load(items: Path = ITEMS, labels: Path = LABELS, *, split: str | None = None) -> list[Item]:
    """The labelled items (those with a main-pass label), optionally of one split, in file order."""
    first, second = {}, {}
    for n, line in enumerate(labels.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        try:
            label = CrowdLabel.parse(row["label"])
        except (KeyError, ValueError) as error:
            raise ValueError(f"{labels}:{n}: {error}") from None
        (second if row.get("pass", 1) == 2 else first)[row["id"]] = (label, row.get("labeller", "unknown"))
    out = []
    for line in items.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["id"] not in first or (split and row["split"] != split):
            continue
        label, labeller = first[row["id"]]
        out.append(Item(row["id"], row["conversation"], row["split"], row["context"], row["reply"], row["source"], label,
                        labeller, second.get(row["id"], (None,))[0]))
    return out


def human_reference(n: int = 200, *, seed: int = 0) -> list[tuple[list[dict], str]]:
    """``n`` real human replies in their contexts (up to three earlier turns) from the reserved chit-chat
    conversations: no model trains on them, so the perplexity of any model on them measures fluency on real
    human text rather than on its own (or its judge's) favourite replies."""
    import random

    from chitchat_dataset import Dataset

    data = Dataset()
    keys = sorted(k for k in data if reserved(f"chitchat:{k}"))
    rng = random.Random(seed)
    rng.shuffle(keys)
    out = []
    for key in keys:
        turns = [" ".join(m["text"] for m in turn).strip() for turn in data[key]["messages"]]
        if len(turns) < 2:
            continue
        reply = rng.randint(1, len(turns) - 1)
        first = max(0, reply - 3)
        context = [{"role": "user" if (reply - 1 - i) % 2 == 0 else "assistant", "content": turns[i]} for i in range(first, reply)]
        out.append((context, turns[reply]))
        if len(out) >= n:
            break
    return out
