"""Margin mining from one similarity pass: the exact neighbours, ties to the lower index, and
the same candidates as the two-search path (FAISS) wherever similarities are not tied within
float32 rounding."""

from __future__ import annotations

import numpy as np
import pytest

from align.retrieval import bucc, onepass
from align.retrieval.onepass import bidirectional_knn, greedy_one_to_one
from align.vectors import knn, normalize


def _exact(x: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best by (float64 similarity descending, index ascending), row by row."""
    sims = x.astype(np.float64) @ y.astype(np.float64).T
    ids = np.array([np.lexsort((np.arange(len(row)), -row))[:k] for row in sims])
    return np.take_along_axis(sims, ids, 1), ids


def _unit(rng, n: int, d: int = 16) -> np.ndarray:
    return normalize(rng.standard_normal((n, d)).astype(np.float32))


@pytest.mark.parametrize("per_row", [0, 32, 10**6])  # every later tile by top-k, the default, never
@pytest.mark.parametrize(("n", "m", "tile"), [(300, 200, 64), (97, 150, 1000), (50, 61, 7)])
def test_one_pass_gives_the_exact_neighbours_both_ways(n, m, tile, per_row, monkeypatch) -> None:
    monkeypatch.setattr(onepass, "_CANDIDATES_PER_ROW", per_row)
    rng = np.random.default_rng(n)
    x, y = _unit(rng, n), _unit(rng, m)
    forward, backward = bidirectional_knn(x, y, 4, tile=tile)
    for found, (queries, keys) in ((forward, (x, y)), (backward, (y, x))):
        sims, ids = _exact(queries, keys, 4)
        np.testing.assert_array_equal(found.ids, ids)
        np.testing.assert_allclose(found.sims, sims, atol=1e-6)


@pytest.mark.parametrize("per_row", [0, 10**6])
def test_ties_go_to_the_lower_index_across_tiles(per_row, monkeypatch) -> None:
    monkeypatch.setattr(onepass, "_CANDIDATES_PER_ROW", per_row)
    rng = np.random.default_rng(0)
    x, y = _unit(rng, 40), _unit(rng, 60)
    y[[13, 29, 44, 58]] = y[5]  # five identical keys, spread over several tiles of 9
    x[[21, 33]] = x[2]
    forward, backward = bidirectional_knn(x, y, 3, tile=9)
    for q in np.flatnonzero(np.isin(forward.ids, [5, 13, 29, 44, 58]).any(1)):
        chosen = [i for i in forward.ids[q] if i in (5, 13, 29, 44, 58)]
        assert chosen == sorted(chosen) and chosen[0] == 5  # the lowest copies, in order
    for q in np.flatnonzero(np.isin(backward.ids, [2, 21, 33]).any(1)):
        chosen = [i for i in backward.ids[q] if i in (2, 21, 33)]
        assert chosen == [2, 21, 33][: len(chosen)]


def test_greedy_one_to_one_equals_the_scan() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        src, tgt = rng.integers(0, 12, 60), rng.integers(0, 12, 60)
        seen_s, seen_t, scan = set(), set(), []
        for i, (s, t) in enumerate(zip(src.tolist(), tgt.tolist(), strict=True)):
            if s not in seen_s and t not in seen_t:
                seen_s.add(s)
                seen_t.add(t)
                scan.append(i)
        assert greedy_one_to_one(src, tgt).tolist() == scan


@pytest.mark.parametrize("mode", bucc.MINING_MODES)
def test_one_pass_mining_equals_the_two_search_path(mode) -> None:
    """Random data: no near-ties, so candidates and (to float32 rounding) scores agree."""
    rng = np.random.default_rng(11)
    x, y = _unit(rng, 400, 32), _unit(rng, 350, 32)
    one = bucc.mine(x, y, mode, 4)
    two = bucc.mine_two_search(x, y, mode, 4)
    a = dict(zip(zip(one.src.tolist(), one.tgt.tolist(), strict=True), one.score, strict=True))
    b = dict(zip(zip(two.src.tolist(), two.tgt.tolist(), strict=True), two.score, strict=True))
    assert a.keys() == b.keys()  # the same pairs (their order may swap where scores tie)
    np.testing.assert_allclose([a[p] for p in b], list(b.values()), rtol=2e-6)


def test_one_pass_mining_on_duplicates_matches_the_exact_answer() -> None:
    """Duplicate sentences (real BUCC sets hold them) tie exactly; one pass resolves them as
    the exact float64 search with ties to the lower index does."""
    rng = np.random.default_rng(5)
    x, y = _unit(rng, 120, 8), _unit(rng, 100, 8)
    y[[40, 77]] = y[3]
    x[[60, 99]] = x[10]
    forward, backward = bidirectional_knn(x, y, 4, tile=32)
    for found, (queries, keys) in ((forward, (x, y)), (backward, (y, x))):
        _, exact_ids = _exact(queries, keys, 4)
        np.testing.assert_array_equal(found.ids, exact_ids)
    faiss_sims, faiss_ids = knn(x, y, 4, normalized=True)
    differs = np.flatnonzero((np.sort(faiss_ids, 1) != np.sort(forward.ids, 1)).any(1))
    for row in differs:  # FAISS departs only where its k-th neighbour is tied (within rounding)
        kth = forward.sims[row, 3]
        assert np.isclose(faiss_sims[row, 3], kth, atol=1e-6)
