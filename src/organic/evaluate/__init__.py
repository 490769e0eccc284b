"""Evaluation: automatic judges, Table 9 breakdowns, pairwise human comparisons, live A/B figures."""
