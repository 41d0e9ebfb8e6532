"""Centered kernel alignment (Kornblith et al. 2019) on numpy or torch arrays, any device.

- ``linear(x, y, debiased=False)``: feature-space formula, O(n d^2), never forms an n x n Gram
  and never copies a whole input: rows are read in float64 blocks.
- ``rbf(x, y, sigma_frac=0.5)``: Gaussian kernel, bandwidth a fraction of the median pairwise
  distance (Gram space).
- ``minibatch(x, y, batch_size)``: debiased HSIC averaged over minibatches (Nguyen, Raghu &
  Kornblith 2021) for inputs too large for one Gram matrix.
- ``matrix(layers_a, layers_b)``: the full layer x layer linear-CKA matrix, pairs of layers read
  in row blocks (or one BLAS syrk over all layers of a model against itself).
- ``linear_resampled(x, y, weights)``: linear CKA of many bootstrap resamples at once (exact;
  Gram or feature form, whichever is cheaper).

Debiased HSIC is the unbiased estimator of Song et al. (2012), defined for n >= 4. Inputs are
rows = examples, columns = features; computation is float64 unless ``dtype`` says otherwise.
Constant (zero-variance) or non-finite inputs raise :class:`~align.errors.AlignError`:
CKA is undefined there, and never returned as a silent number.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from align.errors import AlignError
from align.probes._cka_base import RowBlocks, as_tensor, cross_hsic, hsic_ratio, native_dtype
from align.probes._cka_matrix import matrices, matrix
from align.probes._cka_resampled import Form, Weights
from align.probes._cka_resampled import linear_resampled as _resampled

__all__ = [
    "linear",
    "linear_gram",
    "linear_resampled",
    "matrices",
    "matrix",
    "minibatch",
    "rbf",
]


def _pair(x: Any, y: Any, dtype: Any = None, min_rows: int = 2):
    """Both inputs validated as tensors in ``dtype`` (None: each kept in its float dtype)."""
    xt = as_tensor(x, "x", dtype or native_dtype(x))
    yt = as_tensor(y, "y", dtype or native_dtype(y), device=xt.device)
    if xt.shape[0] != yt.shape[0]:
        raise AlignError(
            f"x and y must hold the same examples: {xt.shape[0]} rows vs {yt.shape[0]} rows"
        )
    if xt.shape[0] < min_rows:
        raise AlignError(f"need at least {min_rows} rows (examples), got {xt.shape[0]}")
    return xt, yt


# ----------------------------------------------------------------------------- linear
def linear(x: Any, y: Any, debiased: bool = False, dtype: Any = None) -> float:
    """Linear CKA between representations ``x [n, d1]`` and ``y [n, d2]`` of the same n examples.

    The inputs are read in row blocks (float64 by default; ``dtype`` sets the products'), so
    memory beyond the inputs is a block and a ``d1 x d2`` matrix.
    """
    xt, yt = _pair(x, y, None, min_rows=4 if debiased else 2)
    a, b = RowBlocks(xt, debiased, dtype), RowBlocks(yt, debiased, dtype)
    return hsic_ratio(cross_hsic(a, b, debiased), a.self_hsic, b.self_hsic)


def linear_resampled(
    x: Any, y: Any, weights: Weights, form: Form = "auto", device: Any = None
) -> np.ndarray:
    """Linear CKA of every bootstrap resample at once: ``[B]``.

    ``weights``: ``[B, n]`` row counts, or a function returning them in batches (called once).
    Resample b equals :func:`linear` on the rows repeated ``weights[b]`` times. Exact in float64
    in either of two forms (``form``; ``auto`` takes the cheaper for n, d and B): Gram column
    blocks, O(n² (d + B)), or feature-space products, O(B n d²); see
    :mod:`align.probes._cka_resampled`. ``device``: where the products run (default: the
    inputs').
    """
    if form not in ("auto", "gram", "feature"):
        raise AlignError(f"form {form!r}: expected auto, gram or feature")
    xt, yt = _pair(x, y)
    return _resampled(xt, yt, weights, form, device)


# ------------------------------------------------------------------------------ grams
def center_gram(k):
    """H K H with H = I - 11'/n, without forming H."""
    return k - k.mean(0, keepdim=True) - k.mean(1, keepdim=True) + k.mean()


def hsic_gram(kx, ky, debiased: bool = False):
    """HSIC from two n x n Gram matrices (biased: <HKH, HLH>; debiased: Song et al. 2012)."""
    n = kx.shape[0]
    if not debiased:
        return (center_gram(kx) * center_gram(ky)).sum()
    kx = kx - kx.diag().diag()
    ky = ky - ky.diag().diag()
    k1, l1 = kx.sum(1), ky.sum(1)
    tr = (kx * ky).sum()
    return (tr + k1.sum() * l1.sum() / ((n - 1) * (n - 2)) - 2 * (k1 @ l1) / (n - 2)) / (
        n * (n - 3)
    )


def gram_linear(x):
    return x @ x.T


def gram_rbf(x, sigma_frac: float = 0.5):
    """exp(-d^2 / (2 sigma^2)), sigma = ``sigma_frac`` x median pairwise distance."""
    import torch

    sq = x.square().sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2 * (x @ x.T)).clamp_min(0)
    off = d2[~torch.eye(len(x), dtype=torch.bool, device=x.device)]
    median = off.sqrt().median()
    if not median > 0:
        raise AlignError("RBF CKA: the median pairwise distance is 0 (constant input)")
    sigma = sigma_frac * median
    return torch.exp(-d2 / (2 * sigma**2))


def cka_gram(kx, ky, debiased: bool = False) -> float:
    return hsic_ratio(
        hsic_gram(kx, ky, debiased), hsic_gram(kx, kx, debiased), hsic_gram(ky, ky, debiased)
    )


def linear_gram(x: Any, y: Any, debiased: bool = False, dtype: Any = None) -> float:
    """Linear CKA via n x n Gram matrices (the textbook route; equal to :func:`linear`)."""
    import torch

    xt, yt = _pair(x, y, dtype or torch.float64, min_rows=4 if debiased else 2)
    return cka_gram(gram_linear(xt), gram_linear(yt), debiased)


def rbf(
    x: Any, y: Any, sigma_frac: float = 0.5, debiased: bool = False, dtype: Any = None
) -> float:
    """RBF-kernel CKA; bandwidth ``sigma_frac`` x the median pairwise distance of each input."""
    if sigma_frac <= 0:
        raise AlignError(f"sigma_frac must be > 0, got {sigma_frac}")
    import torch

    xt, yt = _pair(x, y, dtype or torch.float64, min_rows=4 if debiased else 2)
    return cka_gram(gram_rbf(xt, sigma_frac), gram_rbf(yt, sigma_frac), debiased)


# -------------------------------------------------------------------------- minibatch
def minibatch(
    x: Any,
    y: Any,
    batch_size: int = 1024,
    kernel: str = "linear",
    sigma_frac: float = 0.5,
    epochs: int = 1,
    seed: int = 0,
    dtype: Any = None,
    shuffle: bool = True,
) -> float:
    """Minibatch CKA: debiased HSIC summed over (random) minibatches, then normalised.

    Unbiased per batch, so the estimate converges to the full-batch debiased CKA as batches
    accumulate (Nguyen, Raghu & Kornblith 2021). Rows that do not fill a last batch of at least
    4 are left out of that epoch.
    """
    import torch

    if batch_size < 4:
        raise AlignError(f"batch_size must be >= 4 for debiased HSIC, got {batch_size}")
    if kernel not in ("linear", "rbf"):
        raise AlignError(f"kernel {kernel!r}: expected linear or rbf")
    xt, yt = _pair(x, y, dtype or torch.float64, min_rows=4)
    gen = torch.Generator().manual_seed(seed)
    totals = np.zeros(3)  # HSIC(x, y), HSIC(x, x), HSIC(y, y), summed over batches
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=gen) if shuffle else torch.arange(len(xt))
        order = order.to(xt.device)
        for start in range(0, len(xt), batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 4:
                continue
            xb, yb = xt[idx], yt[idx]
            if kernel == "linear":
                a, b = RowBlocks(xb, True, xt.dtype), RowBlocks(yb, True, xt.dtype)
                terms = [cross_hsic(a, b, True), a.self_hsic, b.self_hsic]
            else:
                kx, ky = gram_rbf(xb, sigma_frac), gram_rbf(yb, sigma_frac)
                terms = [float(hsic_gram(a, b, True)) for a, b in ((kx, ky), (kx, kx), (ky, ky))]
            totals += terms
    return hsic_ratio(*totals)
