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
    assert same["cos_gap"] == pytest.approx(same["pair_cos"] - same["random_cos"])
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
