"""Centered kernel alignment (Kornblith et al. 2019) on numpy or torch arrays, any device.

- ``linear(x, y, debiased=False)``: feature-space formula, O(n d^2), never forms an n x n Gram.
- ``rbf(x, y, sigma_frac=0.5)``: Gaussian kernel, bandwidth a fraction of the median pairwise
  distance (Gram space).
- ``minibatch(x, y, batch_size)``: debiased HSIC averaged over minibatches (Nguyen, Raghu &
  Kornblith 2021) for inputs too large for one Gram matrix.
- ``matrix(layers_a, layers_b)``: the full layer x layer linear-CKA matrix from one matrix
  product of all layers' features, not pair by pair.

Debiased HSIC is the unbiased estimator of Song et al. (2012), defined for n >= 4. Inputs are
rows = examples, columns = features; computation is float64 unless ``dtype`` says otherwise.
Constant (zero-variance) or non-finite inputs raise :class:`~align.errors.AlignError`:
CKA is undefined there, and never returned as a silent number.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from align.errors import AlignError


def _as_tensor(x: Any, name: str, dtype: Any = None, device: Any = None):
    import torch

    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.ndim != 2:
        raise AlignError(
            f"{name}: expected a 2-D array [n examples, d features], got shape {tuple(t.shape)}"
        )
    t = t.to(device=device if device is not None else t.device, dtype=dtype or torch.float64)
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise AlignError(f"{name}: empty array {tuple(t.shape)}")
    low, high = torch.aminmax(t, dim=0)  # one pass: NaN/inf propagate into these
    if not (torch.isfinite(low).all() and torch.isfinite(high).all()):
        raise AlignError(f"{name}: contains NaN or inf")
    scale = max(1.0, float(high.abs().max()), float(low.abs().max()))
    if float((high - low).max()) <= 1e-12 * scale:
        raise AlignError(
            f"{name} has no variance to align: every example is the same vector (constant features "
            "or a zero-variance layer); CKA is undefined"
        )
    return t


def _pair(x: Any, y: Any, dtype: Any = None, min_rows: int = 2):
    xt = _as_tensor(x, "x", dtype)
    yt = _as_tensor(y, "y", dtype, device=xt.device)
    if xt.shape[0] != yt.shape[0]:
        raise AlignError(
            f"x and y must hold the same examples: {xt.shape[0]} rows vs {yt.shape[0]} rows"
        )
    if xt.shape[0] < min_rows:
        raise AlignError(f"need at least {min_rows} rows (examples), got {xt.shape[0]}")
    return xt, yt


def _ratio(hsic_xy, hsic_xx, hsic_yy) -> float:
    xx, yy = float(hsic_xx), float(hsic_yy)
    for name, value in (("x", xx), ("y", yy)):
        if not value > 0 or not math.isfinite(value):
            raise AlignError(
                f"{name} has no variance to align (self-HSIC {value:.3g}): constant features or a "
                "zero-variance layer; CKA is undefined"
            )
    return float(hsic_xy) / math.sqrt(xx * yy)


# ----------------------------------------------------------------------------- linear
def _linear_hsic_terms(x, y, debiased: bool):
    """HSIC(x, y) for linear kernels from feature products only (no n x n matrix)."""
    n = x.shape[0]
    if not debiased:
        xc, yc = x - x.mean(0), y - y.mean(0)
        return (yc.T @ xc).square().sum()
    # Unbiased HSIC (Song et al. 2012) with K = x x^T, L = y y^T, diagonals zeroed.
    dk, dl = x.square().sum(1), y.square().sum(1)  # diag(K), diag(L)
    sx, sy = x.sum(0), y.sum(0)
    tr_kl = (y.T @ x).square().sum() - (dk * dl).sum()  # tr(K~ L~)
    sum_k, sum_l = sx.square().sum() - dk.sum(), sy.square().sum() - dl.sum()  # 1'K~1, 1'L~1
    k1, l1 = x @ sx - dk, y @ sy - dl  # K~ 1, L~ 1
    return (tr_kl + sum_k * sum_l / ((n - 1) * (n - 2)) - 2 * (k1 @ l1) / (n - 2)) / (n * (n - 3))


def linear(x: Any, y: Any, debiased: bool = False, dtype: Any = None) -> float:
    """Linear CKA between representations ``x [n, d1]`` and ``y [n, d2]`` of the same n examples."""
    xt, yt = _pair(x, y, dtype, min_rows=4 if debiased else 2)
    return _ratio(
        _linear_hsic_terms(xt, yt, debiased),
        _linear_hsic_terms(xt, xt, debiased),
        _linear_hsic_terms(yt, yt, debiased),
    )


_GRAM_BYTES = 16 << 20  # column blocks of the n x n Grams held at once


def linear_resampled(x: Any, y: Any, weights: np.ndarray) -> np.ndarray:
    """Linear CKA of every bootstrap resample at once; ``weights [B, n]`` are row counts.

    Row b equals :func:`linear` on the rows repeated ``weights[b]`` times. With Grams K = XX',
    L = YY' and w one resample's counts (W = sum w), the weighted-centred HSIC is
    ``w'(K∘L)w - (2/W) Σ_i w_i (Kw)_i (Lw)_i + (w'Kw)(w'Lw)/W²`` (the ``tr(KHLH)`` identity
    with weights). The Grams are formed a block of columns at a time (never n x n in memory);
    B resamples cost a few [B, n] x [n, block] products per block instead of B refits.
    """
    xt, yt = _pair(x, y)
    w = np.asarray(weights, np.float64)
    n = xt.shape[0]
    if w.ndim != 2 or w.shape[1] != n or (w < 0).any() or not (w.sum(1) > 0).all():
        raise AlignError(f"weights must be [resamples, {n}] counts, got {w.shape}")
    names = ("k", "l", "kl", "kk", "ll")
    acc = {name: np.empty((w.shape[0], n)) for name in names}  # w @ Gram, column by column
    step = max(1, _GRAM_BYTES // (8 * n * 5))
    for start in range(0, n, step):
        cols = slice(start, min(n, start + step))
        k = (xt @ xt[cols].T).numpy()
        l_ = (yt @ yt[cols].T).numpy()
        for name, gram in zip(names, (k, l_, k * l_, k * k, l_ * l_), strict=True):
            acc[name][:, cols] = w @ gram
    total = w.sum(1)

    def hsic(a: str, b: str) -> np.ndarray:
        wa, wb, wab = acc[a], acc[b], acc[a + b]
        return (
            np.einsum("bi,bi->b", wab, w)
            - 2 / total * np.einsum("bi,bi,bi->b", w, wa, wb)
            + np.einsum("bi,bi->b", wa, w) * np.einsum("bi,bi->b", wb, w) / total**2
        )

    xy, xx, yy = hsic("k", "l"), hsic("k", "k"), hsic("l", "l")
    return xy / np.sqrt(np.maximum(xx * yy, 1e-300))


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
    return _ratio(
        hsic_gram(kx, ky, debiased), hsic_gram(kx, kx, debiased), hsic_gram(ky, ky, debiased)
    )


def linear_gram(x: Any, y: Any, debiased: bool = False, dtype: Any = None) -> float:
    """Linear CKA via n x n Gram matrices (the textbook route; equal to :func:`linear`)."""
    xt, yt = _pair(x, y, dtype, min_rows=4 if debiased else 2)
    return cka_gram(gram_linear(xt), gram_linear(yt), debiased)


def rbf(
    x: Any, y: Any, sigma_frac: float = 0.5, debiased: bool = False, dtype: Any = None
) -> float:
    """RBF-kernel CKA; bandwidth ``sigma_frac`` x the median pairwise distance of each input."""
    if sigma_frac <= 0:
        raise AlignError(f"sigma_frac must be > 0, got {sigma_frac}")
    xt, yt = _pair(x, y, dtype, min_rows=4 if debiased else 2)
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
    xt, yt = _pair(x, y, dtype, min_rows=4)
    gen = torch.Generator().manual_seed(seed)
    totals = torch.zeros(3, dtype=xt.dtype, device=xt.device)
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=gen) if shuffle else torch.arange(len(xt))
        order = order.to(xt.device)
        for start in range(0, len(xt), batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 4:
                continue
            xb, yb = xt[idx], yt[idx]
            if kernel == "linear":
                terms = [_linear_hsic_terms(a, b, True) for a, b in ((xb, yb), (xb, xb), (yb, yb))]
            else:
                kx, ky = gram_rbf(xb, sigma_frac), gram_rbf(yb, sigma_frac)
                terms = [hsic_gram(a, b, True) for a, b in ((kx, ky), (kx, kx), (ky, ky))]
            totals += torch.stack(terms)
    return _ratio(*totals)


# ----------------------------------------------------------------------------- matrix
def _gemm(a, b):
    """a @ b; on the CPU through numpy's BLAS (~1.4x faster than torch's for this shape here)."""
    import torch

    if a.device.type == "cpu":
        return torch.from_numpy(np.matmul(a.numpy(), b.numpy()))
    return a @ b


_SYRK_MAX_BYTES = 1 << 30  # the full [W, W] product of all layers' features, W = sum of widths


def _self_block_frobenius(b_all, bounds: np.ndarray) -> np.ndarray:
    """``||B_i' B_j||_F^2`` for i <= j from one symmetric rank-k update (BLAS syrk, CPU).

    syrk fills only the upper triangle of ``B' B``: blocks above the diagonal are whole, a
    diagonal block's Frobenius norm is 2 x its upper triangle minus its diagonal.
    """
    from scipy.linalg import blas

    x = b_all.numpy()
    syrk = blas.dsyrk if x.dtype == np.float64 else blas.ssyrk
    gram = syrk(1.0, x.T, trans=0)  # upper triangle of x' x, [W, W]
    n_layers = len(bounds) - 1
    out = np.zeros((n_layers, n_layers))
    for i in range(n_layers):
        lo, hi = bounds[i], bounds[i + 1]
        squares = np.square(gram[lo:hi, hi:], dtype=np.float64)
        if i + 1 < n_layers:
            out[i, i + 1 :] = np.add.reduceat(squares.sum(0), bounds[i + 1 : -1] - hi)
        diag_block = np.square(np.triu(gram[lo:hi, lo:hi]), dtype=np.float64)
        out[i, i] = 2 * diag_block.sum() - np.trace(diag_block)
    return out


def _stack_layers(layers: Any, name: str, dtype: Any):
    import torch

    if isinstance(layers, torch.Tensor | np.ndarray):
        items = [layers[i] for i in range(layers.shape[0])]
    else:
        items = list(layers)
    if not items:
        raise AlignError(f"{name}: no layers")
    tensors = [_as_tensor(t, f"{name}[{i}]", dtype) for i, t in enumerate(items)]
    device = tensors[0].device
    return [t.to(device) for t in tensors]


_ROWS = 4096  # rows per block in the matrix's products (no full-size copy of a layer)


class _Layer:
    """One layer prepared for the matrix, read a block of rows at a time: its float64 column
    means (biased: blocks are centred with them), its self-HSIC, and (debiased) the side
    terms of Song et al.'s estimator. The layer itself is kept in its own dtype, not copied."""

    def __init__(self, raw: Any, name: str, debiased: bool, gemm_dtype: Any, device: Any = None):
        import torch

        native = raw.dtype if isinstance(raw, torch.Tensor) else None
        if isinstance(raw, np.ndarray) and raw.dtype in (np.float32, np.float64):
            native = torch.float32 if raw.dtype == np.float32 else torch.float64
        self.t = _as_tensor(raw, name, native, device)  # validated; shares the input's memory
        self.n, self.debiased, self.gemm_dtype = self.t.shape[0], debiased, gemm_dtype
        self.mean = self.t.mean(0, dtype=torch.float64)
        if debiased:
            d = torch.cat([blk.square().sum(1) for blk in self.blocks(torch.float64)])
            s = self.t.sum(0, dtype=torch.float64)
            k1 = torch.cat([blk @ s for blk in self.blocks(torch.float64)]) - d
            self.side = (d, s.square().sum() - d.sum(), k1)
        self.self_hsic = _cross(self, self, debiased, torch.float64)

    def blocks(self, dtype: Any):
        """Row blocks in ``dtype``; centred (means in float64) for the biased estimator."""
        for start in range(0, self.n, _ROWS):
            block = self.t[start : start + _ROWS]
            if self.debiased:
                yield block.to(dtype)
            else:
                yield (block.double() - self.mean).to(dtype)


