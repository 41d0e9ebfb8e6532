"""Vector checks and cosine nearest-neighbour search shared by ``retrieval`` and ``probes``.

kNN is exact inner product (FAISS ``IndexFlatIP``) on L2-normalised rows, so it is cosine.
Queries are searched in blocks so memory stays bounded; FAISS itself tiles the database. A GPU
index is used when faiss was built with GPU support (``pip install align[gpu]``) and the device
is CUDA.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from align.errors import AlignError, install_hint

log = logging.getLogger(__name__)

QUERY_BLOCK = 16384


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a hard dependency
        raise AlignError(
            f"retrieval needs FAISS: pip install faiss-cpu (on a GPU: {install_hint('gpu')})"
        ) from exc
    return faiss


def normalize(x: np.ndarray, name: str = "embeddings") -> np.ndarray:
    """Row-wise L2 normalisation to contiguous float32; rejects NaN/inf and zero rows."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise AlignError(f"{name}: expected a 2-D array [n, d], got shape {x.shape}")
    if x.shape[0] == 0:
        raise AlignError(f"{name}: empty set (0 rows)")
    if not np.isfinite(x).all():
        raise AlignError(f"{name}: contains NaN or inf")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if (norms == 0).any():
        raise AlignError(f"{name}: {int((norms == 0).sum())} all-zero row(s) have no direction")
    return x / norms


def check_pair(src: np.ndarray, tgt: np.ndarray, min_rows: int = 1) -> None:
    """``src[i]`` and ``tgt[i]`` are the same sentence in two languages: one [n, d] shape."""
    if src.ndim != 2 or tgt.ndim != 2 or src.shape != tgt.shape:
        raise AlignError(
            "parallel embeddings must be two [n, d] arrays of one shape, "
            f"got {src.shape} and {tgt.shape}"
        )
    if len(src) < min_rows:
        raise AlignError(f"need at least {min_rows} parallel sentences, got {len(src)}")


def gpu_available(device: str) -> bool:
    faiss = _faiss()
    return (
        device.startswith("cuda")
        and hasattr(faiss, "StandardGpuResources")
        and faiss.get_num_gpus() > 0
    )


IndexKind = Literal["flat", "ivf", "hnsw"]
INDEX_KINDS: tuple[IndexKind, ...] = ("flat", "ivf", "hnsw")
GPU_MAX_K = 2048  # faiss-gpu's largest k (and nprobe) per search


@dataclass(frozen=True)
class IndexSpec:
    """Which FAISS index searches: exact ``flat`` (the default), or approximate ``ivf``
    (IVF-Flat: ``nlist`` cells, ``nprobe`` searched; ``nlist`` 0 = 4 sqrt(n)) or ``hnsw``
    (graph of ``hnsw_m`` links, ``ef_search`` candidates per query)."""

    kind: IndexKind = "flat"
    nlist: int = 0
    nprobe: int = 16
    hnsw_m: int = 32
    ef_search: int = 128
    ef_construction: int = 200
    seed: int = 0

    @property
    def exact(self) -> bool:
        return self.kind == "flat"


FLAT = IndexSpec()


