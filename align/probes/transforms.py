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
from align.vectors import check_pair

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
    # the penalty chosen in each fold (linear), as a multiple of the training Gram's mean
    # eigenvalue (one of RIDGE_GRID)
    ridge: tuple[float, ...] = ()


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
    return _whiten(_torch(x, device, MAP_DTYPE), shrinkage).cpu().numpy()


def _whiten(t, shrinkage: float):
    """:func:`whiten` of a tensor, on its device."""
    centred, target, trace = _whitening_target(t, shrinkage)
    return _whitened(centred, _eigh_many([target])[0], trace)


def _whitening_target(t, shrinkage: float):
    """``t`` centred, its shrunk covariance (whose inverse square root whitens it), its mean
    eigenvalue."""
    if not 0 < shrinkage <= 1:
        raise AlignError(f"shrinkage {shrinkage}: must lie in (0, 1]", param="whiten_shrinkage")
    t = t - t.mean(0)
    cov = t.T @ t / max(len(t) - 1, 1)
    trace = cov.diagonal().mean()
    if float(trace) <= 0:
        raise AlignError("whitening: the embeddings have no variance")
    target = (1 - shrinkage) * cov
    target.diagonal().add_(shrinkage * trace)
    return t, target, trace


def _whitened(centred, eig, trace):
    values, vectors = eig
    inv_sqrt = (vectors * values.clamp_min(1e-7 * trace).rsqrt()) @ vectors.T
    return centred @ inv_sqrt


def _eigh_many(matrices: list) -> list:
    """Each symmetric matrix's eigendecomposition: one batched call on a GPU; on a CPU with
    several threads, two matrices at a time on one thread each (LAPACK's eigensolver uses a
    second thread poorly: about 1.5x the throughput on two cores)."""
    import torch

    if matrices[0].device.type != "cpu" or torch.get_num_threads() < 2 or len(matrices) < 2:
        values, vectors = torch.linalg.eigh(torch.stack(matrices))
        return list(zip(values, vectors, strict=True))
    from concurrent.futures import ThreadPoolExecutor

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(min(threads, len(matrices))) as pool:
            return list(pool.map(torch.linalg.eigh, matrices))
    finally:
        torch.set_num_threads(threads)


