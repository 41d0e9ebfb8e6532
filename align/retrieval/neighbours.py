"""The result of a kNN search in one direction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Neighbours:
    """Each query's k nearest keys by similarity: ``sims`` and ``ids`` [queries, k], ordered
    by similarity descending, then index ascending."""

    sims: np.ndarray
    ids: np.ndarray
