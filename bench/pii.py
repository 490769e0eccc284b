"""Recall of the release's PII scrubber on a planted set, and its false positives on clean chat.

    python bench/pii.py                 # recall per kind and overall, false positives on the clean set
    python bench/pii.py --misses        # also print each missed planted span and each changed clean line

The planted set (``tests/fixtures/pii_planted.jsonl``) is one chat sentence per line with the personal data
written into it, ``{"text": ..., "spans": [{"kind": ..., "text": <exact substring>}]}``. It was written before
the detectors were tuned on it and is never edited to suit them. The clean set (``tests/fixtures/pii_clean.jsonl``)
holds chat sentences with no personal data but with traps: ordinary dates, prices, versions, times, product
codes, well-known people and places, acronyms and ALL-CAPS shouting.

When a planted span counts as caught, precisely:

- fold the span and the scrubbed sentence (accents stripped, case folded) and cut both into tokens, the
  maximal runs of ASCII letters and digits ("+44 20 7946 0958" -> 44, 20, 7946, 0958; "@lena.sketches"
  -> lena, sketches);
- the span's identifying tokens are those of two characters or more that are not generic words
  (``GENERIC``: street types such as Gardens, Heights, rue and Box, flat and unit words, month and weekday
  names, and a few function words): "12 rue des Lilas" -> 12, lilas;
- the span is caught when none of its identifying tokens survives as a token of the scrubbed sentence, and
  its letters and digits run together ("447946...") do not appear in the scrubbed sentence's run either.

A token "survives" only if it is in the scrubbed sentence under each of three salts: the scrubber redraws
digits at random, and a redrawn "20" that happens to come out as "20" again is a coincidence, not a leak.
The set is written so that no identifying token of a span also occurs in its sentence outside the planted
spans (checked on load), so a surviving token can only come from a planted span. Where two spans of one
sentence share a token (an e-mail address that holds the surname: "KWAME ASANTE ... k.asante@outlook.com"),
a leak of either counts against both: the surname is still there to read.

False positives: a clean sentence counts when the scrubber changes it at all; each span it replaced is
counted by the kind the scrubber gave it. Target: recall >= 0.98 on the planted set, few clean lines changed.

Measured here: before the detectors for dates of birth, postcodes, ZIP codes, IBANs, passports, plates and
handles, recall 0.374 (68 of 182) with 0 of 172 clean sentences changed; after, 0.995 (181 of 182), 0 of 172.
"""

from __future__ import annotations

import argparse
import json
import re
import time
import unicodedata
from collections import Counter
from pathlib import Path

from organic.formats.pii import Scrubber

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
PLANTED = FIXTURES / "pii_planted.jsonl"
CLEAN = FIXTURES / "pii_clean.jsonl"
SALTS = (b"bench salt one", b"bench salt two", b"bench salt three")
GENERIC = frozenset(
    """street st avenue ave road rd lane ln drive dr court ct way place pl close crescent gardens gdns heights
    hts rue avenida calle via strasse po box flat apt apartment unit suite ste floor of the and de des du la le
    del der van von on at in january february march april may june july august september october november
    december jan feb mar apr jun jul aug sep sept oct nov dec monday tuesday wednesday thursday friday
    saturday sunday""".split()
)
_TOKEN = re.compile(r"[a-z0-9]+")


def fold(text: str) -> str:
    """Accents stripped and case folded: "Müller" -> "muller"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(fold(text))


def identifying(span: str) -> list[str]:
    return [t for t in tokens(span) if len(t) >= 2 and t not in GENERIC]


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def check_planted(items: list[dict]) -> None:
    """Every span is in its sentence, has something identifying, and its identifying tokens occur nowhere else."""
    for item in items:
        text, rest = item["text"], item["text"]
        for span in item["spans"]:
            if span["text"] not in rest:
                raise ValueError(f"planted span not in its sentence (or given twice): {span!r} / {text!r}")
            if not identifying(span["text"]):
                raise ValueError(f"planted span has no identifying token: {span!r}")
            rest = rest.replace(span["text"], " ", 1)
        outside = set(tokens(rest))
        for span in item["spans"]:
            clash = set(identifying(span["text"])) & outside
            if clash:
                raise ValueError(f"tokens {sorted(clash)} of {span['text']!r} also occur elsewhere in {text!r}")


def caught(span: str, scrubbed: list[str]) -> bool:
    """Whether nothing identifying of `span` survives in the scrubbed sentence (one version per salt)."""
    run = "".join(tokens(span))

    def leaks(out: str) -> set[str]:
        present = set(tokens(out))
        left = {t for t in identifying(span) if t in present}
        return left | ({"<run>"} if run in "".join(tokens(out)) else set())

    return not set.intersection(*(leaks(out) for out in scrubbed))


def measure(planted: list[dict] | None = None, clean: list[dict] | None = None) -> dict:
    """Recall by planted kind and overall, and false positives on the clean set."""
    planted = load(PLANTED) if planted is None else planted
    clean = load(CLEAN) if clean is None else clean
    check_planted(planted)
    scrubbers = [Scrubber(salt) for salt in SALTS]
    total, hit, misses = Counter(), Counter(), []
    for item in planted:
        scrubbed = [s.scrub(item["text"]) for s in scrubbers]
        for span in item["spans"]:
            total[span["kind"]] += 1
            if caught(span["text"], scrubbed):
                hit[span["kind"]] += 1
            else:
                misses.append((span["kind"], span["text"], scrubbed[0]))
    scrubber = scrubbers[0]
    changed, replaced = [], Counter()
    for item in clean:
        spans = scrubber.find(item["text"])
        replaced.update(s.kind for s in spans)
        out = scrubber.scrub(item["text"], spans)
        if out != item["text"]:
            changed.append((item["text"], out))
    return {
        "recall": sum(hit.values()) / sum(total.values()),
        "by_kind": {kind: (hit[kind], total[kind]) for kind in sorted(total)},
        "spans": sum(total.values()),
        "misses": misses,
        "clean_lines": len(clean),
        "clean_changed": changed,
        "clean_replaced": replaced,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--misses", action="store_true", help="print missed spans and changed clean lines")
    args = parser.parse_args()
    started = time.perf_counter()
    result = measure()
    seconds = time.perf_counter() - started
    print(f"planted set: {result['spans']} spans in {len(load(PLANTED))} sentences")
    print(f"{'kind':<10} {'caught':>7} {'of':>4} {'recall':>7}")
    for kind, (hit, total) in result["by_kind"].items():
        print(f"{kind:<10} {hit:>7} {total:>4} {hit / total:>7.3f}")
    caught_all = sum(h for h, _ in result["by_kind"].values())
    print(f"{'overall':<10} {caught_all:>7} {result['spans']:>4} {result['recall']:>7.3f}")
    changed = result["clean_changed"]
    kinds = ", ".join(f"{k}: {v}" for k, v in sorted(result["clean_replaced"].items())) or "none"
    print(f"clean set: {len(changed)} of {result['clean_lines']} sentences changed; "
          f"{sum(result['clean_replaced'].values())} spans replaced ({kinds})")
    print(f"({seconds:.2f} s)")
    if args.misses:
        for kind, text, out in result["misses"]:
            print(f"MISSED {kind}: {text!r} -> {out!r}")
        for text, out in changed:
            print(f"CHANGED: {text!r} -> {out!r}")


if __name__ == "__main__":
    main()