def _correct(queries, keys, answers: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Whether each query's nearest key (cosine; the first of equal ones) is its answer: one
    product of the normalised tensors per ``chunk`` queries, on their device (numpy arrays are
    taken as they are)."""
    import torch

    q = torch.nn.functional.normalize(torch.as_tensor(queries, dtype=torch.float32), dim=1)
    k = torch.nn.functional.normalize(torch.as_tensor(keys, dtype=torch.float32), dim=1)
    k = k.to(q.device)
    best = torch.cat([(q[i : i + chunk] @ k.T).argmax(1) for i in range(0, len(q), chunk)])
    return (best.cpu().numpy() == answers).astype(np.float64)


def _correct_both_ways(x, y, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_correct` of ``x -> y`` and ``y -> x`` (row i translates row i) from one
    product: each row's and each column's best (the first of equal ones)."""
    import torch

    q = torch.nn.functional.normalize(x.float(), dim=1)
    k = torch.nn.functional.normalize(y.float(), dim=1)
    ahead, back_value, back_index = [], None, None
    for i in range(0, len(q), chunk):
        sims = q[i : i + chunk] @ k.T
        ahead.append(sims.argmax(1))
        value, index = sims.max(0)  # the first row of equal maxima
        if back_value is None:
            back_value, back_index = value, index
        else:
            better = value > back_value  # an earlier chunk keeps its ties
            back_value = torch.where(better, value, back_value)
            back_index = torch.where(better, index + i, back_index)
    answers = np.arange(len(q))
    xy = (torch.cat(ahead).cpu().numpy() == answers).astype(np.float64)
    yx = (back_index.cpu().numpy() == np.arange(len(k))).astype(np.float64)
    return xy, yx


def whitened_correct(
    queries: np.ndarray, keys: np.ndarray, shrinkage: float = 0.05, device: str = "cpu"
) -> np.ndarray:
    """Per query: its translation retrieved after each side is whitened on its own."""
    check_pair(queries, keys, min_rows=2)
    q = _whiten(_torch(queries, device, MAP_DTYPE), shrinkage)
    k = _whiten(_torch(keys, device, MAP_DTYPE), shrinkage)
    return _correct(q, k, np.arange(len(q)))


def _polar(m, forward=None, backward=None, eig=None):
    """The orthogonal factor ``W`` of ``m`` (``U V'`` of its SVD: the ``W`` maximising
    ``tr(W' m)``), from one symmetric eigendecomposition of ``m'm`` (``eig``, if already
    computed); directions ``m`` does not reach (rank below d: fewer pairs than dimensions) are
    dropped rather than completed arbitrarily. With ``forward``/``backward`` given,
    ``(forward @ W, backward @ W')`` instead."""
    import torch

    values, vectors = torch.linalg.eigh(m.T @ m) if eig is None else eig
    keep = values > values.max().clamp_min(0) * len(values) * torch.finfo(values.dtype).eps
    inv_sqrt = torch.where(keep, values.clamp_min(1e-30).rsqrt(), torch.zeros_like(values))
    w = (m @ (vectors * inv_sqrt)) @ vectors.T
    return w if forward is None else (forward @ w, backward @ w.T)


def _ridge_gcv(gram, cross, total, n: int, eig=None):
    """The ridge map from ``gram = x'x``, ``cross = x'y`` and ``total = ||y||^2`` of ``n``
    training pairs, as two factors (``W = V @ F``: a query maps as ``(q @ V) @ F``), its
    penalty (from :data:`RIDGE_GRID`, times the mean eigenvalue of ``gram``) the one with the
    least generalized cross-validation error on those pairs (Golub, Heath & Wahba 1979:
    leave-one-out's rotation-invariant form); and the chosen multiple (a 0-d tensor: no host
    copy). One eigendecomposition of ``gram`` (``eig``, if already computed):
    ``energy_j = ||v_j' x'y||^2 / lambda_j`` is the share of ``y`` along the j-th singular
    direction of ``x``; every penalty of the grid is scored at once."""
    import torch

    values, vectors = torch.linalg.eigh(gram) if eig is None else eig
    values = values.clamp_min(0)
    projected = vectors.T @ cross
    positive = values > values.max() * len(values) * torch.finfo(values.dtype).eps
    energy = torch.where(positive, (projected**2).sum(1) / values.clamp_min(1e-30), 0.0)
    grid = torch.tensor(RIDGE_GRID, dtype=values.dtype, device=values.device)
    penalties = grid[:, None] * values.mean()  # [grid, 1]
    shrink = values / (values + penalties)  # [grid, d]
    residual = total - (2 * shrink - shrink**2) @ energy
    dof = shrink.sum(1)
    error = residual / (n * (1 - dof / n) ** 2).clamp_min(1e-12)
    best = torch.argmin(error)  # the first of equal errors: the smallest penalty
    return vectors, projected / (values + penalties[best])[:, None], grid[best]


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
    tx, ty = _torch(x, device, MAP_DTYPE), _torch(y, device, MAP_DTYPE)
    (cx, target_x, trace_x), (cy, target_y, trace_y) = (
        _whitening_target(tx, shrinkage),
        _whitening_target(ty, shrinkage),
    )
    tx, ty = cx, cy  # centred (each with its own mean)
    cross, gram_x, gram_y = tx.T @ ty, tx.T @ tx, ty.T @ ty
    sq_x, sq_y = (tx**2).sum(1), (ty**2).sum(1)
    fold_rows = [torch.as_tensor(np.flatnonzero(assigned == k), device=tx.device)
                 for k in range(folds)]  # fmt: skip
    train = []  # per fold: the training pairs' x'y, x'x, y'y
    for test in fold_rows:
        xk, yk = tx[test], ty[test]
        train.append((cross - xk.T @ yk, gram_x - xk.T @ xk, gram_y - yk.T @ yk))
    eigs = iter(_eigh_many([target_x, target_y] + [m for c, gx, gy in train
                                                     for m in (c.T @ c, gx, gy)]))  # fmt: skip
    xw, yw = _whitened(cx, next(eigs), trace_x), _whitened(cy, next(eigs), trace_y)
    out["whitened_xx2en"], out["whitened_en2xx"] = _correct_both_ways(xw, yw)
    mapped = {key: torch.empty_like(t) for key, t in
              (("procrustes_xx2en", tx), ("procrustes_en2xx", ty), ("linear_xx2en", tx),
               ("linear_en2xx", ty))}  # fmt: skip
    chosen: dict[str, list] = {"xx2en": [], "en2xx": []}
    for test, (c, gx, gy) in zip(fold_rows, train, strict=True):
        xk, yk = tx[test], ty[test]
        ahead, back = _polar(c, xk, yk, next(eigs))
        mapped["procrustes_xx2en"][test], mapped["procrustes_en2xx"][test] = ahead, back
        m = n - len(test)
        vx, fx, px = _ridge_gcv(gx, c, sq_y.sum() - sq_y[test].sum(), m, next(eigs))
        vy, fy, py = _ridge_gcv(gy, c.T, sq_x.sum() - sq_x[test].sum(), m, next(eigs))
        mapped["linear_xx2en"][test] = (xk @ vx) @ fx
        mapped["linear_en2xx"][test] = (yk @ vy) @ fy
        chosen["xx2en"].append(px)
        chosen["en2xx"].append(py)
    answers = np.concatenate([np.arange(n), np.arange(n)])
    for direction, keys in (("xx2en", ty), ("en2xx", tx)):  # both maps' queries: one search
        queries = torch.cat([mapped[f"procrustes_{direction}"], mapped[f"linear_{direction}"]])
        both = _correct(queries, keys, answers)
        out[f"procrustes_{direction}"], out[f"linear_{direction}"] = both[:n], both[n:]
    fits = {"procrustes": MapFit("procrustes", folds, seed)}
    for d, factors in chosen.items():  # one host copy of every fold's choice
        fits[f"linear_{d}"] = MapFit("linear", folds, seed, tuple(torch.stack(factors).tolist()))
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


@dataclass
class MappedSplits:
    """Two mining splits after an orthogonal map fit on the first split's gold pairs: each side
    centred with its own mean; ``dev_src`` mapped with cross-fitting (a gold pair's source
    sentence by the map of the other folds, every other sentence by the map of all gold pairs),
    ``test_src`` by the map of all of dev's gold pairs (test's pairs are never seen)."""

    dev_src: np.ndarray
    dev_tgt: np.ndarray
    test_src: np.ndarray
    test_tgt: np.ndarray
    fit: MapFit


def procrustes_splits(
    dev: tuple[np.ndarray, np.ndarray],
    gold: list[tuple[int, int]],
    test: tuple[np.ndarray, np.ndarray],
    folds: int = 5,
    seed: int = 0,
    device: str = "cpu",
) -> MappedSplits:
    """BUCC mining after an orthogonal map xx -> en fit on the dev split's gold pairs (the
    natural split: the threshold is chosen on dev, the map's dev outcomes cross-fitted so that
    the threshold does not reward a map that has seen its pairs). Folds are drawn over the gold
    pairs' source sentences (seeded; a sentence in two pairs stays in one fold)."""
    import torch

    tensors = [_torch(a, device, MAP_DTYPE) for a in (*dev, *test)]
    dx, dy, tx, ty = (t - t.mean(0) for t in tensors)
    src = torch.as_tensor([s for s, _ in gold], device=dx.device)
    tgt = torch.as_tensor([t for _, t in gold], device=dx.device)
    sentences, of_pair = torch.unique(src, return_inverse=True)
    sentence_fold = torch.as_tensor(fold_of(len(sentences), folds, seed), device=dx.device)
    fold = sentence_fold[of_pair]
    gx, gy = dx[src], dy[tgt]
    cross = gx.T @ gy
    crosses = [cross] + [cross - gx[fold == k].T @ gy[fold == k] for k in range(folds)]
    maps = [_polar(c, eig=e) for c, e in zip(crosses, _eigh_many([c.T @ c for c in crosses]),
                                              strict=True)]  # fmt: skip
    mapped = dx @ maps[0]
    for k in range(folds):
        rows = sentences[sentence_fold == k]
        mapped[rows] = dx[rows] @ maps[k + 1]
    arrays = [t.cpu().numpy() for t in (mapped, dy, tx @ maps[0], ty)]
    return MappedSplits(*arrays, fit=MapFit("procrustes", folds, seed))
