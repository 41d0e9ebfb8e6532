"""Seeded subsamples, shared by every command that subsamples sentences."""

from __future__ import annotations

import numpy as np


def subsample(n: int, limit: int, seed: int) -> np.ndarray:
    """Sorted row indices: all of ``range(n)``, or a seeded sample of ``limit`` of them."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
