"""Figures and comparisons built from results files only (never recomputed)."""
