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

from align._memory import WORK_BYTES
from align.errors import AlignError
from align.vectors import Top1, check_pair, knn, normalize, top1


def _check_parallel(src: np.ndarray, tgt: np.ndarray) -> None:
    check_pair(src, tgt, min_rows=2)


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random permutation of ``range(n)`` without fixed points (n >= 2).

    Rejection sampling: about e (2.7) permutations are drawn on average.
    """
    if n < 2:
        raise AlignError(f"a derangement needs at least 2 items, got {n}")
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm


def pair_cosines(src: np.ndarray, tgt: np.ndarray) -> np.ndarray:
    """Per sentence: cosine between ``src[i]`` and its translation ``tgt[i]``."""
    _check_parallel(src, tgt)
    return np.sum(normalize(src, "src") * normalize(tgt, "tgt"), axis=1)


def random_cosines(src: np.ndarray, tgt: np.ndarray, seed: int = 0) -> np.ndarray:
    """Per sentence: cosine between ``src[i]`` and a random other sentence's translation."""
    _check_parallel(src, tgt)
    other = derangement(len(src), np.random.default_rng(seed))
    return np.sum(normalize(src, "src") * normalize(tgt, "tgt")[other], axis=1)


def cosine_gaps(src: np.ndarray, tgt: np.ndarray, seed: int = 0) -> np.ndarray:
    """Per sentence: its pair cosine minus its random-pair cosine."""
    return pair_cosines(src, tgt) - random_cosines(src, tgt, seed)


def cosine_gap(src: np.ndarray, tgt: np.ndarray, seed: int = 0) -> dict[str, float]:
    pair, rand = pair_cosines(src, tgt), random_cosines(src, tgt, seed)
    return {
        "pair_cos": float(pair.mean()),
        "random_cos": float(rand.mean()),
        "cos_gap": float((pair - rand).mean()),
    }


def mutual_knn_overlaps(src: np.ndarray, tgt: np.ndarray, k: int = 10) -> np.ndarray:
    """Per sentence: |kNN_src(i) ∩ kNN_tgt(i)| / k, neighbours within each space, self excluded."""
    _check_parallel(src, tgt)
    if not 1 <= k < len(src):
        raise AlignError(f"mknn k={k}: need 1 <= k < n = {len(src)}")
    _, a = knn(src, src, k + 1)
    _, b = knn(tgt, tgt, k + 1)
    overlaps = [
        len(set(ra[ra != i][:k]) & set(rb[rb != i][:k]))
        for i, (ra, rb) in enumerate(zip(a, b, strict=True))
    ]
    return np.asarray(overlaps, dtype=np.float64) / k


def mutual_knn(src: np.ndarray, tgt: np.ndarray, k: int = 10) -> float:
    """Mean mutual-kNN overlap (see :func:`mutual_knn_overlaps`)."""
    return float(mutual_knn_overlaps(src, tgt, k).mean())


