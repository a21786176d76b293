"""Placeholder prices: stored by the ingest, kept out of every statistic by the analysis (a module of its own, so
the analysis reads these two numbers without importing the ingest)."""

# A price stored but kept out of statistics by analysis: zero, negative, a cent, or a 999999-style placeholder.
# (percentages and per-diems included: a 0 % or a 999999 per diem is no more a price.)
PLACEHOLDER_AT_MOST = 0.01
PLACEHOLDER_AT_LEAST = 999999.0
