"""The k nearest neighbours in both directions from one pass over the similarity matrix.

Margin mining needs, for x [n, d] and y [m, d] (L2-normalised), each row's k most similar
columns of X Y' and each column's k most similar rows. The usual route (LASER, XTREME, jiant,
stopes) runs two kNN searches and so computes the n x m matrix twice. Here each tile of X Y' is
computed once, and both its row-wise and its column-wise top-k are taken from it and merged
into running lists ([n, k] and [m, k]): extra memory is O((n + m) k + tile).

Ties follow a search that scans keys in index order and replaces a neighbour only by a strictly
more similar one (FAISS's flat index does): among equal similarities the lower index wins, and
each list is ordered by (similarity descending, index ascending). A tile's top-(k+1) tells
whether its k-th value is tied with one left out; only such rows are settled by a full sort.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from align.errors import AlignError

_TILE = 4096  # rows and columns per tile: 64 MB of float32 similarities


@dataclass
class Neighbours:
    """Each query's k nearest keys by similarity: ``sims`` and ``ids`` [queries, k], ordered
    by similarity descending, then index ascending."""

    sims: np.ndarray
    ids: np.ndarray


def _canonical(values: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k best of (values, ids) by (value descending, id ascending)."""
    rows = np.repeat(np.arange(values.shape[0]), values.shape[1])
    order = np.lexsort((ids.ravel(), -values.ravel(), rows)).reshape(values.shape)[:, :k]
    order = order - (np.arange(values.shape[0]) * values.shape[1])[:, None]
    take = np.take_along_axis
    return take(values, order, 1), take(ids, order, 1)


def _tile_topk(sims, k: int, dim: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k along ``dim`` of one tile (torch), ties resolved to the lower index exactly."""
    import torch

    width = sims.shape[dim]
    kk = min(k + 1, width)
    values, idx = torch.topk(sims, kk, dim=dim, largest=True, sorted=True)
    if dim == 0:
        values, idx, sims_rows = values.T, idx.T, sims.T
    else:
        sims_rows = sims
    values, idx = values.cpu().numpy(), idx.cpu().numpy().astype(np.int64)
    if kk > k:
        tied = np.flatnonzero(values[:, k] == values[:, k - 1])
        for row in tied:  # the k-th value ties with one left out: settle it by a full sort
            full = sims_rows[row].cpu().numpy()
            order = np.lexsort((np.arange(width), -full))[:k]
            values[row, :k], idx[row, :k] = full[order], order
        values, idx = values[:, :k], idx[:, :k]
    return values, idx + offset


def _update(best: Neighbours, sims, dim: int, start: int, offset: int, k: int) -> None:
    """Merge one tile into the running lists of its rows (``dim`` 1) or its columns (0).

    Only rows (columns) whose tile maximum beats their current k-th similarity can change (an
    equal value loses to the earlier, lower index), so after the first tiles almost every row
    costs one pass for the maximum and nothing more.
    """
    import torch

    count = sims.shape[1 - dim]
    kth = torch.from_numpy(best.sims[start : start + count, k - 1]).to(sims.device)
    changed = torch.nonzero(sims.amax(dim=dim) > kth).flatten()
    if len(changed) == 0:
        return
    sub = sims.index_select(1 - dim, changed)
    values, ids = _tile_topk(sub, k, dim, offset)
    rows = start + changed.cpu().numpy()
    merged_v = np.concatenate([best.sims[rows], values], axis=1)
    merged_i = np.concatenate([best.ids[rows], ids], axis=1)
    best.sims[rows], best.ids[rows] = _canonical(merged_v, merged_i, k)


def _empty(n: int, k: int) -> Neighbours:
    return Neighbours(np.full((n, k), -np.inf, np.float32), np.full((n, k), -1, np.int64))


def _as_tensor(x: np.ndarray, device: str, dtype: Any):
    import torch

    return torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(device=device, dtype=dtype)


def bidirectional_knn(
    x: np.ndarray,
    y: np.ndarray,
    k: int,
    device: str = "cpu",
    precision: str = "float32",
    tile: int = _TILE,
) -> tuple[Neighbours, Neighbours]:
    """(k nearest y of each x, k nearest x of each y) by inner product, from one pass.

    ``x``, ``y``: L2-normalised float32 rows. ``precision``: ``float32`` (exact, the CPU
    default), ``tf32`` or ``bfloat16`` (CUDA: faster tiles, neighbours may differ where
    similarities are within the reduced precision).
    """
    import torch

    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise AlignError(f"x and y must be [n, d] and [m, d], got {x.shape} and {y.shape}")
    if not 1 <= k <= min(len(x), len(y)):
        raise AlignError(f"k {k}: need 1 <= k <= {min(len(x), len(y))} (the smaller set)")
    dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
    old_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    forward, backward = _empty(len(x), k), _empty(len(y), k)
    try:
        ys = [_as_tensor(y[c : c + tile], device, dtype) for c in range(0, len(y), tile)]
        for r in range(0, len(x), tile):
            xr = _as_tensor(x[r : r + tile], device, dtype)
            for j, yc in enumerate(ys):
                c = j * tile
                sims = (xr @ yc.T).float()
                _update(forward, sims, 1, r, c, k)
                _update(backward, sims, 0, c, r, k)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old_tf32
    return forward, backward


def margin_candidates(
    forward: Neighbours, backward: Neighbours
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ratio-margin scores of every (x, its k neighbours) and (y, its k neighbours) pair:
    cos / mean(mean sim of x's k neighbours, mean sim of y's k neighbours), from the lists
    alone (the similarities were computed once, in the pass)."""
    x_means = forward.sims.mean(axis=1)
    y_means = backward.sims.mean(axis=1)
    fwd = forward.sims / ((x_means[:, None] + y_means[forward.ids]) / 2)
    bwd = backward.sims / ((y_means[:, None] + x_means[backward.ids]) / 2)
    return fwd, bwd, x_means, y_means


def greedy_one_to_one(src: np.ndarray, tgt: np.ndarray) -> np.ndarray:
    """Positions kept by the greedy scan of pairs in the given order (best first): a pair is kept
    when no pair kept before it shares its source or its target. Vectorised in rounds: every
    pair first (among those left) for both its source and its target is kept, and the later
    pairs that share one with a kept pair are dropped; this keeps exactly what the scan keeps.
    """
    n_pairs = len(src)
    alive = np.ones(n_pairs, bool)
    kept = np.zeros(n_pairs, bool)
    position = np.arange(n_pairs)
    size_src = int(src.max()) + 1 if n_pairs else 0
    size_tgt = int(tgt.max()) + 1 if n_pairs else 0
    while alive.any():
        live = np.flatnonzero(alive)
        first_src = np.full(size_src, n_pairs)
        first_tgt = np.full(size_tgt, n_pairs)
        np.minimum.at(first_src, src[live], position[live])
        np.minimum.at(first_tgt, tgt[live], position[live])
        winners = live[(first_src[src[live]] == live) & (first_tgt[tgt[live]] == live)]
        kept[winners] = True
        taken_src = np.zeros(size_src, bool)
        taken_tgt = np.zeros(size_tgt, bool)
        taken_src[src[winners]] = True
        taken_tgt[tgt[winners]] = True
        alive[live] = ~(taken_src[src[live]] | taken_tgt[tgt[live]])
    return np.flatnonzero(kept)
