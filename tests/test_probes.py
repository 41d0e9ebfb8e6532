"""Properties of the per-layer alignment measures."""

import numpy as np
import pytest

from align.errors import AlignError
from align.probes import alignment

RNG = np.random.default_rng(0)
EN = RNG.standard_normal((200, 16)).astype(np.float32)


def test_cosine_gap() -> None:
    same = alignment.cosine_gap(EN, EN)
    assert same["pair_cos"] == pytest.approx(1.0, abs=1e-6)
    assert abs(same["random_cos"]) < 0.1
    orthonormal = np.eye(16, dtype=np.float32)  # distinct rows are orthogonal: random cos = 0
    exact = alignment.cosine_gap(orthonormal, 2.0 * orthonormal)
    assert exact == pytest.approx({"pair_cos": 1.0, "random_cos": 0.0, "cos_gap": 1.0})
    noisy = alignment.cosine_gap(EN + 2 * RNG.standard_normal(EN.shape), EN)
    assert noisy["cos_gap"] < same["cos_gap"]


def test_mutual_knn() -> None:
    assert alignment.mutual_knn(EN, EN, k=5) == pytest.approx(1.0)
    unrelated = RNG.standard_normal(EN.shape)
    assert alignment.mutual_knn(unrelated, EN, k=5) < 0.1  # chance is k / (n - 1)
    with pytest.raises(AlignError, match="k="):
        alignment.mutual_knn(EN, EN, k=200)


def test_centering_removes_a_language_offset() -> None:
    src = EN + 0.3 * RNG.standard_normal(EN.shape).astype(np.float32)
    shifted = src + 8.0  # a per-language mean offset swamps cosine retrieval
    plain = alignment.centered_accuracy(src, EN)
    offset = alignment.centered_accuracy(shifted, EN)
    assert offset == pytest.approx(plain)
    from align.retrieval import tatoeba_accuracy

    assert tatoeba_accuracy(shifted, EN) < plain["acc_centered_xx2en"] - 0.3


def test_isotropy_finds_planted_outlier_dimension() -> None:
    emb = RNG.standard_normal((300, 32))
    emb[:, 7] += 40.0
    iso = alignment.isotropy(emb)
    assert iso.outlier_dims == [7]
    assert iso.max_dim_ratio > 20
    assert iso.avg_cos > 0.9  # everything points along dimension 7
    assert alignment.isotropy(RNG.standard_normal((300, 32))).outlier_dims == []


def test_langid_probe() -> None:
    separable = {"a": RNG.standard_normal((100, 8)) + 3, "b": RNG.standard_normal((100, 8)) - 3}
    assert alignment.langid_accuracy(separable) == 1.0
    same = {"a": RNG.standard_normal((400, 8)), "b": RNG.standard_normal((400, 8))}
    assert 0.35 < alignment.langid_accuracy(same) < 0.65
    assert alignment.langid_accuracy(same, seed=1) == alignment.langid_accuracy(same, seed=1)
    with pytest.raises(AlignError):
        alignment.langid_accuracy({"a": EN})


def test_shape_checks() -> None:
    with pytest.raises(AlignError, match="one"):
        alignment.cosine_gap(EN, EN[:10])


@pytest.mark.parametrize("n", [2, 3, 10, 1000])
def test_derangement_is_a_permutation_without_fixed_points(n: int) -> None:
    for seed in range(5):
        perm = alignment.derangement(n, np.random.default_rng(seed))
        assert sorted(perm.tolist()) == list(range(n))  # every partner used exactly once
        assert not np.any(perm == np.arange(n))


def test_random_pairs_use_every_sentence_once() -> None:
    """random_cos pairs each sentence with a distinct other one: on a set whose English side
    holds one 'hub' vector, only one pair can hit it."""
    tgt = np.eye(50, dtype=np.float32)
    src = np.eye(50, dtype=np.float32)
    src[:, 0] += 1.0  # every source sentence leans towards English sentence 0
    rand = alignment.random_cosines(src, tgt, seed=0)
    hits = np.isclose(rand, rand.max()) & (rand > 0.1)
    assert hits.sum() == 1  # with replacement, several rows would land on sentence 0
