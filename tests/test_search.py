"""Approximate search (FAISS IVF-Flat, HNSW): its recall@k is measured against exact search and
recorded with the results; exhaustive settings give exactly the exact answer."""

from __future__ import annotations

import numpy as np
import pytest
from golden import MODEL as FIXED_MODEL

from align.commands import retrieve
from align.data.bible import build_tatoeba_demo
from align.vectors import IndexSpec, knn, normalize, recall_at_k


def test_recall_is_the_share_of_exact_neighbours_found() -> None:
    rng = np.random.default_rng(0)
    x = normalize(rng.standard_normal((500, 16)).astype(np.float32))
    y = normalize(rng.standard_normal((800, 16)).astype(np.float32))
    _, exact = knn(x, y, 5, normalized=True)
    for spec in (IndexSpec("ivf", nlist=20, nprobe=1), IndexSpec("hnsw", hnsw_m=4, ef_search=5)):
        _, approx = knn(x, y, 5, normalized=True, index=spec)
        by_hand = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(approx, exact, strict=True)])
        assert recall_at_k(x, y, approx, sample=500) == pytest.approx(by_hand)
        assert by_hand < 1  # these settings miss neighbours: the case is not trivial
    for spec in (IndexSpec("ivf", nlist=20, nprobe=20), IndexSpec("hnsw", ef_search=800)):
        _, approx = knn(x, y, 5, normalized=True, index=spec)
        assert recall_at_k(x, y, approx, sample=500) == 1.0


def test_retrieve_records_the_recall_of_its_index(tmp_path, caplog) -> None:
    """On the committed tiny model (the session fixture's tokenizer is trained afresh each run,
    and with other embeddings a probed IVF cell may hold fewer than the margin's k keys)."""
    data = build_tatoeba_demo(tmp_path / "tat", ["de"], n=80, seed=0)
    common = {"ckpt": str(FIXED_MODEL), "data_dir": data, "plot": False, "progress": False}
    common |= {"use_cache": False, "layers": "3", "recall_sample": 80}
    flat = retrieve.run(retrieve.RetrieveConfig(out=tmp_path / "flat", **common))
    rough = retrieve.run(
        retrieve.RetrieveConfig(out=tmp_path / "ivf", index="ivf", nlist=8, nprobe=1, **common)
    )
    full = retrieve.run(
        retrieve.RetrieveConfig(out=tmp_path / "all", index="ivf", nlist=8, nprobe=8, **common)
    )

    def preds(run) -> np.ndarray:
        rows = [e for e in run.examples if e["direction"] == "xx2en"]
        return np.array([e["pred"] for e in sorted(rows, key=lambda e: e["index"])])

    recall = {r["metric"]: r["value"] for r in rough.result["scores"]}["knn_recall"]
    assert recall == pytest.approx(np.mean(preds(rough) == preds(flat)))  # top-1: k = 1
    assert recall < 0.95 and "below --min-recall" in caplog.text
    exhaustive = {r["metric"]: r["value"] for r in full.result["scores"]}
    assert exhaustive["knn_recall"] == 1.0
    exact = {r["metric"]: r["value"] for r in flat.result["scores"]}
    assert exhaustive["acc_xx2en"] == exact["acc_xx2en"] and "knn_recall" not in exact
    assert full.result["config"]["index"] == "ivf"


def test_faiss_gpu_k_limit_is_refused_before_any_index_is_built(monkeypatch) -> None:
    """faiss-gpu searches at most 2048 neighbours: a larger k gets one line, not a C++ abort."""
    from align import vectors
    from align.errors import AlignError

    built = []
    monkeypatch.setattr(vectors, "gpu_available", lambda device: True)
    monkeypatch.setattr(vectors, "_build", lambda keys, spec: built.append(spec))
    keys = normalize(np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32))
    with pytest.raises(AlignError, match="faiss-gpu searches at most 2048"):
        vectors._index(keys, "cuda", vectors.FLAT, k=vectors.GPU_MAX_K + 1)
    with pytest.raises(AlignError, match="nprobe 4096"):
        vectors._index(keys, "cuda", IndexSpec("ivf", nprobe=4096), k=4)
    assert built == []
