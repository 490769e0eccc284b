"""Reading the store: ``organic analyze`` and ``trolls``; ``organic.cli`` registers them on the root app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from organic.cli.options import DatabaseOption, console, fail, store_engine


def analyze(
    out: Annotated[Path, typer.Option("--out", help="Folder for report.html (plots inside) and report.json (every figure).")],
    source: Annotated[Path | None, typer.Option("--from", help="A BB3x release file, or a flat-table export (.jsonl, .parquet, or a folder of .parquet files); default: the store.")] = None,
    check_safety: Annotated[bool, typer.Option(help="Run the safety check on messages that carry no verdict (about a thousand a second).")] = False,
    database_url: DatabaseOption = None,
) -> None:
    """The organic-data report: Table 1 and Table 2 style figures with 95% intervals, feedback, activity, annotator agreement, plots."""
    from organic.analyze.report import build_report, iter_figures

    try:
        with console.status("analysing"):
            figures = build_report(source, out, None if source else store_engine(database_url), check_safety=check_safety)
    except (ValueError, FileNotFoundError) as error:
        raise fail(str(error)) from None
    console.print(", ".join(f"{name.replace('_', ' ')} {value:,}" for name, value in iter_figures(figures)))
    console.print(f"wrote {out / 'report.html'} and {out / 'report.json'}")


def trolls(
    threshold: Annotated[float, typer.Option(help="Flag users whose trust (mean held-out probability of their labels) is under this.")] = 0.6,
    unsafe_threshold: Annotated[float, typer.Option(help="Also flag users with more than this share of unsafe messages ...")] = 0.5,
    min_messages: Annotated[int, typer.Option(help="... among at least this many messages.")] = 5,
    features: Annotated[str, typer.Option(help="minilm (sentence embeddings, slower) or tfidf (quick).")] = "minilm",
    limit: Annotated[int, typer.Option(help="Users to list, lowest trust first (0: all).")] = 50,
    out: Annotated[Path | None, typer.Option("--out", help="Also write every user's scores as JSON lines here.")] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Helpers vs trolls: each user's trust score (Ju et al. 2022), their share of unsafe messages, and why."""
    import json as _json

    from organic.analyze.trolls import FEATURIZERS, TrustConfig, score_store

    if features not in FEATURIZERS:
        raise fail(f"unknown features {features!r}; choose one of: {', '.join(FEATURIZERS)}")
    with console.status("scoring users"):
        config = TrustConfig(threshold=threshold, unsafe_threshold=unsafe_threshold, min_messages=min_messages)
        rows = score_store(store_engine(database_url), config=config, featurize=features)
    if out:
        out.write_text("".join(_json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    table = Table("user", "trust", "labels", "unsafe messages", "troll", "why")
    for r in rows[:limit or None]:
        table.add_row(r.user, "-" if r.trust is None else f"{r.trust:.2f}", str(r.labels),
                      f"{r.unsafe_messages}/{r.messages}", "yes" if r.is_troll else "", r.why)
    Console().print(table)
    few = sum(r.too_few_labels for r in rows)
    console.print(f"{sum(r.is_troll for r in rows)} of {len(rows)} users flagged as trolls" + (f"; all scores in {out}" if out else "")
                  + (f"; {few} rated fewer than 3 replies, too few for a trust score" if few else ""))
