"""Evaluation: how good are a model's replies, and is one model better than another?

- ``judges``: automatic judges for the paper's taxonomy (``taxonomy.CrowdLabel``) on any reply in its context,
  and their agreement with crowd annotations;
- ``breakdown``: Table 9 of Xu et al. 2023 (Good % and each Bad %, with 95% intervals), as Markdown or HTML;
- ``pairwise``: win rates with intervals and the sign test, for ACUTE-Eval style human comparisons (the votes are
  the store's ``Comparison`` and ``ComparisonVote`` rows; ``winner`` reads one);
- ``run``: ``organic eval``: replies on held-out contexts, judged, with perplexity and the reward model's score;
- ``live``: live A/B figures: organic thumbs up / down rates per served model version;

Nothing here imports ``organic.serve``; the store is read, never written.
"""
