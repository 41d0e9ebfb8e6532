"""Ratio-margin scoring (Artetxe & Schwenk 2019): cos(x, y) / mean of the k-NN similarities."""

from __future__ import annotations

import numpy as np

from align._memory import WORK_BYTES
from align.errors import AlignError
from align.vectors import FLAT, IndexSpec, knn


def neighbourhood_means(
    x: np.ndarray, y: np.ndarray, k: int, device: str = "cpu", index: IndexSpec = FLAT
):
    """kNN of x in y and y in x, with each row's mean similarity to its k neighbours."""
    x2y_sim, x2y_ids = knn(x, y, k, device=device, normalized=True, index=index)
    y2x_sim, y2x_ids = knn(y, x, k, device=device, normalized=True, index=index)
    if (x2y_ids < 0).any() or (y2x_ids < 0).any():
        raise AlignError(
            f"the {index.kind} index found fewer than k={k} neighbours for some queries (the "
            "margin needs all k): probe more cells (--nprobe) or search wider (--ef-search)"
        )
    return (x2y_sim, x2y_ids, x2y_sim.mean(axis=1)), (y2x_sim, y2x_ids, y2x_sim.mean(axis=1))


def ratio_margin(cos: np.ndarray, mean_a: np.ndarray, mean_b: np.ndarray) -> np.ndarray:
    return cos / ((mean_a + mean_b) / 2)


def candidate_scores(
    queries: np.ndarray,
    keys: np.ndarray,
    cand_ids: np.ndarray,
    q_means: np.ndarray,
    k_means: np.ndarray,
) -> np.ndarray:
    """Ratio margin of each query against each of its candidate keys ``cand_ids [n, k]``.

    Queries go in blocks, so the gathered candidates (``[block, k, d]``, within the working
    budget) never hold k copies of the whole key set.
    """
    cos = np.empty(cand_ids.shape, np.float32)
    block = max(1, WORK_BYTES // (4 * max(cand_ids.shape[1], 1) * keys.shape[1]))
    for start in range(0, len(queries), block):
        rows = slice(start, start + block)
        cos[rows] = np.einsum("nd,nkd->nk", queries[rows], keys[cand_ids[rows]])
    return ratio_margin(cos, q_means[:, None], k_means[cand_ids])


def margin_knn(
    x: np.ndarray, y: np.ndarray, k: int = 4, device: str = "cpu", index: IndexSpec = FLAT
):
    """Best y for each x by ratio margin among x's k nearest neighbours: (scores, indices)."""
    (_, x2y_ids, x_means), (_, _, y_means) = neighbourhood_means(x, y, k, device, index)
    scores = candidate_scores(x, y, x2y_ids, x_means, y_means)
    best = scores.argmax(axis=1)
    rows = np.arange(len(x))
    return scores[rows, best], x2y_ids[rows, best]