def _cross(a: _Layer, b: _Layer, debiased: bool, dtype: Any = None):
    """HSIC(A, B) from ||A' B||_F^2 (block products summed in float64) and, debiased, the side
    terms; the products run in ``dtype`` (default: the layers' GEMM dtype)."""
    import torch

    dtype = dtype or a.gemm_dtype
    cross = torch.zeros(a.t.shape[1], b.t.shape[1], dtype=torch.float64, device=a.t.device)
    for block_a, block_b in zip(a.blocks(dtype), b.blocks(dtype), strict=True):
        cross += _gemm(block_a.T, block_b).double()
    frob = float(cross.square().sum())
    if not debiased:
        return frob
    n = a.n
    (dk, sum_k, k1), (dl, sum_l, l1) = a.side, b.side
    tr = frob - float((dk * dl).sum())
    value = tr + float(sum_k * sum_l) / ((n - 1) * (n - 2)) - 2 * float(k1 @ l1) / (n - 2)
    return value / (n * (n - 3))


def _check_rows(n: int, debiased: bool) -> None:
    if n < (4 if debiased else 2):
        raise AlignError(f"need at least {4 if debiased else 2} rows (examples), got {n}")


def matrix(
    layers_a: Any,
    layers_b: Any = None,
    debiased: bool = False,
    dtype: Any = None,
    gemm_dtype: Any = None,
) -> np.ndarray:
    """Linear CKA between every layer of ``layers_a`` and every layer of ``layers_b``.

    ``layers_*``: ``[L, n, d]`` arrays or sequences of ``[n, d]`` arrays on the same n examples
    (a sequence may load each layer on access: pairs of layers are held, never all of them);
    ``layers_b=None`` compares ``layers_a`` with itself (the upper triangle; on the CPU one BLAS
    syrk over all layers when they fit in memory). Centering and every sum run in float64; the
    big products run in ``gemm_dtype``: float32 by default for the biased estimator (inputs
    already centered: agrees with float64 to ~1e-6), float64 for the debiased one (uncentered
    Grams cancel and need the precision).
    """
    import torch

    gemm_dtype = gemm_dtype or (torch.float64 if debiased else torch.float32)
    if layers_b is None and isinstance(layers_a, np.ndarray | torch.Tensor):
        fast = _matrix_syrk(layers_a, debiased, gemm_dtype)
        if fast is not None:
            return fast
    same = layers_b is None
    b_layers = layers_a if same else layers_b
    out = np.empty((len(layers_a), len(b_layers)))
    n = None
    for i in range(len(layers_a)):
        a = _Layer(layers_a[i], f"layers_a[{i}]", debiased, gemm_dtype)
        n = a.n if n is None else n
        if a.n != n:
            raise AlignError(f"layers_a[{i}] has {a.n} rows, expected {n} (same examples)")
        _check_rows(n, debiased)
        for j in range(i if same else 0, len(b_layers)):
            b = (
                a
                if same and j == i
                else _Layer(b_layers[j], f"layers_b[{j}]", debiased, gemm_dtype)
            )
            if b.n != n:
                raise AlignError(f"layers_b[{j}] has {b.n} rows, expected {n} (same examples)")
            out[i, j] = _ratio(_cross(a, b, debiased), a.self_hsic, b.self_hsic)
            if same:
                out[j, i] = out[i, j]
    return out


