"""What the linear-CKA estimators share: input checks, the HSIC ratio, and layers read a block of
rows at a time, so that no estimator copies a whole layer into float64.

Linear HSIC needs only feature-space products: ``||A' B||_F^2`` (summed over row blocks in
float64) and, for the debiased estimator of Song et al. (2012), O(n) side terms per layer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from align._memory import WORK_BYTES
from align.errors import AlignError


def as_tensor(x: Any, name: str, dtype: Any = None, device: Any = None):
    """``x`` as a validated 2-D torch tensor in ``dtype`` (default float64; an input already in
    that dtype and on that device is not copied). Empty, non-finite and constant inputs are
    refused: CKA is undefined there."""
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


def native_dtype(x: Any):
    """The torch dtype ``x`` is held in when it is float32 or float64 (no copy), else float64."""
    import torch

    if isinstance(x, torch.Tensor) and x.dtype in (torch.float32, torch.float64):
        return x.dtype
    if isinstance(x, np.ndarray) and x.dtype in (np.float32, np.float64):
        return torch.float32 if x.dtype == np.float32 else torch.float64
    return torch.float64


def check_rows(n: int, debiased: bool) -> None:
    if n < (4 if debiased else 2):
        raise AlignError(f"need at least {4 if debiased else 2} rows (examples), got {n}")


def hsic_ratio(hsic_xy, hsic_xx, hsic_yy) -> float:
    xx, yy = float(hsic_xx), float(hsic_yy)
    for name, value in (("x", xx), ("y", yy)):
        if not value > 0 or not math.isfinite(value):
            raise AlignError(
                f"{name} has no variance to align (self-HSIC {value:.3g}): constant features or a "
                "zero-variance layer; CKA is undefined"
            )
    return float(hsic_xy) / math.sqrt(xx * yy)


def gemm(a, b):
    """a @ b (torch's BLAS: numpy's between torch's elementwise kernels made the two libraries'
    idle threads spin against each other, 5-10x slower here than either alone)."""
    return a @ b


def block_rows(d: int) -> int:
    """Rows per block: a float64 block of ``d`` features within the working budget."""
    return max(64, WORK_BYTES // (8 * max(d, 1)))


class RowBlocks:
    """One representation read a block of rows at a time: its float64 column means (the
    biased estimator centres each block with them), its self-HSIC, and (debiased) the side terms
    of Song et al.'s estimator. ``t`` (validated by :func:`as_tensor`) is kept, not copied."""

    def __init__(
        self, t: Any, debiased: bool, gemm_dtype: Any = None, self_hsic: float | None = None
    ):
        import torch

        self.t, self.n, self.debiased = t, t.shape[0], debiased
        check_rows(self.n, debiased)
        self.gemm_dtype = gemm_dtype or torch.float64
        self.rows = block_rows(t.shape[1])
        self.mean = t.mean(0, dtype=torch.float64)
        if debiased:
            d = torch.cat([blk.square().sum(1) for blk in self.blocks(torch.float64)])
            s = t.sum(0, dtype=torch.float64)
            k1 = torch.cat([blk @ s for blk in self.blocks(torch.float64)]) - d
            self.side = (d, s.square().sum() - d.sum(), k1)
        if self_hsic is None:  # a caller that met this layer before passes it in
            self_hsic = cross_hsic(self, self, debiased, torch.float64)
        self.self_hsic = self_hsic

    @classmethod
    def of(
        cls, raw: Any, name: str, debiased: bool, gemm_dtype: Any = None, device: Any = None
    ) -> RowBlocks:
        """Validate ``raw`` (kept in its float dtype: no copy) and prepare it."""
        return cls(as_tensor(raw, name, native_dtype(raw), device), debiased, gemm_dtype)

    def blocks(self, dtype: Any, rows: int | None = None):
        """Row blocks in ``dtype``; centred (means in float64) for the biased estimator."""
        rows = rows or self.rows
        for start in range(0, self.n, rows):
            block = self.t[start : start + rows]
            if self.debiased:
                yield block.to(dtype)
            else:
                yield (block.double() - self.mean).to(dtype)


def cross_hsic(a: RowBlocks, b: RowBlocks, debiased: bool, dtype: Any = None):
    """HSIC(A, B) from ||A' B||_F^2 (block products summed in float64) and, debiased, the side
    terms; the products run in ``dtype`` (default: A's GEMM dtype)."""
    import torch

    dtype = dtype or a.gemm_dtype
    rows = min(a.rows, b.rows)
    cross = torch.zeros(a.t.shape[1], b.t.shape[1], dtype=torch.float64, device=a.t.device)
    if a is b:  # A' A: each block converted once
        pairs = ((block, block) for block in a.blocks(dtype, rows))
    else:
        pairs = zip(a.blocks(dtype, rows), b.blocks(dtype, rows), strict=True)
    for block_a, block_b in pairs:
        cross += gemm(block_a.T, block_b).double()
    frob = float(cross.square().sum())
    if not debiased:
        return frob
    n = a.n
    (dk, sum_k, k1), (dl, sum_l, l1) = a.side, b.side
    tr = frob - float((dk * dl).sum())
    value = tr + float(sum_k * sum_l) / ((n - 1) * (n - 2)) - 2 * float(k1 @ l1) / (n - 2)
    return value / (n * (n - 3))
