"""Representation-bias audit: heterogeneity-measure experiments, measures, statistics and advice (issue 6)."""
