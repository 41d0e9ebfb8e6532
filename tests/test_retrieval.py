import numpy as np
import pytest

from align.errors import AlignError
from align.retrieval import best_threshold, knn, mine, score_at, tatoeba_accuracy, xsim_error
from align.retrieval.tatoeba import retrieve_top1


def _unit(*v: float) -> np.ndarray:
    a = np.array(v, np.float32)
    return a / np.linalg.norm(a)


def test_identical_embeddings_retrieve_perfectly() -> None:
    x = np.random.default_rng(0).standard_normal((200, 16)).astype(np.float32)
    assert tatoeba_accuracy(x, x) == 1.0
    assert tatoeba_accuracy(x, 3.0 * x) == 1.0  # cosine: scale-free
    assert xsim_error(x, x) == 0.0


def test_known_permutation() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((10, 8)).astype(np.float32)
    perm = np.array([0, 1, 2, 4, 3, 6, 5, 8, 9, 7])  # fixed points: 0, 1, 2
    res = retrieve_top1(x, x[perm])
    assert res.accuracy == pytest.approx(0.3)
    assert list(perm[res.predictions]) == list(range(10))  # each query finds its own vector


def test_knn_matches_brute_force() -> None:
    rng = np.random.default_rng(2)
    q, k = rng.standard_normal((50, 12)), rng.standard_normal((70, 12))
    sims, ids = knn(q, k, 5)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    kn = k / np.linalg.norm(k, axis=1, keepdims=True)
    full = qn @ kn.T
    expected = np.argsort(-full, axis=1)[:, :5]
    assert (ids == expected).all()
    np.testing.assert_allclose(sims, np.take_along_axis(full, expected, 1), atol=1e-5)


def test_knn_cuda_request_falls_back_without_gpu_faiss() -> None:
    x = np.eye(4, dtype=np.float32)
    _, ids = knn(x, x, 1, device="cuda")
    assert list(ids[:, 0]) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "bad", [np.zeros((3, 4)), np.full((3, 4), np.nan), np.ones((0, 4)), np.ones(4)]
)
def test_knn_rejects_bad_input(bad: np.ndarray) -> None:
    with pytest.raises(AlignError):
        knn(bad, np.eye(4), 1)


def test_shape_mismatch() -> None:
    with pytest.raises(AlignError, match="one shape"):
        tatoeba_accuracy(np.eye(4), np.eye(5)[:, :4])


# Hand-built BUCC case, k=1. x0..x2 / y0..y2 are e0..e2 (gold). x3 = n(e0 + .5 e3) sits near y0;
# y3 = n(e3 + .2 e1) is gold for x3 but x3's nearest neighbour is y0. Margins (k=1):
#   fwd: (0,0)=(1,1)=(2,2)=1, (3,0)=.894/((.894+1)/2)=.944   -> 3/4 correct
#   bwd: (0,0)=(1,1)=(2,2)=1, (3,3)=.439/((.894+.439)/2)=.659 -> 4/4 correct
#   intersect: (3,0) is not mutual (y0 -> x0) -> 3 pairs, all correct
#   max: greedy over both lists by score, unique src and tgt: (3,0) loses y0 to (0,0); (3,3) kept
X = np.stack([_unit(1, 0, 0, 0), _unit(0, 1, 0, 0), _unit(0, 0, 1, 0), _unit(1, 0, 0, 0.5)])
Y = np.stack([_unit(1, 0, 0, 0), _unit(0, 1, 0, 0), _unit(0, 0, 1, 0), _unit(0, 0.2, 0, 1)])
GOLD = {(0, 0), (1, 1), (2, 2), (3, 3)}


@pytest.mark.parametrize(
    ("mode", "precision", "recall", "f1"),
    [
        ("fwd", 0.75, 0.75, 0.75),
        ("bwd", 1.0, 1.0, 1.0),
        ("max", 1.0, 1.0, 1.0),
        ("intersect", 1.0, 0.75, 6 / 7),
    ],
)
def test_bucc_hand_built_f1(mode: str, precision: float, recall: float, f1: float) -> None:
    cands = mine(X, Y, mode, k=1)  # type: ignore[arg-type]
    prf = score_at(cands, GOLD, threshold=-np.inf)
    assert (prf.precision, prf.recall) == pytest.approx((precision, recall))
    assert prf.f1 == pytest.approx(f1)


def test_bucc_scores_and_threshold() -> None:
    cands = mine(X, Y, "fwd", k=1)
    np.testing.assert_allclose(cands.score, [1, 1, 1, 0.8944 / ((0.8944 + 1) / 2)], atol=1e-3)
    best = best_threshold(cands, GOLD)
    # dropping the wrong (3,0) pair: P = 1, R = 3/4; cut midway between 1 and .944
    assert best.f1 == pytest.approx(6 / 7)
    assert best.threshold == pytest.approx((1 + cands.score[3]) / 2)
    assert score_at(cands, GOLD, best.threshold).f1 == pytest.approx(6 / 7)


def _brute_force_fwd(x: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=1, keepdims=True)
    sim = xn @ yn.T
    mx = np.sort(sim, axis=1)[:, -k:].mean(1)
    my = np.sort(sim, axis=0)[-k:, :].mean(0)
    margin = sim / ((mx[:, None] + my[None, :]) / 2)
    nn = np.argsort(-sim, axis=1)[:, :k]  # candidates: the k nearest by cosine
    cand_margin = np.take_along_axis(margin, nn, 1)
    best = nn[np.arange(len(x)), cand_margin.argmax(1)]
    return best, cand_margin.max(1)


def test_mining_agrees_with_dense_margin_matrix() -> None:
    rng = np.random.default_rng(3)
    y = rng.standard_normal((60, 10)).astype(np.float32)
    x = (y[:40] + 0.8 * rng.standard_normal((40, 10))).astype(np.float32)
    cands = mine(x, y, "fwd", k=4)
    best, score = _brute_force_fwd(x, y, 4)
    order = np.argsort(cands.src)
    assert (cands.tgt[order] == best).all()
    np.testing.assert_allclose(cands.score[order], score, rtol=1e-5)
    mutual = mine(x, y, "intersect", k=4)
    bwd_best, _ = _brute_force_fwd(y, x, 4)
    expected = {(i, int(best[i])) for i in range(len(x)) if bwd_best[best[i]] == i}
    assert set(zip(mutual.src.tolist(), mutual.tgt.tolist(), strict=True)) == expected


def test_unknown_mining_mode() -> None:
    with pytest.raises(AlignError, match="mode 'both'"):
        mine(X, Y, "both")  # type: ignore[arg-type]
