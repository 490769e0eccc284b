"""``organic analyze``: the organic-data report, ``report.json`` (every figure) and ``report.html`` (plots inside).

    figures = build_report(None, Path("report"), engine)            # the store
    figures = build_report(Path("release_data_00.jsonl"), Path("report"))  # a BB3x file, or a flat export

The source becomes the flat message table as Parquet (``source``), DuckDB counts every figure over it
(``figures``), so memory stays bounded however large the data is; matplotlib draws the plots (``plots``) and
``html`` writes the page.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy import Engine

from organic.analyze.figures import annotator_pairs, compute
from organic.analyze.html import render_html
from organic.analyze.plots import render_plots
from organic.analyze.source import as_parquet


def build_report(source: Path | None, out_dir: Path, engine: Engine | None = None, *, plots: bool = True,
                 check_safety: bool = False, memory_limit: str = "3GB", threads: int | None = None) -> dict[str, Any]:
    """Write ``out_dir/report.json`` and ``out_dir/report.html`` and return the figures.

    ``source``: a Parquet file (or a folder of them) of the flat message table, a JSONL file of that table,
    or a BB3x release file; None reads the store through ``engine``. With ``check_safety``, messages that
    carry no safety verdict are checked now with ``organic.safety`` (about a thousand messages a second).
    """
    if source is None and engine is None:
        raise ValueError("nothing to analyse: give a file (--from PATH) or a store")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="organic-report-") as tmp:
        parquet, skipped = as_parquet(source, Path(tmp), engine)
        con = duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": str(Path(tmp) / "spill"),
                                     **({"threads": threads} if threads else {})})
        try:
            figures = compute(con, parquet, check_safety=check_safety)
        finally:
            con.close()
    figures["source"] = "store" if source is None else str(source)
    if skipped:
        figures["skipped_lines"] = skipped
    if source is None:
        figures["agreement"]["annotator_pairs"] = annotator_pairs(engine)
    (out_dir / "report.json").write_text(json.dumps(figures, indent=2, ensure_ascii=False), encoding="utf-8")
    images = render_plots(figures) if plots else {}
    (out_dir / "report.html").write_text(render_html(figures, images), encoding="utf-8")
    return figures


def iter_figures(figures: dict) -> Iterator[tuple[str, Any]]:
    """The top-level counts, for a one-screen summary on the command line."""
    for key in ("users", "conversations", "messages", "human_messages", "bot_messages", "thumbs_up", "thumbs_down",
                "feedback_items", "annotated_messages"):
        yield key, figures[key]
