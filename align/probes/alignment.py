"""Per-layer alignment measures between parallel embeddings ``src[i] <-> tgt[i]`` (tgt: English).

- ``cosine_gap``: mean cosine of translation pairs, of random cross-language pairs, and the gap.
- ``mutual_knn``: overlap of each sentence's k nearest neighbours in the two spaces.
- ``centered_accuracy``: Tatoeba accuracy after removing each language's mean vector
  (Libovický et al. 2020).
- ``isotropy``: mean cosine of random same-language pairs, the variance share of the top
  principal direction, and outlier dimensions (Hämmerl et al. 2023).
- ``langid_accuracy``: held-out accuracy of a logistic-regression language-identity probe.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from align.errors import AlignError
from align.retrieval.knn import knn, normalize
from align.retrieval.tatoeba import check_pair, retrieve_top1


def _check_parallel(src: np.ndarray, tgt: np.ndarray) -> None:
    check_pair(src, tgt)
    if len(src) < 2:
        raise AlignError(f"need at least 2 parallel sentences, got {len(src)}")


def _derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation without fixed points (i is never paired with itself)."""
    return (np.arange(n) + rng.integers(1, n, size=n)) % n


def cosine_gap(src: np.ndarray, tgt: np.ndarray, seed: int = 0) -> dict[str, float]:
    _check_parallel(src, tgt)
    x, y = normalize(src, "src"), normalize(tgt, "tgt")
    pair = float(np.mean(np.sum(x * y, axis=1)))
    other = _derangement(len(x), np.random.default_rng(seed))
    rand = float(np.mean(np.sum(x * y[other], axis=1)))
    return {"pair_cos": pair, "random_cos": rand, "cos_gap": pair - rand}


def mutual_knn(src: np.ndarray, tgt: np.ndarray, k: int = 10) -> float:
    """Mean |kNN_src(i) ∩ kNN_tgt(i)| / k, neighbours within each space, self excluded."""
    _check_parallel(src, tgt)
    if not 1 <= k < len(src):
        raise AlignError(f"mknn k={k}: need 1 <= k < n = {len(src)}")
    _, a = knn(src, src, k + 1)
    _, b = knn(tgt, tgt, k + 1)
    overlaps = [
        len(set(ra[ra != i][:k]) & set(rb[rb != i][:k]))
        for i, (ra, rb) in enumerate(zip(a, b, strict=True))
    ]
    return float(np.mean(overlaps) / k)


def centered_accuracy(src: np.ndarray, tgt: np.ndarray) -> dict[str, float]:
    _check_parallel(src, tgt)
    xc, yc = src - src.mean(0), tgt - tgt.mean(0)
    return {
        "acc_centered_xx2en": retrieve_top1(xc, yc).accuracy,
        "acc_centered_en2xx": retrieve_top1(yc, xc).accuracy,
    }


@dataclass
class Isotropy:
    avg_cos: float  # mean cosine between random pairs of different sentences
    top_pc_share: float  # share of variance along the first principal direction
    outlier_dims: list[int]  # dimensions whose mean |value| exceeds 5x the median dimension's
    max_dim_ratio: float  # the largest such ratio


def isotropy(emb: np.ndarray, seed: int = 0, outlier_factor: float = 5.0) -> Isotropy:
    if emb.ndim != 2 or len(emb) < 3:
        raise AlignError(f"isotropy needs an [n >= 3, d] array, got {emb.shape}")
    x = normalize(emb, "embeddings")
    other = _derangement(len(x), np.random.default_rng(seed))
    avg_cos = float(np.mean(np.sum(x * x[other], axis=1)))
    centered = emb - emb.mean(0)
    sv = np.linalg.svd(centered.astype(np.float64), compute_uv=False)
    total = float(np.sum(sv**2))
    if total == 0:
        raise AlignError("isotropy: embeddings have zero variance")
    magnitude = np.abs(emb).mean(0)
    ratio = magnitude / max(float(np.median(magnitude)), 1e-12)
    return Isotropy(
        avg_cos,
        float(sv[0] ** 2 / total),
        np.flatnonzero(ratio > outlier_factor).tolist(),
        float(ratio.max()),
    )


def langid_accuracy(
    embeddings: dict[str, np.ndarray], test_fraction: float = 0.5, seed: int = 0
) -> float:
    """Held-out accuracy of a logistic-regression language-ID probe.

    ``embeddings``: language -> [n, d]. Each language's rows are split by one seeded
    permutation; with parallel sets of equal size the split is the same for every language, so
    no sentence has its translation on the other side of the split.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if len(embeddings) < 2:
        raise AlignError("language-ID probe needs at least 2 languages")
    if not 0 < test_fraction < 1:
        raise AlignError(f"test fraction must be in (0, 1), got {test_fraction}")
    parts: dict[str, list[np.ndarray]] = {"x_train": [], "x_test": [], "y_train": [], "y_test": []}
    for label, lang in enumerate(sorted(embeddings)):
        emb = embeddings[lang]
        order = np.random.default_rng(seed).permutation(len(emb))
        n_test = round(len(emb) * test_fraction)
        if n_test < 1 or len(emb) - n_test < 1:
            raise AlignError(
                f"language-ID probe: {lang} has too few sentences ({len(emb)}) to split"
            )
        for split, rows in (("test", order[:n_test]), ("train", order[n_test:])):
            parts[f"x_{split}"].append(emb[rows])
            parts[f"y_{split}"].append(np.full(len(rows), label))
    x_train, x_test, y_train, y_test = (
        np.concatenate(parts[k]) for k in ("x_train", "x_test", "y_train", "y_test")
    )
    scaler = StandardScaler().fit(x_train)
    clf = LogisticRegression(max_iter=2000, random_state=seed)
    clf.fit(scaler.transform(x_train), y_train)
    return float(clf.score(scaler.transform(x_test), y_test))
