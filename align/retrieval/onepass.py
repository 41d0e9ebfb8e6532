"""The k nearest neighbours in both directions from one pass over the similarity matrix.

Margin mining needs, for x [n, d] and y [m, d] (L2-normalised), each row's k most similar
columns of X Y' and each column's k most similar rows. The usual route (LASER, XTREME, jiant,
stopes) runs two kNN searches and so computes the n x m matrix twice. Here each tile of X Y' is
computed once, and both its row-wise and its column-wise top-k are taken from it and merged
into running lists ([n, k] and [m, k]): extra memory is O((n + m) k + tile).

Ties follow a search that scans keys in index order and replaces a neighbour only by a strictly
more similar one (FAISS's flat index does): among equal similarities the lower index wins, and
each list is ordered by (similarity descending, index ascending). A list's first tile is merged
by its top-(k+1), which tells whether its k-th value is tied with one left out (only such rows
are settled by a full sort); every later tile adds only the entries strictly above the list's
current k-th similarity, found by one comparison per entry against the smallest such k-th
value in the tile, so beside the GEMM a tile costs about one pass over its similarities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from align.errors import AlignError

_TILE = 4096  # rows and columns per tile: 64 MB of float32 similarities
_BLOCK = 32  # columns per block whose maximum decides whether the block is looked into
_CANDIDATES_PER_ROW = 512  # entries examined per tile row beyond which top-k settles a tile


@dataclass
class Neighbours:
    """Each query's k nearest keys by similarity: ``sims`` and ``ids`` [queries, k], ordered
    by similarity descending, then index ascending."""

    sims: np.ndarray
    ids: np.ndarray


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


def _merge(best: Neighbours, queries: np.ndarray, keys: np.ndarray, sims: np.ndarray, k: int):
    """Merge candidate (query, key, similarity) triples into the running lists: each touched
    query keeps its k best of old and new by (similarity descending, index ascending)."""
    rows, counts = np.unique(queries, return_counts=True)
    q = np.concatenate([np.repeat(rows, k), queries])
    v = np.concatenate([best.sims[rows].ravel(), sims])
    i = np.concatenate([best.ids[rows].ravel(), keys])
    order = np.lexsort((i, -v, q))
    starts = np.concatenate([[0], np.cumsum(counts + k)[:-1]])
    rank = np.arange(len(q)) - np.repeat(starts, counts + k)
    keep = order[rank < k]
    best.sims[rows], best.ids[rows] = v[keep].reshape(-1, k), i[keep].reshape(-1, k)


def _update_topk(best: Neighbours, sims, dim: int, start: int, offset: int, k: int, fresh: bool):
    """Merge one tile's top-k along ``dim`` into the lists of its rows (``dim`` 1) or columns
    (0). A list's first tile (``fresh``) is its top-k as it stands, already in list order."""
    values, ids = _tile_topk(sims, k, dim, offset)
    if fresh:
        best.sims[start : start + len(values)], best.ids[start : start + len(values)] = values, ids
        return
    queries = np.repeat(start + np.arange(len(values)), values.shape[1])
    _merge(best, queries, ids.ravel(), values.ravel(), k)


