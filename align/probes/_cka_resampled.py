"""Linear CKA of many bootstrap resamples at once, exact, in time linear in the resamples.

Resample b is given by row counts ``w`` (W = Σ w): it equals linear CKA on the rows repeated
``w_i`` times. With Gram matrices K = XX', L = YY' (of rows centred once by their plain mean:
CKA does not change when a constant is added to every row, and centring first keeps the
weighted terms from cancelling), the weighted-centred HSIC is

    HSIC_w(K, L) = w'(K∘L)w - (2/W) Σ_i w_i (Kw)_i (Lw)_i + (w'Kw)(w'Lw)/W².

``Kw = X (X'w)`` and ``w'Kw = ||X'w||²`` cost O(n d) per resample through the features. Only
``w'(K∘L)w = ||X' diag(w) Y||_F²`` (and its K∘K, L∘L kin) couples every pair of rows; it has two
exact forms, and the cheaper one for the shapes at hand is used:

- Gram form: K and L formed a square block at a time (n² (d1 + d2) / 2, by symmetry), then one
  ``[B, block] x [block, block]`` product per Hadamard Gram and block: 3 B n² / 2 in all;
- feature form: ``X' diag(w_b) Y`` for each resample, a block of rows at a time: B n (d1 d2 +
  d1² + d2²), linear in n (wins when n is large against B and d).

Every resample's counts are drawn once (``[B, n]`` float64, about one float32 layer for B = 200
and d = 400) and never again: drawing them anew for each block of columns made the old Gram
loop grow as n³ once the counts outgrew the working budget. The products run on the given
device (float64); inputs are read a block of rows at a time, never copied whole. Products and
elementwise steps are all torch's: alternating numpy's BLAS with torch's elementwise kernels made
each side's idle threads spin against the other's (2.3 s against 0.18 s at n = 3,000 here).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, Literal

import numpy as np

from align._memory import WORK_BYTES
from align.errors import AlignError
from align.probes._cka_base import block_rows

Weights = np.ndarray | Callable[[], Iterable[np.ndarray]]
Form = Literal["auto", "gram", "feature"]
_MIN_GRAM_BLOCK = 256  # smaller blocks leave the products bound by converting rows


def resample_counts(weights: Weights, n: int) -> np.ndarray:
    """Every resample's counts as one float64 ``[B, n]`` array (a function is called once)."""
    chunks = [weights] if isinstance(weights, np.ndarray) else list(weights())
    if not chunks:
        raise AlignError(f"weights must be [resamples, {n}] counts, got none")
    w = np.concatenate([np.asarray(c, np.float64).reshape(len(c), -1) for c in chunks])
    if w.ndim != 2 or w.shape[1] != n or (w < 0).any() or not (w.sum(1) > 0).all():
        raise AlignError(f"weights must be [resamples, {n}] counts, got {w.shape}")
    return w


def cost(n: int, d1: int, d2: int, resamples: int, form: Literal["gram", "feature"]) -> float:
    """Multiply-adds of the ``w'(K∘L)w``-type terms in ``form`` (the rest is O(B n d))."""
    if form == "gram":
        return n * n * (d1 + d2 + 3 * resamples) / 2
    return resamples * n * (d1 * d2 + d1 * d1 + d2 * d2)


class _Centred:
    """One input (kept, not copied) with its float64 column mean: rows come out centred, in
    float64, on the device of the products."""

    def __init__(self, t, device: Any) -> None:
        import torch

        self.t, self.device = t, device
        self.n, self.d = t.shape
        self.mean = t.mean(0, dtype=torch.float64).to(device)

    def rows(self, span: slice):
        import torch

        return self.t[span].to(device=self.device, dtype=torch.float64) - self.mean

    def blocks(self, rows: int):
        """(start, centred rows), a block of ``rows`` at a time."""
        for start in range(0, self.n, rows):
            yield start, self.rows(slice(start, start + rows))


