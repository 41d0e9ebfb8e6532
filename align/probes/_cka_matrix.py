"""The layer x layer linear-CKA matrix (see :func:`align.probes.cka.matrix`): pairs of layers
read a block of rows at a time, or, for a model against itself with every layer in memory on the
CPU, one BLAS symmetric rank-k update over all layers."""

from __future__ import annotations

from typing import Any

import numpy as np

from align.errors import AlignError
from align.probes._cka_base import (
    RowBlocks,
    as_tensor,
    check_rows,
    cross_hsic,
    hsic_ratio,
    native_dtype,
)

_SYRK_MAX_BYTES = 1 << 30  # the full [W, W] product of all layers' features, W = sum of widths


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
    return matrices(layers_a, layers_b, {debiased: gemm_dtype})[debiased]


def matrices(layers_a: Any, layers_b: Any, estimators: dict[bool, Any]) -> dict[bool, np.ndarray]:
    """:func:`matrix` for each estimator (``{debiased: gemm_dtype}``) from one pass over the
    pairs of layers: each pair is read once for all of them, and each layer's self-HSIC is
    computed once (the first time the layer is met), not once per pair."""
    same = layers_b is None
    b_layers = layers_a if same else layers_b
    out = {debiased: np.empty((len(layers_a), len(b_layers))) for debiased in estimators}
    n = None
    b_self: dict[tuple[int, bool], float] = {}
    for i in range(len(layers_a)):
        t_a = _checked(layers_a[i], f"layers_a[{i}]", n)
        n = t_a.shape[0]
        a = {db: RowBlocks(t_a, db, gd) for db, gd in estimators.items()}
        for j in range(i if same else 0, len(b_layers)):
            if same and j == i:
                b = a
            else:
                t_b = _checked(b_layers[j], f"layers_b[{j}]", n)
                b = {
                    db: RowBlocks(t_b, db, gd, b_self.get((j, db))) for db, gd in estimators.items()
                }
            for db in estimators:
                b_self.setdefault((j, db), b[db].self_hsic)
                value = hsic_ratio(cross_hsic(a[db], b[db], db), a[db].self_hsic, b[db].self_hsic)
                out[db][i, j] = value
                if same:
                    out[db][j, i] = value
    return out


def _checked(raw: Any, name: str, n: int | None):
    t = as_tensor(raw, name, native_dtype(raw))
    if n is not None and t.shape[0] != n:
        raise AlignError(f"{name} has {t.shape[0]} rows, expected {n} (same examples)")
    return t


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
    tensors = [as_tensor(t, f"{name}[{i}]", dtype) for i, t in enumerate(items)]
    device = tensors[0].device
    return [t.to(device) for t in tensors]


def _matrix_syrk(layers: Any, debiased: bool, gemm_dtype: Any) -> np.ndarray | None:
    """A model against itself from one symmetric rank-k update (CPU, all layers in memory)."""
    import torch

    a = _stack_layers(layers, "layers_a", gemm_dtype)
    n = a[0].shape[0]
    for i, t in enumerate(a):
        if t.shape[0] != n:
            raise AlignError(f"layers_a[{i}] has {t.shape[0]} rows, expected {n} (same examples)")
    check_rows(n, debiased)
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
            out[i, j] = hsic_ratio(cross[i, j], self_terms[i], self_terms[j])
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
