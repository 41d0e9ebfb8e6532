"""The k nearest neighbours in both directions from one pass over the similarity matrix.

Margin mining needs, for x [n, d] and y [m, d] (L2-normalised), each row's k most similar
columns of X Y' and each column's k most similar rows. The usual route (LASER, XTREME, jiant,
stopes) runs two kNN searches and so computes the n x m matrix twice. Here each tile of X Y' is
computed once, and both its row-wise and its column-wise top-k are taken from it and merged
into running lists ([n, k] and [m, k]): extra memory is O((n + m) k + tile).

Ties follow a search that scans keys in index order and replaces a neighbour only by a strictly
more similar one (FAISS's flat index does): among equal similarities the lower index wins, and
each list is ordered by (similarity descending, index ascending).

Two loops give the same lists, each shaped for where it runs:

- on a GPU, :mod:`align.retrieval._knn_device`: fixed shapes, every merge a torch op on the
  device, nothing read back until the end (a loop that waits for the host leaves the GPU idle:
  the pruned loop below ran 4.6-23x slower than computing the matrix twice there);
- on the CPU, :mod:`align.retrieval._knn_host`: pruned by the running lists, so a later tile
  costs about one pass beside its GEMM (0.81 of the GEMM rate at 50k a side, against 0.74 for
  the device loop on the same CPU, where reading a value back costs nothing).

``loop`` chooses one explicitly (tests run both on the CPU).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from align.errors import AlignError
from align.retrieval import _knn_device, _knn_host
from align.retrieval.neighbours import Neighbours

__all__ = ["Neighbours", "bidirectional_knn", "greedy_one_to_one", "margin_candidates"]

_TILE = 4096  # rows and columns per tile on the CPU: 64 MB of float32 similarities
_TILE_CUDA = 16384  # on CUDA: 1 GB of float32 (512 MB bf16) per tile keeps the GEMMs large
PRECISIONS = ("float32", "tf32", "bfloat16")
Loop = Literal["auto", "host", "device"]


def default_tile(device: str) -> int:
    return _TILE_CUDA if str(device).startswith("cuda") else _TILE


def bidirectional_knn(
    x: np.ndarray,
    y: np.ndarray,
    k: int,
    device: str = "cpu",
    precision: str = "float32",
    tile: int | None = None,
    loop: Loop = "auto",
) -> tuple[Neighbours, Neighbours]:
    """(k nearest y of each x, k nearest x of each y) by inner product, from one pass.

    ``x``, ``y``: L2-normalised float32 rows. ``precision``: ``float32`` (exact, the CPU
    default), ``tf32`` or ``bfloat16`` (CUDA: faster tiles, neighbours may differ where
    similarities are within the reduced precision). ``tile``: rows and columns per tile
    (default 4096 on the CPU, 16384 on CUDA). ``loop``: ``device`` (fixed shapes, nothing read
    back: the GPU's), ``host`` (pruned: the CPU's) or ``auto`` (by ``device``).
    """
    import torch

    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise AlignError(f"x and y must be [n, d] and [m, d], got {x.shape} and {y.shape}")
    if not 1 <= k <= min(len(x), len(y)):
        raise AlignError(f"k {k}: need 1 <= k <= {min(len(x), len(y))} (the smaller set)")
    if precision not in PRECISIONS:
        raise AlignError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if loop not in ("auto", "host", "device"):
        raise AlignError(f"loop {loop!r}: expected auto, host or device")
    on_device = loop == "device" or (loop == "auto" and str(device).startswith("cuda"))
    if not on_device and str(device) != "cpu":
        raise AlignError(f"loop host runs on the CPU, not on {device}")
    dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
    old_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    try:
        xt, yt = _as_tensor(x, device, dtype), _as_tensor(y, device, dtype)
        tile = tile or default_tile(device)
        if not on_device:
            return _knn_host.tile_loop(xt, yt, k, tile)
        forward, backward = _knn_device.tile_loop(xt, yt, k, tile)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old_tf32
    return _neighbours(forward), _neighbours(backward)


def _neighbours(keys) -> Neighbours:
    sims, ids = _knn_device.decode_keys(keys)
    return Neighbours(sims.cpu().numpy(), ids.cpu().numpy())


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
