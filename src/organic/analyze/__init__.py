"""Analysis of the store (or an export): the report of figures and plots, annotator agreement, and which
users to trust.

Its statistics live in ``organic.stats`` and the SafetyMix benchmark of simulated trolls in
``organic.simulate.safetymix``.

- ``report``: ``build_report`` writes ``report.json`` and ``report.html`` (Table 1 and Table 2 of Xu et al.
  2023, feedback, activity, agreement); the heavy lifting runs in DuckDB over the flat message table.
- ``trolls``: per-user trust scores in the way of Ju et al. 2022 ("Finding the helpers and ignoring the trolls").

Nothing here writes to the store or imports ``organic.serve``.
"""
