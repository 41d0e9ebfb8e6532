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
  side: ``kind="procrustes"`` (orthogonal: the polar factor of the cross-covariance) or
  ``kind="linear"`` (ridge, its penalty chosen by generalized cross-validation on the
  training pairs only).

Cross-fitting (K folds, seeded): every sentence's outcome comes from a map that never saw it.
An in-sample map with n <= d fits any pairing exactly (1.0 on unrelated sentences); a
cross-fitted one stays at chance there (tested). Fits run in torch (float32,
:data:`MAP_DTYPE`) on ``device``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from align.errors import AlignError
from align.vectors import check_pair, knn

MapKind = Literal["procrustes", "linear"]
# each transform in words, in the order tables, figures and sentences give them
WORDS = {
    "centred": "centring",
    "whitened": "whitening",
    "procrustes": "a cross-fitted orthogonal map",
    "linear": "a cross-fitted linear map",
}
MAP_DTYPE = "float32"  # the maps' decompositions (retrieval itself searches in float32 too)
RIDGE_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)  # x the mean squared singular value


@dataclass(frozen=True)
class MapFit:
    """How a cross-fitted map was fit (returned beside the outcomes; not written into results)."""

    kind: MapKind
    folds: int
    seed: int
    ridge: tuple[float, ...] = ()  # the penalty chosen in each fold (linear)


def _torch(a: np.ndarray, device: str, dtype: str = "float64"):
    import torch

    return torch.as_tensor(np.asarray(a, dtype), device=device)


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
    t = _torch(x, device, MAP_DTYPE)
    t = t - t.mean(0)
    cov = t.T @ t / max(len(t) - 1, 1)
    trace = torch.trace(cov) / cov.shape[0]
    if float(trace) <= 0:
        raise AlignError("whitening: the embeddings have no variance")
    target = (1 - shrinkage) * cov + shrinkage * trace * torch.eye(cov.shape[0], device=device,
                                                                    dtype=cov.dtype)  # fmt: skip
    values, vectors = torch.linalg.eigh(target)
    inv_sqrt = (vectors * values.clamp_min(1e-7 * float(trace)).rsqrt()) @ vectors.T
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


def _polar(m, forward=None, backward=None):
    """The orthogonal factor ``W`` of ``m`` (``U V'`` of its SVD: the ``W`` maximising
    ``tr(W' m)``), from one symmetric eigendecomposition of ``m'm``; directions ``m`` does not
    reach (rank below d: fewer pairs than dimensions) are dropped rather than completed
    arbitrarily. With ``forward``/``backward`` given, ``(forward @ W, backward @ W')`` instead,
    without forming ``W`` (a fold's rows: cheaper than a d x d product)."""
    import torch

    values, vectors = torch.linalg.eigh(m.T @ m)
    keep = values > values.max().clamp_min(0) * len(values) * torch.finfo(values.dtype).eps
    inv_sqrt = torch.where(keep, values.clamp_min(1e-30).rsqrt(), torch.zeros_like(values))
    if forward is None:
        return m @ (vectors * inv_sqrt) @ vectors.T
    ahead = ((forward @ m) @ vectors * inv_sqrt) @ vectors.T
    back = (((backward @ vectors) * inv_sqrt) @ vectors.T) @ m.T
    return ahead, back


def _ridge_gcv(gram, cross, total: float, n: int):
    """The ridge map from ``gram = x'x``, ``cross = x'y`` and ``total = ||y||^2`` of ``n``
    training pairs, as two factors (``W = V @ F``: a query maps as ``(q @ V) @ F``), its
    penalty (from :data:`RIDGE_GRID`, times the mean eigenvalue of ``gram``) the one with the
    least generalized cross-validation error on those pairs (Golub, Heath & Wahba 1979:
    leave-one-out's rotation-invariant form); and the penalty. One eigendecomposition of
    ``gram``: ``energy_j = ||v_j' x'y||^2 / lambda_j`` is the share of ``y`` along the j-th
    singular direction of ``x``."""
    import torch

    values, vectors = torch.linalg.eigh(gram)
    values = values.clamp_min(0)
    projected = vectors.T @ cross
    positive = values > values.max() * len(values) * torch.finfo(values.dtype).eps
    energy = torch.where(positive, (projected**2).sum(1) / values.clamp_min(1e-300), 0.0)
    scale = float(values.mean())
    best, best_error = RIDGE_GRID[0] * scale, float("inf")
    for factor in RIDGE_GRID:
        penalty = factor * scale
        shrink = values / (values + penalty)
        residual = total - float((2 * shrink - shrink**2) @ energy)
        dof = float(shrink.sum())
        error = residual / max(n * (1 - dof / n) ** 2, 1e-12)
        if error < best_error:
            best, best_error = penalty, error
    return vectors, projected / (values + best)[:, None], best


