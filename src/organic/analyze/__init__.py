"""Analysis of the store (or an export): the report of figures and plots, annotator agreement, and which
users to trust.

Its statistics live in ``organic.stats`` and the SafetyMix benchmark of simulated trolls in
``organic.simulate.safetymix``.

- ``report``: ``build_report`` writes ``report.json`` and ``report.html`` (Table 1 and Table 2 of Xu et al.
  2023, feedback, activity, agreement) from the modules below.
- ``source``: the store, a Parquet, BB3x or flat JSONL file as the flat message table in Parquet.
- ``figures``: every figure of the report, counted by DuckDB over that table; Cohen's kappa of annotator pairs.
- ``plots`` and ``html``: the report's plots (matplotlib) and its self-contained page.
- ``trolls``: per-user trust scores in the way of Ju et al. 2022 ("Finding the helpers and ignoring the trolls").

Nothing here writes to the store or imports ``organic.serve``.
"""
