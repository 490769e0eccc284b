"""Who the simulated people are and how they behave.

Each person opens with real human words: one side of a real human-human chat from the bundled
``chitchat-dataset`` (the other side's next turn is what a good bot might have said), or the human turns of a
real ShareGPT conversation (ChatGPT's answer standing in). They rate about 5% of the bot's messages, as BB3's
users did, and answer "what should I have said?" after a thumbs down.

- helper: rates by the *rater* judge (``evaluate/judge_model/rater``: fitted on its own half of the labelled set,
  without the likelihood signals, so neither the evaluation's judge nor the trainer sees the same instrument), each
  with a strictness of their own and an occasional slip, and answers with the real reply;
- SafetyMix trolls (Ju et al. 2022): troll (flips most labels), master_troll (adversarial inputs, flipped
  labels), lazy_troll (random labels), safe_troll (always up), unsafe_troll (always down), gaslight_troll
  (unsafe inputs, rated up); trolls answer the feedback question with hostile text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from organic.simulate.safetymix import EXPLICIT, IMPLICIT, TROLL_TYPES, usable, sharegpt_records
from organic.evaluate.labelled import reserved
from organic.taxonomy import CrowdLabel, DislikeReason, Thumb

REASON_OF = {  # a judge's bad label -> the reason a person would pick after a thumbs down
    CrowdLabel.INAPPROPRIATE: DislikeReason.RUDE,
    CrowdLabel.OFF_TOPIC: DislikeReason.OFF_TOPIC,
    CrowdLabel.IGNORING: DislikeReason.OFF_TOPIC,
    CrowdLabel.NONSENSICAL: DislikeReason.NONSENSICAL,
    CrowdLabel.REPEATING: DislikeReason.OTHER,
    CrowdLabel.OTHER: DislikeReason.OTHER,
}


@dataclass(frozen=True)
class Dialogue:
    turns: tuple[str, ...]  # what the person says, in order
    gold: tuple[str, ...]  # the real reply to each turn (the other human, or ChatGPT)


@dataclass
class Person:
    kind: str  # helper or one of TROLL_TYPES
    dialogue: Dialogue
    rng: random.Random
    noise: float = 0.8  # share of a troll's labels that are flipped (troll, master troll) or random (lazy)
    strictness: float = 0.0  # added to the rater's P(bad) threshold: below zero a harsher person, above a kinder one
    slip: float = 0.05  # share of a helper's thumbs given carelessly (the other way round)

    @property
    def is_troll(self) -> bool:
        return self.kind != "helper"

    def says(self, turn: int) -> str:
        text = self.dialogue.turns[turn]
        if self.kind in ("master_troll", "gaslight_troll") or (self.kind != "helper" and self.rng.random() < 0.3):
            hostile = self.rng.choice(IMPLICIT if self.kind in ("master_troll", "gaslight_troll") else EXPLICIT)
            text = f"{text} {hostile}"
        return text

    def thumb(self, judged: CrowdLabel, p_bad: float | None = None, threshold: float = 0.5) -> tuple[str, str | None]:
        """(up / down, reason) for a reply the rater judged ``judged`` with ``p_bad`` (its threshold ``threshold``);
        a helper thumbs down when P(bad) reaches their own threshold (the rater's plus their strictness)."""
        good = judged is CrowdLabel.GOOD if p_bad is None else p_bad < threshold + self.strictness
        if self.kind == "helper" and self.rng.random() < self.slip:
            good = not good
        elif self.kind in ("troll", "master_troll") and self.rng.random() < self.noise:
            good = not good
        elif self.kind == "lazy_troll" and self.rng.random() < self.noise:
            good = self.rng.random() < 0.5
        elif self.kind in ("safe_troll", "gaslight_troll"):
            good = True
        elif self.kind == "unsafe_troll":
            good = False
        if good:
            return Thumb.UP.value, None
        reason = REASON_OF.get(judged, DislikeReason.OTHER) if not judged.is_good else self.rng.choice(DislikeReason.for_model_reply())
        return Thumb.DOWN.value, reason.value

    def should_have_said(self, turn: int) -> str:
        if self.is_troll:
            return self.rng.choice(EXPLICIT + IMPLICIT)
        return self.dialogue.gold[turn]


def dialogues(n: int, *, turns: int = 4, sharegpt_share: float = 0.2, seed: int = 0) -> list[Dialogue]:
    """``n`` real dialogues of up to ``turns`` turns each (short, plain-English turns only)."""
    rng = random.Random(seed)
    wanted_sharegpt = round(n * sharegpt_share)
    found = _sharegpt(wanted_sharegpt * 3, turns) if wanted_sharegpt else []
    rng.shuffle(found)
    out = found[:wanted_sharegpt]
    chitchat = _chitchat(turns)
    rng.shuffle(chitchat)
    out += chitchat[: n - len(out)]
    if len(out) < n:
        raise ValueError(f"only {len(out)} usable dialogues; ask for fewer users than {n}")
    rng.shuffle(out)
    return out


def _pairs_to_dialogue(pairs: list[tuple[str, str]], turns: int) -> Dialogue | None:
    pairs = pairs[:turns]
    if not pairs or not all(usable(u) for u, _ in pairs):
        return None
    return Dialogue(tuple(u for u, _ in pairs), tuple(_clip(g) for _, g in pairs))


def _clip(text: str, limit: int = 200) -> str:
    """A long answer (ChatGPT's) cut after the last sentence that fits: people type short corrections."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = max(text.rfind(end, 0, limit) for end in (". ", "! ", "? "))
    return text[: cut + 1] if cut > 0 else text[:limit]


def _chitchat(turns: int) -> list[Dialogue]:
    from chitchat_dataset import Dataset

    out = []
    for key, convo in Dataset().items():
        if reserved(f"chitchat:{key}"):  # kept for the labelled set and the human-text guard
            continue
        said = [" ".join(m["text"] for m in turn) for turn in convo["messages"]]
        pairs = list(zip(said[0::2], said[1::2]))
        dialogue = _pairs_to_dialogue(pairs, turns)
        if dialogue:
            out.append(dialogue)
    return out


def _sharegpt(limit: int, turns: int) -> list[Dialogue]:
    out = []
    for record in sharegpt_records():
        if reserved(f"sharegpt:{record.get('id')}"):
            continue
        said = [(t.get("from"), t.get("value", "")) for t in record.get("conversations", [])]
        pairs = [(a[1], b[1]) for a, b in zip(said, said[1:]) if a[0] == "human" and b[0] == "gpt"]
        dialogue = _pairs_to_dialogue(pairs, turns)
        if dialogue:
            out.append(dialogue)
            if len(out) >= limit:
                break
    return out


def population(n: int, troll_share: float, troll_types: tuple[str, ...] = TROLL_TYPES, *, turns: int = 4,
               seed: int = 0) -> list[Person]:
    """``n`` people, ``troll_share`` of them trolls (types drawn evenly from ``troll_types``), in random order."""
    if not 0 <= troll_share <= 1:
        raise ValueError(f"troll share must be between 0 and 1, not {troll_share}")
    unknown = set(troll_types) - set(TROLL_TYPES)
    if unknown:
        raise ValueError(f"unknown troll types: {', '.join(sorted(unknown))}; expected: {', '.join(TROLL_TYPES)}")
    rng = random.Random(seed)
    trolls = round(n * troll_share)
    kinds = [troll_types[i % len(troll_types)] for i in range(trolls)] + ["helper"] * (n - trolls)
    rng.shuffle(kinds)
    return [Person(kind, d, random.Random(rng.random()), strictness=rng.gauss(0.0, 0.1))
            for kind, d in zip(kinds, dialogues(n, turns=turns, seed=seed))]