def _candidates(sims, floor: float, limit: int):
    """The tile's entries above ``floor`` (the smallest current k-th similarity among the lists
    the tile can change) as (rows, columns, values), or None when more than ``limit`` entries
    would be examined (then the tile is settled by top-k). Where the columns split into blocks
    of ``_BLOCK``, only blocks whose maximum is above the floor are looked into: beside the
    tile's GEMM this costs about one pass over its similarities."""
    import torch

    n_rows, n_cols = sims.shape
    if n_cols % _BLOCK:
        mask = sims > floor
        if int(torch.count_nonzero(mask)) > limit:
            return None
        where = torch.nonzero(mask)
        rows, cols = where[:, 0], where[:, 1]
        values = sims[rows, cols]
    else:
        blocks = sims.view(n_rows, n_cols // _BLOCK, _BLOCK)
        above = torch.nonzero(blocks.amax(dim=2) > floor)
        if len(above) * _BLOCK > limit:
            return None
        inside = blocks[above[:, 0], above[:, 1]]  # [blocks above, _BLOCK]
        hit = torch.nonzero(inside > floor)
        rows = above[hit[:, 0], 0]
        cols = above[hit[:, 0], 1] * _BLOCK + hit[:, 1]
        values = inside[hit[:, 0], hit[:, 1]]
    return rows.cpu().numpy(), cols.cpu().numpy(), values.cpu().numpy()


def _update(rows: Neighbours, cols: Neighbours, sims, r: int, c: int, k: int) -> None:
    """Merge a tile into the running lists of its rows' queries (``rows``, from offset ``r``;
    its columns are their keys from ``c``) and of its columns' queries (``cols``, from ``c``).

    Tiles reach a list in increasing key order, so every key already in it has a lower index
    than this tile's and wins a tie: only entries strictly above a list's k-th similarity can
    enter it. A list's first tile is merged by its top-k; later tiles by those entries alone.
    """
    n_rows, n_cols = sims.shape
    kth_r = rows.sims[r : r + n_rows, k - 1].copy()
    kth_c = cols.sims[c : c + n_cols, k - 1].copy()
    fresh_r, fresh_c = c == 0, r == 0
    if fresh_r:
        _update_topk(rows, sims, 1, r, c, k, fresh=True)
    if fresh_c:
        _update_topk(cols, sims, 0, c, r, k, fresh=True)
    if fresh_r and fresh_c:
        return
    floor = float(
        min(kth.min() for kth, fresh in ((kth_r, fresh_r), (kth_c, fresh_c)) if not fresh)
    )
    found = _candidates(sims, floor, n_rows * _CANDIDATES_PER_ROW)
    if found is None:
        if not fresh_r:
            _update_topk(rows, sims, 1, r, c, k, fresh=False)
        if not fresh_c:
            _update_topk(cols, sims, 0, c, r, k, fresh=False)
        return
    i, j, values = found
    if not fresh_r and (hit := values > kth_r[i]).any():
        _merge(rows, r + i[hit], c + j[hit], values[hit], k)
    if not fresh_c and (hit := values > kth_c[j]).any():
        _merge(cols, c + j[hit], r + i[hit], values[hit], k)


def _product(a, b, buffer):
    """a b' into the front of one reused buffer (no fresh 64 MB, and no page faults, per tile),
    as float32."""
    import torch

    out = buffer[: len(a) * len(b)].view(len(a), len(b))
    torch.matmul(a, b.T, out=out)
    return out.float()


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
        buffer = torch.empty(min(tile, len(x)) * min(tile, len(y)), dtype=dtype, device=device)
        for r in range(0, len(x), tile):
            xr = _as_tensor(x[r : r + tile], device, dtype)
            for j, yc in enumerate(ys):
                if r == 0:  # every column's first tile: take its top-k along contiguous rows
                    sims = _product(yc, xr, buffer)
                    _update(backward, forward, sims, j * tile, r, k)
                else:
                    _update(forward, backward, _product(xr, yc, buffer), r, j * tile, k)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old_tf32
    return forward, backward


def margin_candidates(forward: Neighbours, backward: Neighbours) -> tuple[np.ndarray, np.ndarray]:
    """Ratio-margin scores of every (x, its k neighbours) and (y, its k neighbours) pair:
    cos / mean(mean sim of x's k neighbours, mean sim of y's k neighbours), from the lists
    alone (the similarities were computed once, in the pass)."""
    x_means = forward.sims.mean(axis=1)
    y_means = backward.sims.mean(axis=1)
    fwd = forward.sims / ((x_means[:, None] + y_means[forward.ids]) / 2)
    bwd = backward.sims / ((y_means[:, None] + x_means[backward.ids]) / 2)
    return fwd, bwd


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
