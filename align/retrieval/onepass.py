"""The k nearest neighbours in both directions from one pass over the similarity matrix.

Margin mining needs, for x [n, d] and y [m, d] (L2-normalised), each row's k most similar
columns of X Y' and each column's k most similar rows. The usual route (LASER, XTREME, jiant,
stopes) runs two kNN searches and so computes the n x m matrix twice. Here each tile of X Y' is
computed once, and both its row-wise and its column-wise top-k are taken from it and merged
into running lists ([n, k] and [m, k]) that stay on the device: the tile loop never waits for
the host (no copy, no data-dependent shape), and the lists come back once at the end.

Ties follow a search that scans keys in index order and replaces a neighbour only by a strictly
more similar one (FAISS's flat index does): among equal similarities the lower index wins, and
each list is ordered by (similarity descending, index ascending). That order is made exact by
one int64 key per entry: the similarity's float32 bits mapped to an order-preserving integer in
the high half, the complement of the index in the low half; ``topk`` on keys is then a total
order, so merges of running lists and tiles are a ``cat`` and a ``topk`` each.

A tile's row-wise top-k is found without sorting the tile: its columns fall into blocks of
``_BLOCK``; each row's k best blocks by (block maximum, lower block first) hold its k best
entries (each entry outside them is beaten by the maximum of each of k blocks ahead of its
own), so only those k x ``_BLOCK`` entries are gathered and keyed. Beside the GEMM a tile costs
one pass over its similarities per direction. The column-wise top-k is the same on the tile's
transpose (a view).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from align.errors import AlignError

_TILE = 4096  # rows and columns per tile on the CPU: 64 MB of float32 similarities
_TILE_CUDA = 16384  # on CUDA: 1 GB of float32 (512 MB bf16) per tile keeps the GEMMs large
_BLOCK = 32  # columns per block whose maximum ranks the block
_LOW = 0xFFFFFFFF  # the low 32 bits of a key: the complement of the index
_EMPTY = -(2**63)  # the key of an empty list slot: below every real key
PRECISIONS = ("float32", "tf32", "bfloat16")


@dataclass
class Neighbours:
    """Each query's k nearest keys by similarity: ``sims`` and ``ids`` [queries, k], ordered
    by similarity descending, then index ascending."""

    sims: np.ndarray
    ids: np.ndarray


def order_keys(values, index):
    """int64 keys, larger for a larger value and, among equal values, for a lower ``index``:
    the float32 bits made order-preserving (negative floats flipped; -0.0 taken as 0.0) in the
    high half, ``_LOW - index`` in the low half."""
    import torch

    bits = (values.float() + 0.0).view(torch.int32)
    ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).to(torch.int64)
    return (ordered << 32) | (_LOW - index)


def decode_keys(keys) -> tuple[Any, Any]:
    """(float32 similarities, int64 indices) of keys made by :func:`order_keys`."""
    import torch

    ordered = (keys >> 32).to(torch.int32)
    bits = torch.where(ordered < 0, ordered ^ 0x7FFFFFFF, ordered)
    return bits.view(torch.float32), _LOW - (keys & _LOW)


def tile_topk_keys(sims, k: int, offset: int):
    """The keys of each row's best ``min(k, columns)`` entries of ``sims`` [rows, columns]
    (any strides), columns numbered from ``offset``, best first."""
    import torch

    n_rows, n_cols = sims.shape
    full = n_cols - n_cols % _BLOCK
    blocks = full // _BLOCK
    device = sims.device
    if blocks > k:  # each row's k best blocks hold its k best entries
        maxima = sims[:, :full].unflatten(1, (blocks, _BLOCK)).amax(2)
        ranked = order_keys(maxima, torch.arange(blocks, device=device))
        best = ranked.topk(k, dim=1, sorted=False).indices  # [rows, k]
        cols = (best.unsqueeze(2) * _BLOCK + torch.arange(_BLOCK, device=device)).flatten(1)
        if full < n_cols:  # the columns after the last whole block are all candidates
            tail = torch.arange(full, n_cols, device=device).expand(n_rows, -1)
            cols = torch.cat([cols, tail], 1)
        values = sims.gather(1, cols)
    else:
        cols = torch.arange(n_cols, device=device).expand(n_rows, -1)
        values = sims
    return order_keys(values, cols + offset).topk(min(k, n_cols), dim=1).values


def _merge(lists, start: int, keys) -> None:
    """Rows ``start:`` of the running key lists keep their k best of old and ``keys``."""
    import torch

    stop = start + len(keys)
    both = torch.cat([lists[start:stop], keys], 1)
    lists[start:stop] = both.topk(lists.shape[1], dim=1).values


def _product(a, b, buffer):
    """a b' into the front of one reused buffer (no fresh tile, and no page faults, per tile),
    in the inputs' dtype."""
    import torch

    out = buffer[: len(a) * len(b)].view(len(a), len(b))
    torch.matmul(a, b.T, out=out)
    return out


def tile_loop(xt, yt, k: int, tile: int):
    """Both directions' running key lists ([n, k], [m, k], on the inputs' device) from one pass
    over the tiles of ``xt yt'``: torch ops only, nothing read back to the host."""
    import torch

    device = xt.device
    forward = torch.full((len(xt), k), _EMPTY, dtype=torch.int64, device=device)
    backward = torch.full((len(yt), k), _EMPTY, dtype=torch.int64, device=device)
    buffer = torch.empty(min(tile, len(xt)) * min(tile, len(yt)), dtype=xt.dtype, device=device)
    for r in range(0, len(xt), tile):
        xr = xt[r : r + tile]
        for c in range(0, len(yt), tile):
            sims = _product(xr, yt[c : c + tile], buffer)
            _merge(forward, r, tile_topk_keys(sims, k, c))
            _merge(backward, c, tile_topk_keys(sims.T, k, r))
    return forward, backward


def _neighbours(keys) -> Neighbours:
    sims, ids = decode_keys(keys)
    return Neighbours(sims.cpu().numpy(), ids.cpu().numpy())


def default_tile(device: str) -> int:
    return _TILE_CUDA if str(device).startswith("cuda") else _TILE


def bidirectional_knn(
    x: np.ndarray,
    y: np.ndarray,
    k: int,
    device: str = "cpu",
    precision: str = "float32",
    tile: int | None = None,
) -> tuple[Neighbours, Neighbours]:
    """(k nearest y of each x, k nearest x of each y) by inner product, from one pass.

    ``x``, ``y``: L2-normalised float32 rows. ``precision``: ``float32`` (exact, the CPU
    default), ``tf32`` or ``bfloat16`` (CUDA: faster tiles, neighbours may differ where
    similarities are within the reduced precision). ``tile``: rows and columns per tile
    (default 4096 on the CPU, 16384 on CUDA).
    """
    import torch

    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise AlignError(f"x and y must be [n, d] and [m, d], got {x.shape} and {y.shape}")
    if not 1 <= k <= min(len(x), len(y)):
        raise AlignError(f"k {k}: need 1 <= k <= {min(len(x), len(y))} (the smaller set)")
    if precision not in PRECISIONS:
        raise AlignError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
    old_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    try:
        xt, yt = _as_tensor(x, device, dtype), _as_tensor(y, device, dtype)
        forward, backward = tile_loop(xt, yt, k, tile or default_tile(device))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old_tf32
    return _neighbours(forward), _neighbours(backward)


def _as_tensor(x: np.ndarray, device: str, dtype: Any):
    import torch

    return torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(device=device, dtype=dtype)


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
