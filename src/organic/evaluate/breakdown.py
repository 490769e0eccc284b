"""Table 9 of Xu et al. 2023: the share of a model's replies that are Good and that are each kind of Bad, with
95% Wilson intervals and counts, one row per model, as JSON, Markdown or HTML.

Labels come from anywhere that speaks ``taxonomy.CrowdLabel``: the automatic judges, crowd annotations, a
simulator. Pure functions, no I/O.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from organic.stats import Proportion
from organic.taxonomy import CrowdLabel

COLUMNS = tuple(CrowdLabel)  # Table 9's order: Good, Inappropriate, Off topic, Nonsensical, Ignoring, Repeating, Other


@dataclass(frozen=True)
class Breakdown:
    """How many of ``n`` replies got each label."""

    counts: dict[CrowdLabel, int]
    n: int

    def share(self, label: CrowdLabel) -> Proportion:
        return Proportion(self.counts.get(label, 0), self.n)

    @property
    def bad(self) -> Proportion:
        """Replies with any Bad label (1 - Good): the paper's headline bad rate (BB3 14.7%, BB3x 5.6%)."""
        return Proportion(self.n - self.counts.get(CrowdLabel.GOOD, 0), self.n)

    def to_json(self) -> dict:
        """``{"n": ..., "good": {"count", "n", "percent", "ci95"}, ..., "bad": {...}}``, percentages."""
        return {"n": self.n, **{label.value: self.share(label).to_json() for label in COLUMNS}, "bad": self.bad.to_json()}


def breakdown(labels: Iterable[CrowdLabel | str]) -> Breakdown:
    """Count labels (enum members or their strings, parsed as the taxonomy parses them)."""
    counts = Counter(label if isinstance(label, CrowdLabel) else CrowdLabel.parse(label) for label in labels)
    return Breakdown({label: counts.get(label, 0) for label in COLUMNS}, sum(counts.values()))


def bad_rate(labels: Breakdown | Iterable[CrowdLabel | str]) -> Proportion:
    """The share of replies judged anything but Good, with its count (``.ci`` gives the 95% interval)."""
    return (labels if isinstance(labels, Breakdown) else breakdown(labels)).bad


def _cell(p: Proportion) -> str:
    low, high = p.ci
    return f"{100 * p.share:.1f} [{100 * low:.1f}, {100 * high:.1f}] ({p.count})"


def _rows(tables: Mapping[str, Breakdown], extra: Mapping[str, Mapping[str, str]] | None):
    extra = extra or {}
    extra_names = list(dict.fromkeys(name for columns in extra.values() for name in columns))
    header = ["Model", "n", *(label.label for label in COLUMNS), "Bad", *extra_names]
    rows = [[model, str(t.n), *(_cell(t.share(label)) for label in COLUMNS), _cell(t.bad),
             *(extra.get(model, {}).get(name, "") for name in extra_names)] for model, t in tables.items()]
    return header, rows


def render_markdown(tables: Mapping[str, Breakdown], extra: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """A Markdown table, one row per model: each cell is "percent [95% CI] (count)". ``extra`` adds columns:
    ``{model: {column: text}}`` (perplexity, reward)."""
    header, rows = _rows(tables, extra)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def render_html(tables: Mapping[str, Breakdown], extra: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """The same table as HTML, every cell escaped."""
    header, rows = _rows(tables, extra)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class=\"table9\"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>\n"
