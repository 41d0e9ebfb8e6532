"""Margin mining from one similarity pass: the exact neighbours, ties to the lower index, and
the same candidates as the two-search path (FAISS) wherever similarities are not tied within
float32 rounding."""

from __future__ import annotations

import numpy as np
import pytest

from align.errors import AlignError
from align.retrieval import _knn_device, _knn_host, bucc
from align.retrieval.onepass import bidirectional_knn, greedy_one_to_one
from align.vectors import knn, normalize


def _exact(x: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best by (float64 similarity descending, index ascending), row by row."""
    sims = x.astype(np.float64) @ y.astype(np.float64).T
    ids = np.array([np.lexsort((np.arange(len(row)), -row))[:k] for row in sims])
    return np.take_along_axis(sims, ids, 1), ids


def _unit(rng, n: int, d: int = 16) -> np.ndarray:
    return normalize(rng.standard_normal((n, d)).astype(np.float32))


# each loop with its knob: the host loop's candidates per row before a tile is settled by top-k
# (0: every later tile by top-k; 10**6: never), the device loop's block (10**6: plain top-k)
LOOPS = [
    ("host", _knn_host, "_CANDIDATES_PER_ROW", 0),
    ("host", _knn_host, "_CANDIDATES_PER_ROW", 32),
    ("host", _knn_host, "_CANDIDATES_PER_ROW", 10**6),
    ("device", _knn_device, "_BLOCK", 2),
    ("device", _knn_device, "_BLOCK", 3),
    ("device", _knn_device, "_BLOCK", 32),
    ("device", _knn_device, "_BLOCK", 10**6),
]


@pytest.mark.parametrize(("loop", "module", "knob", "value"), LOOPS)
@pytest.mark.parametrize(("n", "m", "tile"), [(300, 200, 64), (97, 150, 1000), (50, 61, 7)])
def test_one_pass_gives_the_exact_neighbours_both_ways(
    n, m, tile, loop, module, knob, value, monkeypatch
) -> None:
    monkeypatch.setattr(module, knob, value)
    rng = np.random.default_rng(n)
    x, y = _unit(rng, n), _unit(rng, m)
    forward, backward = bidirectional_knn(x, y, 4, tile=tile, loop=loop)
    for found, (queries, keys) in ((forward, (x, y)), (backward, (y, x))):
        sims, ids = _exact(queries, keys, 4)
        np.testing.assert_array_equal(found.ids, ids)
        np.testing.assert_allclose(found.sims, sims, atol=1e-6)


@pytest.mark.parametrize(("loop", "module", "knob", "value"), LOOPS)
def test_ties_go_to_the_lower_index_across_tiles(loop, module, knob, value, monkeypatch) -> None:
    monkeypatch.setattr(module, knob, value)
    rng = np.random.default_rng(0)
    x, y = _unit(rng, 40), _unit(rng, 60)
    y[[13, 29, 44, 58]] = y[5]  # five identical keys, spread over several tiles of 9
    x[[21, 33]] = x[2]
    forward, backward = bidirectional_knn(x, y, 3, tile=9, loop=loop)
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


@pytest.mark.parametrize(("loop", "module", "knob", "value"), LOOPS)
@pytest.mark.parametrize("tile", [5, 16, 1000])
def test_exact_ties_everywhere_go_to_the_lower_index(
    loop, module, knob, value, tile, monkeypatch
) -> None:
    """Vectors of small integers: their products are exact in float32 and take few values, so
    nearly every list ends in a tie, within blocks, across blocks and across tiles; negative
    and zero similarities are in every list. Both directions equal the exact lexsort."""
    monkeypatch.setattr(module, knob, value)
    rng = np.random.default_rng(tile)
    x = rng.integers(-2, 3, (70, 3)).astype(np.float32)
    y = rng.integers(-2, 3, (90, 3)).astype(np.float32)
    forward, backward = bidirectional_knn(x, y, 5, tile=tile, loop=loop)
    for found, (queries, keys) in ((forward, (x, y)), (backward, (y, x))):
        sims, ids = _exact(queries, keys, 5)
        np.testing.assert_array_equal(found.ids, ids)
        np.testing.assert_array_equal(found.sims, sims.astype(np.float32))


def test_keys_order_by_similarity_then_lower_index_and_decode_exactly() -> None:
    import torch

    rng = np.random.default_rng(2)
    values = np.concatenate(
        [rng.standard_normal(500).astype(np.float32), [0.0, -0.0, 1.0, -1.0, 0.0, -0.0]]
    ).astype(np.float32)
    values[:100] = np.round(values[:100], 1)  # many exact ties
    index = rng.permutation(len(values))
    keys = _knn_device.order_keys(torch.from_numpy(values), torch.from_numpy(index))
    by_key = np.argsort(-keys.numpy(), kind="stable")
    by_lexsort = np.lexsort((index, -values.astype(np.float64)))  # -0.0 == 0.0 here
    np.testing.assert_array_equal(by_key, by_lexsort)
    sims, ids = _knn_device.decode_keys(keys)
    np.testing.assert_array_equal(ids.numpy(), index)
    np.testing.assert_array_equal(sims.numpy(), values + np.float32(0.0))  # -0.0 read as 0.0


def test_the_tile_loop_reads_nothing_back_from_the_device(monkeypatch) -> None:
    """Mining's tile loop is torch ops only: every way of reading a tensor back to the host
    raises while it runs (on CPU tensors, by patching them; with CUDA, the sync debug mode
    also raises on any synchronisation), and the lists still equal the exact answer."""
    import torch

    def forbidden(*args, **kwargs):
        raise AssertionError("the tile loop read a tensor back to the host")

    rng = np.random.default_rng(4)
    x, y = _unit(rng, 300, 16), _unit(rng, 260, 16)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        with monkeypatch.context() as patch:
            for name in ("cpu", "numpy", "item", "tolist", "__bool__", "__int__", "__float__"):
                patch.setattr(torch.Tensor, name, forbidden)
            if device == "cuda":
                torch.cuda.set_sync_debug_mode("error")
            try:
                forward, backward = _knn_device.tile_loop(xt, yt, 4, 64)
            finally:
                if device == "cuda":
                    torch.cuda.set_sync_debug_mode("default")
        for keys, (queries, keys_) in ((forward, (x, y)), (backward, (y, x))):
            _, exact_ids = _exact(queries, keys_, 4)
            found = _knn_device.decode_keys(keys)[1].cpu().numpy()
            np.testing.assert_array_equal(found, exact_ids)
    bites = pytest.raises(AssertionError, match="read a tensor back")  # the patch does bite
    with bites, monkeypatch.context() as patch:
        patch.setattr(torch.Tensor, "tolist", forbidden)
        torch.zeros(2).tolist()


@pytest.mark.parametrize("loop", ["host", "device"])
@pytest.mark.parametrize("precision", ["tf32", "bfloat16"])
def test_reduced_precision_tiles_find_the_neighbours_of_their_own_similarities(
    precision, loop
) -> None:
    """tf32 is float32 on the CPU; bf16 tiles give the exact lists of the bf16 products."""
    import torch

    rng = np.random.default_rng(9)
    x, y = _unit(rng, 200, 24), _unit(rng, 150, 24)
    forward, _ = bidirectional_knn(x, y, 4, precision=precision, tile=64, loop=loop)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    if precision == "bfloat16":
        sims = (xt.bfloat16() @ yt.bfloat16().T).float().numpy()
    else:
        sims = (xt @ yt.T).numpy()
    ids = np.array([np.lexsort((np.arange(len(r)), -r.astype(np.float64)))[:4] for r in sims])
    np.testing.assert_array_equal(forward.ids, ids)
    with pytest.raises(AlignError, match="precision"):
        bidirectional_knn(x, y, 4, precision="fp8")
    with pytest.raises(AlignError, match="loop"):
        bidirectional_knn(x, y, 4, loop="gpu")  # type: ignore[arg-type]


def test_the_device_loop_is_chosen_for_cuda(monkeypatch) -> None:
    """``auto`` takes the device loop where the device is CUDA and the host loop on the CPU."""
    used = []
    for module in (_knn_device, _knn_host):
        original = module.tile_loop

        def spy(*args, _module=module, _original=original):
            used.append(_module.__name__.rsplit("_", 1)[-1])
            return _original(*args)

        monkeypatch.setattr(module, "tile_loop", spy)
    rng = np.random.default_rng(1)
    x, y = _unit(rng, 30), _unit(rng, 20)
    bidirectional_knn(x, y, 2)
    monkeypatch.setattr(
        "align.retrieval.onepass._as_tensor",
        lambda a, device, dtype: __import__("torch").from_numpy(a).to(dtype),
    )
    bidirectional_knn(x, y, 2, device="cuda")  # tensors kept on the CPU: the choice is tested
    assert used == ["host", "device"]
