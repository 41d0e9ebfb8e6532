"""Similarity measures papers report beside CKA, each equal to its reference implementation.

Plain functions of two representations of the same ``n`` sentences, ``x [n, d1]`` and
``y [n, d2]`` (numpy arrays or torch tensors; torch measures run on the tensors' device),
computed in float64 (the n x n measures take ``precision="float32"`` for large n, as their
references compute in the inputs' float32). Each docstring names the reference, what the
measure is invariant to and what it is not (``tests/test_similarity.py`` checks both, and the
values against the reference code run on the same arrays).

- :func:`svcca`: SVCCA (Raghu et al. 2017), google/svcca's recipe: each side reduced to its top
  principal directions, then the mean canonical correlation.
- :func:`pwcca`: projection-weighted CCA (Morcos et al. 2018), google/svcca ``pwcca.py``.
- :func:`procrustes_distance`: orthogonal Procrustes shape distance (Williams et al. 2021),
  netrep ``LinearMetric(alpha=1)``, angular or Euclidean.
- :func:`cknna`: CKNNA (Huh et al. 2024), minyoungg/platonic-rep ``metrics.py``.
- :func:`mutual_knn`: mutual k-nearest-neighbour overlap, platonic-rep's form.
- :func:`rsa`: representational similarity analysis (Kriegeskorte et al. 2008): the rank
  correlation of the two dissimilarity matrices.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from scipy.linalg import solve_triangular

from align.errors import AlignError

Precision = Literal["float64", "float32"]


def _pair(x: Any, y: Any, min_rows: int = 3, precision: Precision = "float64"):
    """Both sides as torch tensors (float64, or float32 where asked) on the first one's
    device; checked."""
    import torch

    if precision not in ("float64", "float32"):
        raise AlignError(f"precision {precision!r}: expected float64 or float32")
    dtype = torch.float64 if precision == "float64" else torch.float32
    device = x.device if isinstance(x, torch.Tensor) else "cpu"
    a, b = (torch.as_tensor(np.asarray(v) if not isinstance(v, torch.Tensor) else v)
            for v in (x, y))  # fmt: skip
    a, b = a.to(device=device, dtype=dtype), b.to(device=device, dtype=dtype)
    if a.ndim != 2 or b.ndim != 2 or len(a) != len(b):
        raise AlignError(f"x and y must be [n, d] arrays of one n, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")  # fmt: skip
    if len(a) < min_rows:
        raise AlignError(f"need at least {min_rows} sentences, got {len(a)}")
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise AlignError("x and y must be finite (NaN or inf found)")
    return a, b


def _centred(t):
    return t - t.mean(0)


def _basis(t):
    """An orthonormal basis of the column space of centred ``t`` (numerical rank kept)."""
    import torch

    u, s, _ = torch.linalg.svd(_centred(t), full_matrices=False)
    keep = s > s.max() * max(t.shape) * torch.finfo(t.dtype).eps
    if not bool(keep.any()):
        raise AlignError("a side has no variance: CCA is undefined")
    return u[:, keep], s[keep]


def cca_correlations(x: Any, y: Any) -> np.ndarray:
    """The canonical correlations of ``x`` and ``y``, largest first: the singular values of
    ``Qx' Qy`` for orthonormal bases of the centred columns (numerically stabler than
    inverting covariances; equal to google/svcca's ``cca_coef1`` with ``epsilon=0``).
    Invariant to any invertible linear map of either side and to translation."""
    a, b = _pair(x, y)
    qa, _ = _basis(a)
    qb, _ = _basis(b)
    import torch

    return torch.linalg.svdvals(qa.T @ qb).clamp(0, 1).cpu().numpy()


def _reduce(t, dims: int | None, variance: float):
    """The top principal-component scores of ``t``: ``dims`` of them, or as many as explain
    ``variance`` of the total."""
    import torch

    u, s, _ = torch.linalg.svd(_centred(t), full_matrices=False)
    if dims is None:
        share = torch.cumsum(s**2, 0) / (s**2).sum()
        dims = int(torch.searchsorted(share, torch.tensor(variance, dtype=share.dtype,
                                                          device=share.device))) + 1  # fmt: skip
    dims = min(dims, int((s > 0).sum()))
    return u[:, :dims] * s[:dims]


def svcca(
    x: Any, y: Any, dims: int | None = None, variance: float = 0.99, trailing: float | None = None
) -> float:
    """SVCCA: each side reduced to its top principal directions (``dims`` of them, or as many as
    explain ``variance`` of its variance: 0.99 as in Raghu et al. 2017), then the mean of the
    canonical correlations of the reduced sides.

    Reference: google/svcca (``cca_core.get_cca_similarity`` on the SVD-reduced activations, as
    its tutorial does; the tutorial averages every coefficient, ``np.mean(cca_coef1)``: the
    default here). ``trailing``: average only the leading coefficients holding that share of
    their sum, as ``get_cca_similarity``'s own ``mean`` statistic does (``threshold=0.98``).
    Invariant to orthogonal maps, isotropic scaling and translation of either side (the
    reduction keeps the same subspace); not to a general invertible linear map (that changes
    which directions the reduction keeps)."""
    if not 0 < variance <= 1:
        raise AlignError(f"variance {variance}: must lie in (0, 1]")
    a, b = _pair(x, y)
    rho = cca_correlations(_reduce(a, dims, variance), _reduce(b, dims, variance))
    if trailing is None:
        return float(rho.mean())
    mass = np.cumsum(rho) / rho.sum()
    cut = int(np.searchsorted(mass, trailing)) + 1
    return float(rho[:cut].mean())


def pwcca(x: Any, y: Any, epsilon: float = 0.0) -> float:
    """Projection-weighted CCA (Morcos et al. 2018): the canonical correlations weighted by how
    much of the smaller side's activity each CCA direction accounts for.

    Reference: google/svcca ``pwcca.compute_pwcca`` (its first return value), computed here as
    it computes it (numpy float64, the same decompositions, so that the sign choices of the
    SVD agree): covariances of the rows' neurons, ``u`` of ``svd(Sxx^(-1/2) Sxy Syy^(-1/2))``,
    directions ``u'(x - m) + m``, orthonormalised by QR, weights the summed absolute
    projections of the side's neurons on them. The side with fewer neurons is weighted (x on a
    tie). Its known slip (for a y narrower than x it mixes x's activations with y's means) is
    not reproduced: the weights here always use the weighted side's own activations; the two
    agree whenever x is not wider than y. On the wider side, invariant to any invertible
    linear map and translation (only its canonical correlations enter); on the weighted side,
    to isotropic scaling only: not to orthogonal maps (the weights sum absolute projections
    over its neurons, so its neuron basis matters) nor translation (its means enter the
    directions, as in the reference)."""
    a, b = (np.asarray(v.detach().cpu() if hasattr(v, "detach") else v, np.float64)
            for v in (x, y))  # fmt: skip
    if a.ndim != 2 or b.ndim != 2 or len(a) != len(b):
        raise AlignError(f"x and y must be [n, d] arrays of one n, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise AlignError("x and y must be finite (NaN or inf found)")
    if a.shape[1] > b.shape[1]:
        a, b = b, a
    acts1, acts2 = a.T, b.T  # neurons x sentences, as svcca takes them
    if acts1.shape[0] >= acts1.shape[1] or acts2.shape[0] >= acts2.shape[1]:
        raise AlignError("pwcca needs more sentences than dimensions on each side")
    numx = acts1.shape[0]
    cov = np.cov(acts1, acts2)
    sxx, sxy, syy = cov[:numx, :numx], cov[:numx, numx:], cov[numx:, numx:]
    xmax, ymax = np.max(np.abs(sxx)), np.max(np.abs(syy))
    sxx, syy, sxy = sxx / xmax, syy / ymax, sxy / np.sqrt(xmax * ymax)
    keep_x, keep_y = np.abs(np.diag(sxx)) >= epsilon, np.abs(np.diag(syy)) >= epsilon
    if not (keep_x.any() and keep_y.any()):
        raise AlignError(f"pwcca: no direction has a variance of at least epsilon {epsilon}")
    sxx, syy = sxx[keep_x][:, keep_x], syy[keep_y][:, keep_y]
    sxy = sxy[keep_x][:, keep_y]
    sxx = sxx + epsilon * np.eye(len(sxx))
    syy = syy + epsilon * np.eye(len(syy))
    u, s, _ = np.linalg.svd(_inverse_sqrt(sxx) @ sxy @ _inverse_sqrt(syy))
    kept = acts1[keep_x]
    means = kept.mean(1, keepdims=True)
    directions = u.T @ (kept - means) + means
    # The reference orthonormalises the directions by QR (Q = D' R^-1) and sums |Q' x_j| over
    # neurons; R is the Cholesky factor of D D' up to the signs of its rows, which the
    # absolute values remove: Q' X' = R^-T (D X'), d x d work instead of a QR of n x d.
    gram = directions @ directions.T
    factor = np.linalg.cholesky(gram)
    projections = solve_triangular(factor, directions @ kept.T, lower=True)
    weights = np.abs(projections).sum(1)
    weights = weights / weights.sum()
    return float(np.sum(weights[: len(s)] * s))


def _inverse_sqrt(matrix: np.ndarray) -> np.ndarray:
    """``matrix^(-1/2)`` as google/svcca takes it: the square root of the pseudo-inverse
    (eigenvalues clipped at 0 against rounding). Computed its way on purpose: PWCCA's weights
    depend on the signs the SVD gives its directions, and a matrix that differs in the last
    digits can get other signs."""
    values, vectors = np.linalg.eigh(np.linalg.pinv(matrix))
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def procrustes_distance(
    x: Any, y: Any, score: Literal["angular", "euclidean"] = "angular"
) -> float:
    """Orthogonal Procrustes shape distance: the distance between the centred sides after the
    best rotation of one onto the other; angular ``arccos(||x'y||_* / (||x|| ||y||))`` (in
    [0, π/2]) or Euclidean ``sqrt(||x||² + ||y||² − 2||x'y||_*)``.

    Reference: netrep ``LinearMetric(alpha=1, center_columns=True, zero_pad=True,
    score_method=...)`` (``fit_score``); the narrower side is padded with zero columns, which
    changes neither norm. Invariant to orthogonal maps and translation of either side; the
    angular form also to isotropic scaling, the Euclidean form not; neither to a general
    linear map."""
    import torch

    if score not in ("angular", "euclidean"):
        raise AlignError(f"score {score!r}: expected angular or euclidean")
    a, b = _pair(x, y)
    a, b = _centred(a), _centred(b)
    nuclear = torch.linalg.svdvals(a.T @ b).sum()
    na, nb = torch.linalg.norm(a), torch.linalg.norm(b)
    if score == "angular":
        if float(na) == 0 or float(nb) == 0:
            raise AlignError("a side has no variance: the angular distance is undefined")
        return float(torch.arccos((nuclear / (na * nb)).clamp(-1, 1)))
    return float(torch.sqrt((na**2 + nb**2 - 2 * nuclear).clamp_min(0)))


def _rows_normalised(t):
    import torch

    return torch.nn.functional.normalize(t, p=2, dim=1)


def _topk_mask(sim, k: int, exclude_self: bool):
    import torch

    if exclude_self:
        sim = sim.clone().fill_diagonal_(float("-inf"))
    idx = torch.topk(sim, k, dim=1).indices
    return torch.zeros_like(sim).scatter_(1, idx, 1.0)


def _hsic_unbiased(k, m):
    n = k.shape[0]
    kt, lt = k.clone().fill_diagonal_(0), m.clone().fill_diagonal_(0)
    value = (
        (kt * lt.T).sum()
        + kt.sum() * lt.sum() / ((n - 1) * (n - 2))
        - 2 * (kt.sum(0) @ lt.sum(1)) / (n - 2)  # the sum of kt @ lt, in O(n^2), not O(n^3)
    )
    return value / (n * (n - 3))


def _hsic_biased(k, m):
    import torch

    n = k.shape[0]
    h = torch.eye(n, dtype=k.dtype, device=k.device) - 1 / n
    return torch.trace(k @ h @ m @ h)


def cknna(
    x: Any,
    y: Any,
    k: int = 10,
    unbiased: bool = True,
    normalize: bool = True,
    precision: Precision = "float64",
) -> float:
    """CKNNA (Huh et al. 2024): CKA restricted to pairs of sentences that are among each
    other's ``k`` nearest neighbours in both spaces (inner-product kernels).

    Reference: minyoungg/platonic-rep ``metrics.AlignmentMetrics.cknna(feats_A, feats_B,
    topk=k)`` (``distance_agnostic=False, unbiased=True``), on rows normalised to unit length
    as its ``measure_alignment.compute_score`` passes them (``normalize=True``, the default
    here), including its ``+ 1e-6`` in the denominator. Invariant to orthogonal maps of either
    side, and (normalised) to isotropic scaling; not to translation or general linear maps."""
    a, b = _pair(x, y, min_rows=4, precision=precision)
    if not 2 <= k < len(a):
        raise AlignError(f"cknna k={k}: need 2 <= k < n = {len(a)}")
    if normalize:
        a, b = _rows_normalised(a), _rows_normalised(b)
    kern, lern = a @ a.T, b @ b.T
    hsic = _hsic_unbiased if unbiased else _hsic_biased

    def similarity(p, q):
        mask = _topk_mask(p, k, unbiased) * _topk_mask(q, k, unbiased)
        return hsic(mask * p, mask * q)

    import torch

    kl, kk, ll = similarity(kern, lern), similarity(kern, kern), similarity(lern, lern)
    return float(kl) / float(torch.sqrt(kk * ll) + 1e-6)


def mutual_knn(
    x: Any, y: Any, k: int = 10, normalize: bool = True, precision: Precision = "float64"
) -> float:
    """Mutual kNN overlap: per sentence, the share of its ``k`` nearest neighbours (self
    excluded) that are the same in both spaces, averaged.

    Reference: minyoungg/platonic-rep ``metrics.AlignmentMetrics.mutual_knn(feats_A, feats_B,
    topk=k)`` on unit-length rows (``normalize=True``: its ``compute_score`` default), which is
    also align's ``mknn@k`` (cosine neighbours). Invariant to orthogonal maps and isotropic
    scaling of either side (normalised); not to translation or general linear maps."""
    a, b = _pair(x, y, precision=precision)
    if not 1 <= k < len(a):
        raise AlignError(f"mutual_knn k={k}: need 1 <= k < n = {len(a)}")
    if normalize:
        a, b = _rows_normalised(a), _rows_normalised(b)
    both = _topk_mask(a @ a.T, k, True) * _topk_mask(b @ b.T, k, True)
    return float((both.sum(1) / k).mean())


def rsa(
    x: Any,
    y: Any,
    distance: Literal["cosine", "euclidean"] = "cosine",
    method: Literal["spearman", "pearson"] = "spearman",
    precision: Precision = "float64",
) -> float:
    """RSA: the correlation (Spearman by default) of the two sides' dissimilarity matrices over
    every pair of distinct sentences (the upper triangles; cosine distance by default).

    Equal to ``scipy.stats.spearmanr(pdist(x, 'cosine'), pdist(y, 'cosine'))`` (a formula, not
    a package: rsatoolbox computes the same with these options). Invariant to orthogonal maps
    and isotropic scaling of either side, and (Spearman) to any monotone change of the
    distances; the cosine form not to translation, the Euclidean form to translation too."""
    import torch

    if distance not in ("cosine", "euclidean") or method not in ("spearman", "pearson"):
        raise AlignError(f"rsa: distance {distance!r} / method {method!r}: unknown")
    a, b = _pair(x, y, precision=precision)
    rows, cols = torch.triu_indices(len(a), len(a), offset=1, device=a.device)

    def dissimilarity(t):
        if distance == "cosine":
            u = _rows_normalised(t)
            return (1 - u @ u.T)[rows, cols]
        return torch.cdist(t, t)[rows, cols]

    da, db = dissimilarity(a), dissimilarity(b)
    if method == "spearman":
        da, db = _ranks(da), _ranks(db)
    da, db = da - da.mean(), db - db.mean()
    denominator = torch.linalg.norm(da) * torch.linalg.norm(db)
    if float(denominator) == 0:
        raise AlignError("rsa: one side's dissimilarities are all equal")
    return float((da @ db) / denominator)


def _ranks(v):
    """Average ranks (ties share the mean of their ranks), as scipy's ``rankdata``."""
    import torch

    order = torch.argsort(v)
    sorted_v = v[order]
    ranks = torch.empty_like(v)
    ranks[order] = torch.arange(1, len(v) + 1, dtype=v.dtype, device=v.device)
    new = torch.ones_like(sorted_v, dtype=torch.bool)
    new[1:] = sorted_v[1:] != sorted_v[:-1]
    if bool(new.all()):
        return ranks
    group = torch.cumsum(new.to(torch.int64), 0) - 1
    sums = torch.zeros(int(group[-1]) + 1, dtype=v.dtype, device=v.device)
    counts = torch.zeros_like(sums)
    sums.index_add_(0, group, ranks[order])
    counts.index_add_(0, group, torch.ones_like(sorted_v))
    ranks[order] = (sums / counts)[group]
    return ranks