def _build(keys: np.ndarray, spec: IndexSpec) -> Any:
    faiss = _faiss()
    d = keys.shape[1]
    if spec.kind == "flat":
        return faiss.IndexFlatIP(d)
    if spec.kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, spec.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = spec.ef_construction
        index.hnsw.efSearch = spec.ef_search
        return index
    nlist = spec.nlist or max(1, min(len(keys) // 39, int(4 * np.sqrt(len(keys)))))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = spec.seed  # k-means initialisation: seeded like everything else
    sample = np.random.default_rng(spec.seed).permutation(len(keys))[: 256 * nlist]
    index.train(keys[np.sort(sample)])
    index.nprobe = min(spec.nprobe, nlist)
    return index


def _index(keys: np.ndarray, device: str, spec: IndexSpec = FLAT, k: int = 1) -> Any:
    faiss = _faiss()
    if spec.kind not in INDEX_KINDS:
        raise AlignError(f"index {spec.kind!r}: expected one of {', '.join(INDEX_KINDS)}")
    on_gpu = gpu_available(device) and spec.kind != "hnsw"  # FAISS has no GPU HNSW
    if on_gpu and (k > GPU_MAX_K or (spec.kind == "ivf" and spec.nprobe > GPU_MAX_K)):
        raise AlignError(  # before any index is built
            f"k {k} / nprobe {spec.nprobe}: faiss-gpu searches at most {GPU_MAX_K} "
            "neighbours (and probes); use a smaller k or --device cpu"
        )
    index = _build(keys, spec)
    if on_gpu:
        gpu = int(device.split(":", 1)[1]) if ":" in device else 0
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), gpu, index)
    elif device.startswith("cuda"):
        log.info("faiss has no GPU support here (or for HNSW); searching on the CPU")
    index.add(keys)
    return index


def recall_at_k(
    queries: np.ndarray, keys: np.ndarray, ids: np.ndarray, sample: int = 1000, seed: int = 0
) -> float:
    """Share of the exact k nearest keys that ``ids`` (an approximate search's) found, on a
    seeded sample of the queries (rows normalised)."""
    rows = np.sort(np.random.default_rng(seed).permutation(len(queries))[:sample])
    k = ids.shape[1]
    _, exact = knn(queries[rows], keys, k, normalized=True)
    found = [len(set(a) & set(b)) for a, b in zip(ids[rows].tolist(), exact.tolist(), strict=True)]
    return float(np.sum(found) / (len(rows) * k))


def knn(
    queries: np.ndarray,
    keys: np.ndarray,
    k: int,
    device: str = "cpu",
    normalized: bool = False,
    index: IndexSpec = FLAT,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` cosine neighbours of each query among ``keys``: (similarities, indices).

    ``index``: exact (flat, the default) or an approximate FAISS index (IVF, HNSW); an
    approximate search may miss neighbours (then its ids are -1 or farther keys); measure
    with :func:`recall_at_k`.
    """
    if k < 1:
        raise AlignError(f"k={k}: need at least one neighbour")
    if not normalized:
        queries, keys = normalize(queries, "queries"), normalize(keys, "keys")
    if queries.shape[1] != keys.shape[1]:
        raise AlignError(
            f"dimension mismatch: queries have d={queries.shape[1]}, keys d={keys.shape[1]}"
        )
    if k > keys.shape[0]:
        raise AlignError(f"k={k}: only {keys.shape[0]} keys to search")
    searcher = _index(keys, device, index, k)
    sims = np.empty((queries.shape[0], k), np.float32)
    ids = np.empty((queries.shape[0], k), np.int64)
    for start in range(0, queries.shape[0], QUERY_BLOCK):
        stop = start + QUERY_BLOCK
        sims[start:stop], ids[start:stop] = searcher.search(queries[start:stop], k)
    return sims, ids


@dataclass
class Top1:
    """The nearest ``tgt`` row of every ``src`` row, for parallel sets (row i is the answer)."""

    predictions: np.ndarray  # index of the retrieved target for each query
    scores: np.ndarray  # cosine of that target

    @property
    def correct(self) -> np.ndarray:
        """Boolean per query: the translation was retrieved."""
        return self.predictions == np.arange(len(self.predictions))

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.correct))


def top1(src: np.ndarray, tgt: np.ndarray, device: str = "cpu", index: IndexSpec = FLAT) -> Top1:
    """Nearest ``tgt`` row (cosine) of every ``src`` row; ``src[i]`` translates ``tgt[i]``."""
    check_pair(src, tgt)
    sims, ids = knn(src, tgt, 1, device=device, index=index)
    return Top1(ids[:, 0], sims[:, 0])