def centered_correct(queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Per query: its translation retrieved after removing each language's mean vector."""
    _check_parallel(queries, keys)
    return top1(queries - queries.mean(0), keys - keys.mean(0)).correct


def centered_top1(src: np.ndarray, tgt: np.ndarray) -> tuple[Top1, Top1]:
    """xx->en and en->xx retrieval after removing each language's mean vector."""
    _check_parallel(src, tgt)
    xc, yc = src - src.mean(0), tgt - tgt.mean(0)
    return top1(xc, yc), top1(yc, xc)


def centered_accuracy(src: np.ndarray, tgt: np.ndarray) -> dict[str, float]:
    xx2en, en2xx = centered_top1(src, tgt)
    return {"acc_centered_xx2en": xx2en.accuracy, "acc_centered_en2xx": en2xx.accuracy}


@dataclass
class Isotropy:
    avg_cos: float  # mean cosine between random pairs of different sentences
    top_pc_share: float  # share of variance along the first principal direction
    outlier_dims: list[int]  # dimensions whose mean |value| exceeds 5x the median dimension's
    max_dim_ratio: float  # the largest such ratio


def self_cosines(emb: np.ndarray, seed: int = 0) -> np.ndarray:
    """Per sentence: cosine with a random other sentence of the same language."""
    x = normalize(emb, "embeddings")
    return np.sum(x * x[derangement(len(x), np.random.default_rng(seed))], axis=1)


def _check_single(emb: np.ndarray) -> None:
    if emb.ndim != 2 or len(emb) < 3:
        raise AlignError(f"isotropy needs an [n >= 3, d] array, got {emb.shape}")


def top_pc_share(emb: np.ndarray) -> float:
    """Share of the (centred) variance along the first principal direction: the largest
    eigenvalue of the ``d x d`` scatter matrix over its trace (the squared singular values of
    the centred rows), the scatter summed in float64 over row blocks (no copy of ``emb``)."""
    _check_single(emb)
    mean = emb.mean(0)
    scatter = np.zeros((emb.shape[1], emb.shape[1]))
    rows = max(1, WORK_BYTES // (8 * emb.shape[1]))
    for start in range(0, len(emb), rows):
        block = (emb[start : start + rows] - mean).astype(np.float64)
        scatter += block.T @ block
    total = float(np.trace(scatter))
    if total == 0:
        raise AlignError("isotropy: embeddings have zero variance")
    return float(np.linalg.eigvalsh(scatter)[-1] / total)


def _dim_ratios(emb: np.ndarray) -> np.ndarray:
    magnitude = np.abs(emb).mean(0)
    return magnitude / max(float(np.median(magnitude)), 1e-12)


def outlier_dims(emb: np.ndarray, outlier_factor: float = 5.0) -> list[int]:
    """Dimensions whose mean |value| exceeds ``outlier_factor`` x the median dimension's."""
    _check_single(emb)
    return np.flatnonzero(_dim_ratios(emb) > outlier_factor).tolist()


def max_dim_ratio(emb: np.ndarray) -> float:
    """The largest dimension's mean |value| over the median dimension's."""
    _check_single(emb)
    return float(_dim_ratios(emb).max())


def isotropy(emb: np.ndarray, seed: int = 0, outlier_factor: float = 5.0) -> Isotropy:
    _check_single(emb)
    return Isotropy(
        float(np.mean(self_cosines(emb, seed))),
        top_pc_share(emb),
        outlier_dims(emb, outlier_factor),
        max_dim_ratio(emb),
    )


def rbf_cka_subsampled(src: np.ndarray, tgt: np.ndarray, params) -> float:
    """RBF CKA on a seeded subsample of at most ``params.rbf_max_n`` pairs (n x n Grams)."""
    from align.probes import cka
    from align.sampling import subsample

    rows = subsample(len(src), params.rbf_max_n, params.seed)
    return cka.rbf(src[rows], tgt[rows], sigma_frac=params.sigma_frac)


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
    langs = sorted(embeddings)
    splits = {
        lang: _langid_split(lang, len(embeddings[lang]), test_fraction, seed) for lang in langs
    }
    x = {}  # each split's rows of every language, written in place (one copy of the inputs)
    for split in ("train", "test"):
        total = sum(len(splits[lang][split]) for lang in langs)
        x[split] = np.empty((total, embeddings[langs[0]].shape[1]), embeddings[langs[0]].dtype)
    y: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    filled = {"train": 0, "test": 0}
    for label, lang in enumerate(langs):
        for split, rows in splits[lang].items():
            x[split][filled[split] : filled[split] + len(rows)] = embeddings[lang][rows]
            filled[split] += len(rows)
            y[split].append(np.full(len(rows), label))
    scaler = StandardScaler(copy=False).fit(x["train"])  # standardised in place
    clf = LogisticRegression(max_iter=2000, random_state=seed)
    clf.fit(scaler.transform(x["train"]), np.concatenate(y["train"]))
    return float(clf.score(scaler.transform(x["test"]), np.concatenate(y["test"])))


def _langid_split(lang: str, n: int, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """One language's (train, test) rows: one seeded permutation, its first share held out."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = round(n * test_fraction)
    if n_test < 1 or n - n_test < 1:
        raise AlignError(f"language-ID probe: {lang} has too few sentences ({n}) to split")
    return {"train": order[n_test:], "test": order[:n_test]}