def _matrix_syrk(layers: Any, debiased: bool, gemm_dtype: Any) -> np.ndarray | None:
    """A model against itself from one symmetric rank-k update (CPU, all layers in memory)."""
    import torch

    a = _stack_layers(layers, "layers_a", gemm_dtype)
    n = a[0].shape[0]
    for i, t in enumerate(a):
        if t.shape[0] != n:
            raise AlignError(f"layers_a[{i}] has {t.shape[0]} rows, expected {n} (same examples)")
    _check_rows(n, debiased)
    width = sum(t.shape[1] for t in a)
    if a[0].device.type != "cpu" or width**2 * a[0].element_size() > _SYRK_MAX_BYTES:
        return None
    if not debiased:
        a = [t - t.mean(0, dtype=torch.float64).to(t.dtype) for t in a]
    bounds = np.concatenate([[0], np.cumsum([t.shape[1] for t in a])])
    cross = torch.from_numpy(_self_block_frobenius(torch.cat(a, dim=1), bounds))
    cross = torch.triu(cross) + torch.triu(cross, 1).T
    if debiased:
        cross = _debias(cross, a, a)
    self_terms = cross.diagonal()
    out = np.empty((len(a), len(a)))
    for i in range(len(a)):
        for j in range(len(a)):
            out[i, j] = _ratio(cross[i, j], self_terms[i], self_terms[j])
    return out


def _debias(frob, a: list, b: list):
    """Turn ||A_i' B_j||_F^2 into unbiased HSIC using O(n d) side terms per layer."""
    import torch

    n = a[0].shape[0]

    def side(t):
        d = t.square().sum(1)
        s = t.sum(0)
        return d, s.square().sum() - d.sum(), t @ s - d

    sa, sb = [side(t) for t in a], [side(t) for t in b]
    out = torch.empty_like(frob)
    for i, (dk, sum_k, k1) in enumerate(sa):
        for j, (dl, sum_l, l1) in enumerate(sb):
            tr = frob[i, j] - (dk * dl).sum()
            out[i, j] = (tr + sum_k * sum_l / ((n - 1) * (n - 2)) - 2 * (k1 @ l1) / (n - 2)) / (
                n * (n - 3)
            )
    return out
