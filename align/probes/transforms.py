"""Retrieval after a transform of the geometry: what survives whitening and a cross-fitted map.

A change in retrieval is an offset between the languages (per-language centring removes it:
:func:`align.probes.alignment.centered_correct`), a stretch (per-language whitening removes
it), a turn (an orthogonal map learned on other translation pairs undoes it), or a change in
each language's internal structure that no linear map recovers. Each function here takes one
language's translation pairs ``x[i] <-> y[i]`` (``[n, d]`` each; ``y`` English) and returns,
per query sentence, whether top-1 cosine retrieval finds its translation after the transform:

- :func:`whitened_correct`: each side centred and ZCA-whitened with its own sentences only (no
  pairs), its covariance shrunk toward ``tr(S)/d * I`` (``shrinkage``; Ledoit-Wolf style target),
  so that a layer with d > n still whitens;
- :func:`mapped_correct`: both sides centred (each with its own mean: no pairs), then a map
  ``xx -> en`` (queries ``x``) or ``en -> xx`` (queries ``y``) fit on the translation pairs of
  the other folds and applied to this fold's queries, which search every sentence of the other
  side: ``kind="procrustes"`` (orthogonal, the SVD of the cross-covariance) or
  ``kind="linear"`` (ridge, its penalty chosen by generalized cross-validation on the
  training pairs only).

Cross-fitting (K folds, seeded): every sentence's outcome comes from a map that never saw it.
An in-sample map with n <= d fits any pairing exactly (1.0 on unrelated sentences); a
cross-fitted one stays at chance there (tested). Fits run in torch (float64) on ``device``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from align.errors import AlignError
from align.vectors import check_pair, knn

MapKind = Literal["procrustes", "linear"]
RIDGE_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)  # x the mean squared singular value


@dataclass(frozen=True)
class MapFit:
    """How a cross-fitted map was fit (recorded with the result)."""

    kind: MapKind
    folds: int
    seed: int
    ridge: tuple[float, ...] = ()  # the penalty chosen in each fold (linear)


def _torch(a: np.ndarray, device: str):
    import torch

    return torch.as_tensor(np.asarray(a, np.float64), device=device)


def fold_of(n: int, folds: int, seed: int) -> np.ndarray:
    """Each sentence's fold: a seeded permutation of ``range(n)`` cut into ``folds`` parts of
    sizes differing by at most one."""
    if not 2 <= folds <= n:
        raise AlignError(f"map_folds {folds}: need 2 <= folds <= n = {n}", param="map_folds")
    order = np.random.default_rng(seed).permutation(n)
    assigned = np.empty(n, np.int64)
    assigned[order] = np.arange(n) % folds
    return assigned


def whiten(x: np.ndarray, shrinkage: float = 0.05, device: str = "cpu") -> np.ndarray:
    """``x`` centred and ZCA-whitened by its own covariance shrunk toward ``tr(S)/d * I``:
    ``(x - mean) C^(-1/2)`` with ``C = (1 - shrinkage) S + shrinkage tr(S)/d I``."""
    import torch

    if not 0 < shrinkage <= 1:
        raise AlignError(f"shrinkage {shrinkage}: must lie in (0, 1]", param="whiten_shrinkage")
    t = _torch(x, device)
    t = t - t.mean(0)
    cov = t.T @ t / max(len(t) - 1, 1)
    trace = torch.trace(cov) / cov.shape[0]
    if float(trace) <= 0:
        raise AlignError("whitening: the embeddings have no variance")
    target = (1 - shrinkage) * cov + shrinkage * trace * torch.eye(cov.shape[0], device=device,
                                                                    dtype=cov.dtype)  # fmt: skip
    values, vectors = torch.linalg.eigh(target)
    inv_sqrt = (vectors * values.clamp_min(1e-12 * float(trace)).rsqrt()) @ vectors.T
    return (t @ inv_sqrt).cpu().numpy()


def _correct(queries: np.ndarray, keys: np.ndarray, answers: np.ndarray) -> np.ndarray:
    """Whether each query's nearest key (cosine) is its answer."""
    _, ids = knn(queries.astype(np.float32), keys.astype(np.float32), 1)
    return (ids[:, 0] == answers).astype(np.float64)


def whitened_correct(
    queries: np.ndarray, keys: np.ndarray, shrinkage: float = 0.05, device: str = "cpu"
) -> np.ndarray:
    """Per query: its translation retrieved after each side is whitened on its own."""
    check_pair(queries, keys, min_rows=2)
    q, k = whiten(queries, shrinkage, device), whiten(keys, shrinkage, device)
    return _correct(q, k, np.arange(len(q)))


def _procrustes(x, y):
    """The orthogonal ``W`` minimising ``||x W - y||``: ``U V'`` of ``svd(x' y)``."""
    import torch

    u, _, vh = torch.linalg.svd(x.T @ y)
    return u @ vh


def _ridge_gcv(x, y):
    """The ridge map ``x -> y`` whose penalty (from :data:`RIDGE_GRID`, times the mean squared
    singular value of ``x``) has the least generalized cross-validation error on these pairs
    (Golub, Heath & Wahba 1979: leave-one-out's rotation-invariant form), from one SVD of ``x``;
    and the penalty."""
    import torch

    u, sv, vh = torch.linalg.svd(x, full_matrices=False)
    projected = u.T @ y  # [r, d_y]
    energy = (projected**2).sum(1)  # per singular direction
    total = float((y**2).sum())
    scale = float((sv**2).mean())
    n = len(x)
    best, best_error = RIDGE_GRID[0] * scale, float("inf")
    for factor in RIDGE_GRID:
        penalty = factor * scale
        shrink = sv**2 / (sv**2 + penalty)
        residual = total - float((2 * shrink - shrink**2) @ energy)
        dof = float(shrink.sum())
        error = residual / max(n * (1 - dof / n) ** 2, 1e-12)
        if error < best_error:
            best, best_error = penalty, error
    w = vh.T @ ((sv / (sv**2 + best))[:, None] * projected)
    return w, best


def mapped_correct(
    queries: np.ndarray,
    keys: np.ndarray,
    kind: MapKind = "procrustes",
    folds: int = 5,
    seed: int = 0,
    device: str = "cpu",
) -> tuple[np.ndarray, MapFit]:
    """Per query: its translation retrieved after a map ``queries -> keys`` fit on the pairs of
    the other folds (both sides centred with their own means first); and how it was fit."""
    check_pair(queries, keys, min_rows=2)
    if kind not in ("procrustes", "linear"):
        raise AlignError(f"map kind {kind!r}: expected procrustes or linear")
    n = len(queries)
    assigned = fold_of(n, folds, seed)
    x, y = _torch(queries, device), _torch(keys, device)
    x, y = x - x.mean(0), y - y.mean(0)
    keys_c = y.cpu().numpy()
    correct = np.empty(n, np.float64)
    chosen = []
    for k in range(folds):
        train, test = np.flatnonzero(assigned != k), np.flatnonzero(assigned == k)
        if kind == "procrustes":
            w = _procrustes(x[train], y[train])
        else:
            w, penalty = _ridge_gcv(x[train], y[train])
            chosen.append(penalty)
        mapped = (x[test] @ w).cpu().numpy()
        correct[test] = _correct(mapped, keys_c, test)
    return correct, MapFit(kind, folds, seed, tuple(chosen))