def _linear_terms(x: _Centred, y: _Centred, w):
    """Per resample [B]: w'Kw, w'Lw, and [3, B]: Σ w (Kw)(Lw), Σ w (Kw)², Σ w (Lw)², through the
    features (``X'w`` once, then ``Kw`` a block of rows at a time)."""
    import torch

    rows = block_rows(max(x.d, y.d, w.shape[0]))
    xw = sum(b.T @ w[:, s : s + len(b)].T for s, b in x.blocks(rows))
    yw = sum(b.T @ w[:, s : s + len(b)].T for s, b in y.blocks(rows))
    triple = torch.zeros(3, w.shape[0], dtype=torch.float64, device=x.device)
    for (s, bx), (_, by) in zip(x.blocks(rows), y.blocks(rows), strict=True):
        kw, lw = (bx @ xw).T, (by @ yw).T  # [B, rows]
        wb = w[:, s : s + len(bx)]
        triple += torch.stack([(wb * kw * lw).sum(1), (wb * kw * kw).sum(1), (wb * lw * lw).sum(1)])
    return xw.square().sum(0), yw.square().sum(0), triple


def _square_block(n: int) -> int:
    """Rows (and columns) of one Gram block: a few float64 blocks within the working budget."""
    return min(n, max(_MIN_GRAM_BLOCK, math.isqrt(WORK_BYTES // (8 * 4))))


def _hadamard_gram(x: _Centred, y: _Centred, w):
    """[3, B]: w'(K∘L)w, w'(K∘K)w, w'(L∘L)w from square blocks of K and L (upper triangle of
    blocks; an off-diagonal block stands for its mirror too). Each block of rows is converted
    once per block it meets, so memory is a few blocks whatever n."""
    import torch

    step = _square_block(x.n)
    out = torch.zeros(3, w.shape[0], dtype=torch.float64, device=x.device)
    for i in range(0, x.n, step):
        rows = slice(i, i + step)
        xi, yi, wi = x.rows(rows), y.rows(rows), w[:, rows]
        for j in range(i, x.n, step):
            cols = slice(j, j + step)
            xj, yj = (xi, yi) if j == i else (x.rows(cols), y.rows(cols))
            k, l_ = xi @ xj.T, yi @ yj.T
            wj, mirror = w[:, cols], 1.0 if j == i else 2.0
            out[0] += mirror * ((wi @ (k * l_)) * wj).sum(1)
            out[1] += mirror * ((wi @ k.square_()) * wj).sum(1)
            out[2] += mirror * ((wi @ l_.square_()) * wj).sum(1)
    return out


def _hadamard_feature(x: _Centred, y: _Centred, w):
    """[3, B]: ||X' diag(w) Y||², ||X' diag(w) X||², ||Y' diag(w) Y||², each resample's
    ``d x d`` products summed over blocks of rows."""
    import torch

    rows = block_rows(max(x.d, y.d))
    out = torch.zeros(3, w.shape[0], dtype=torch.float64, device=x.device)
    for b in range(w.shape[0]):
        sums = None
        for (s, bx), (_, by) in zip(x.blocks(rows), y.blocks(rows), strict=True):
            wb = w[b, s : s + len(bx), None]
            xy, xx, yy = bx.T @ (wb * by), bx.T @ (wb * bx), by.T @ (wb * by)
            sums = (xy, xx, yy) if sums is None else (sums[0] + xy, sums[1] + xx, sums[2] + yy)
        out[:, b] = torch.stack([m.square().sum() for m in sums])
    return out


def linear_resampled(x, y, weights: Weights, form: Form = "auto", device: Any = None) -> np.ndarray:
    """Linear CKA of every resample, ``[B]``, for validated 2-D tensors ``x``, ``y`` (n rows);
    ``form`` ``auto`` takes the cheaper of the two exact forms."""
    import torch

    n, d1, d2 = x.shape[0], x.shape[1], y.shape[1]
    counts = resample_counts(weights, n)
    device = device if device is not None else x.device
    if form == "auto":
        resamples = len(counts)
        gram, feature = (cost(n, d1, d2, resamples, f) for f in ("gram", "feature"))
        form = "gram" if gram <= feature else "feature"
    w = torch.from_numpy(counts).to(device)
    cx, cy = _Centred(x, device), _Centred(y, device)
    quad = (_hadamard_gram if form == "gram" else _hadamard_feature)(cx, cy, w)
    wkw, wlw, triple = _linear_terms(cx, cy, w)
    total = w.sum(1)
    hsic = quad - 2 / total * triple + torch.stack([wkw * wlw, wkw * wkw, wlw * wlw]) / total**2
    xy, xx, yy = hsic.cpu().numpy()
    return xy / np.sqrt(np.maximum(xx * yy, 1e-300))