@dataclass
class Transformed:
    """Per-sentence outcomes after every transform, both directions (``{kind}_{direction}``:
    ``whitened_xx2en``, ``procrustes_en2xx``, ...), and how the maps were fit."""

    outcomes: dict[str, np.ndarray]
    fits: dict[str, MapFit]


def transformed_correct(
    x: np.ndarray,
    y: np.ndarray,
    folds: int = 5,
    seed: int = 0,
    shrinkage: float = 0.05,
    device: str = "cpu",
) -> Transformed:
    """Retrieval of ``x[i] <-> y[i]`` (``y`` English) after whitening and after cross-fitted
    orthogonal and ridge maps, xx->en (queries ``x``) and en->xx (queries ``y``), from shared
    work: each side whitened once; per fold the training pairs' ``x'y``, ``x'x`` and ``y'y``
    (the whole set's less the fold's); one orthogonal factor serves both directions (its
    transpose maps back), each direction's ridge map its own; each direction's queries of every
    fold searched at once."""
    import torch

    check_pair(x, y, min_rows=2)
    n = len(x)
    assigned = fold_of(n, folds, seed)
    out: dict[str, np.ndarray] = {}
    xw, yw = whiten(x, shrinkage, device), whiten(y, shrinkage, device)
    out["whitened_xx2en"] = _correct(xw, yw, np.arange(n))
    out["whitened_en2xx"] = _correct(yw, xw, np.arange(n))
    tx, ty = _torch(x, device, MAP_DTYPE), _torch(y, device, MAP_DTYPE)
    tx, ty = tx - tx.mean(0), ty - ty.mean(0)
    cross, gram_x, gram_y = tx.T @ ty, tx.T @ tx, ty.T @ ty
    sq_x, sq_y = (tx**2).sum(1), (ty**2).sum(1)
    mapped = {key: torch.empty_like(t) for key, t in
              (("procrustes_xx2en", tx), ("procrustes_en2xx", ty), ("linear_xx2en", tx),
               ("linear_en2xx", ty))}  # fmt: skip
    chosen: dict[str, list[float]] = {"xx2en": [], "en2xx": []}
    for k in range(folds):
        test = torch.as_tensor(np.flatnonzero(assigned == k), device=tx.device)
        xk, yk = tx[test], ty[test]
        c = cross - xk.T @ yk
        ahead, back = _polar(c, xk, yk)
        mapped["procrustes_xx2en"][test], mapped["procrustes_en2xx"][test] = ahead, back
        m = n - len(test)
        vx, fx, px = _ridge_gcv(gram_x - xk.T @ xk, c, float(sq_y.sum() - sq_y[test].sum()), m)
        vy, fy, py = _ridge_gcv(gram_y - yk.T @ yk, c.T, float(sq_x.sum() - sq_x[test].sum()), m)
        mapped["linear_xx2en"][test] = (xk @ vx) @ fx
        mapped["linear_en2xx"][test] = (yk @ vy) @ fy
        chosen["xx2en"].append(px)
        chosen["en2xx"].append(py)
    answers = np.concatenate([np.arange(n), np.arange(n)])
    for direction, keys in (("xx2en", ty), ("en2xx", tx)):  # both maps' queries: one search
        queries = torch.cat([mapped[f"procrustes_{direction}"], mapped[f"linear_{direction}"]])
        both = _correct(queries.cpu().numpy(), keys.cpu().numpy(), answers)
        out[f"procrustes_{direction}"], out[f"linear_{direction}"] = both[:n], both[n:]
    fits = {"procrustes": MapFit("procrustes", folds, seed)}
    fits |= {f"linear_{d}": MapFit("linear", folds, seed, tuple(v)) for d, v in chosen.items()}
    return Transformed(out, fits)


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
    if kind not in ("procrustes", "linear"):
        raise AlignError(f"map kind {kind!r}: expected procrustes or linear")
    found = transformed_correct(queries, keys, folds, seed, device=device)
    fit = found.fits["procrustes" if kind == "procrustes" else "linear_xx2en"]
    return found.outcomes[f"{kind}_xx2en"], fit
