"""Property tests for align.probes.cka."""

import numpy as np
import pytest
import torch
from scipy.stats import ortho_group

from align.errors import AlignError
from align.probes import cka

RNG = np.random.default_rng(0)
X = RNG.standard_normal((120, 16))
Y = X @ RNG.standard_normal((16, 24)) + 0.7 * RNG.standard_normal((120, 24))


@pytest.mark.parametrize("fn", [cka.linear, cka.linear_gram, cka.rbf])
@pytest.mark.parametrize("debiased", [False, True])
def test_self_similarity_is_one_and_symmetric(fn, debiased: bool) -> None:
    assert fn(X, X, debiased=debiased) == pytest.approx(1.0, abs=1e-12)
    assert fn(X, Y, debiased=debiased) == pytest.approx(fn(Y, X, debiased=debiased), abs=1e-12)
    assert 0.0 < fn(X, Y, debiased=debiased) < 1.0


@pytest.mark.parametrize("debiased", [False, True])
def test_linear_invariances(debiased: bool) -> None:
    q = ortho_group.rvs(16, random_state=1)
    ref = cka.linear(X, Y, debiased)
    assert cka.linear(X @ q, Y, debiased) == pytest.approx(ref, abs=1e-10)
    assert cka.linear(7.5 * X, 0.01 * Y, debiased) == pytest.approx(ref, abs=1e-10)
    assert cka.linear(X + 3.0, Y - 1.0, debiased=False) == pytest.approx(
        cka.linear(X, Y), abs=1e-10
    )


def test_rbf_invariances() -> None:
    q = ortho_group.rvs(16, random_state=2)
    ref = cka.rbf(X, Y)
    assert cka.rbf(X @ q, Y) == pytest.approx(ref, abs=1e-10)  # distances preserved
    assert cka.rbf(4.0 * X, Y) == pytest.approx(ref, abs=1e-10)  # bandwidth follows the median


@pytest.mark.parametrize("debiased", [False, True])
def test_feature_and_gram_formulas_agree(debiased: bool) -> None:
    assert cka.linear(X, Y, debiased) == pytest.approx(cka.linear_gram(X, Y, debiased), abs=1e-6)


def _textbook(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al. eq. (1) with the explicit centering matrix H."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = h @ x @ x.T @ h, h @ y @ y.T @ h
    return float(np.sum(k * l_) / np.sqrt(np.sum(k * k) * np.sum(l_ * l_)))


def test_agrees_with_independent_formula() -> None:
    assert cka.linear(X, Y) == pytest.approx(_textbook(X, Y), abs=1e-10)


def test_debiased_is_unbiased_for_independent_gaussians() -> None:
    rng = np.random.default_rng(3)
    biased, debiased = [], []
    for _ in range(200):
        a, b = rng.standard_normal((20, 10)), rng.standard_normal((20, 10))
        biased.append(cka.linear(a, b))
        debiased.append(cka.linear(a, b, debiased=True))
    assert np.mean(biased) > 0.3  # small n inflates biased CKA well above the population value 0
    assert abs(np.mean(debiased)) < 0.03


def test_minibatch_converges_to_full_batch_debiased() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4000, 12))
    y = x @ rng.standard_normal((12, 12)) + 2.0 * rng.standard_normal((4000, 12))
    full = cka.linear(x, y, debiased=True)
    one_epoch = cka.minibatch(x, y, batch_size=200, epochs=1)
    many = cka.minibatch(x, y, batch_size=200, epochs=20)
    assert abs(many - full) < 0.01
    assert abs(many - full) <= abs(one_epoch - full) + 0.005
    assert cka.minibatch(x, y, batch_size=len(x)) == pytest.approx(full, abs=1e-12)
    assert cka.minibatch(x, x, batch_size=300, kernel="rbf") == pytest.approx(1.0)


def test_layer_matrix_equals_pairwise() -> None:
    rng = np.random.default_rng(5)
    layers = rng.standard_normal((5, 80, 10))
    layers[2] = layers[1] @ rng.standard_normal((10, 10))
    other = rng.standard_normal((3, 80, 7))
    for debiased in (False, True):
        pairwise = [[cka.linear(a, b, debiased) for b in layers] for a in layers]
        np.testing.assert_allclose(cka.matrix(layers, debiased=debiased), pairwise, atol=1e-6)
        exact = cka.matrix(layers, debiased=debiased, gemm_dtype=torch.float64)
        np.testing.assert_allclose(exact, pairwise, atol=1e-10)
        cross = cka.matrix(layers, other, debiased=debiased)
        expected = [[cka.linear(a, b, debiased) for b in other] for a in layers]
        np.testing.assert_allclose(cross, expected, atol=1e-6)
    np.testing.assert_allclose(np.diag(cka.matrix(layers)), 1.0)


def test_torch_inputs() -> None:
    assert cka.linear(torch.from_numpy(X).float(), torch.from_numpy(Y)) == pytest.approx(
        cka.linear(X, Y), abs=1e-6
    )


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (X, Y[:100], "same examples"),
        (X[:3], Y[:3], "at least 4 rows"),
        (np.ones((50, 4)), Y[:50], "no variance"),
        (np.where(X > 2, np.nan, X), Y, "NaN or inf"),
        (np.where(X > 2, np.inf, X), Y, "NaN or inf"),
        (X[:, 0], Y, "2-D"),
    ],
)
def test_bad_input(x, y, message: str) -> None:
    with pytest.raises(AlignError, match=message):
        cka.linear(x, y, debiased=True)


def test_zero_variance_layer_in_matrix() -> None:
    layers = np.random.default_rng(6).standard_normal((3, 30, 5))
    layers[1] = 2.0
    with pytest.raises(AlignError, match="no variance"):
        cka.matrix(layers)
    fine = np.random.default_rng(7).standard_normal((3, 30, 5))
    with pytest.raises(AlignError, match="rows"):
        cka.matrix(fine, fine[:, :20])
    with pytest.raises(AlignError, match="constant"):
        cka.rbf(np.ones((10, 3)), X[:10])


def test_resampled_cka_equals_cka_of_the_repeated_rows(monkeypatch) -> None:
    """Row b of ``linear_resampled`` is linear CKA on the rows repeated ``weights[b]`` times,
    whether the weights come as one array or as batches drawn again for every Gram block."""
    import align.probes.cka as module

    rng = np.random.default_rng(8)
    n = 90
    weights = rng.multinomial(n, np.full(n, 1 / n), 11)
    expected = [cka.linear(np.repeat(X[:n], w, 0), np.repeat(Y[:n], w, 0)) for w in weights]
    np.testing.assert_allclose(cka.linear_resampled(X[:n], Y[:n], weights), expected, rtol=1e-9)
    # blocks of 2 Gram columns; the 11 x 90 weights exceed the budget, so they are redrawn
    monkeypatch.setattr(module, "WORK_BYTES", 8 * n * 5 * 2)
    drawn = []

    def batches():
        drawn.append(1)
        return (weights[i : i + 4] for i in range(0, len(weights), 4))

    np.testing.assert_allclose(cka.linear_resampled(X[:n], Y[:n], batches), expected, rtol=1e-9)
    assert len(drawn) == 1 + n // 2
    with pytest.raises(AlignError, match="weights"):
        cka.linear_resampled(X[:n], Y[:n], weights[:, :-1])


def test_linear_reads_float32_inputs_without_copying_them(monkeypatch) -> None:
    """CKA on float32 layers converts a block of rows at a time: equal to the float64 result."""
    from align.probes import _cka_base

    monkeypatch.setattr(_cka_base, "WORK_BYTES", 8 * 24 * 70)  # blocks of 70 rows
    x32, y32 = X.astype(np.float32), Y.astype(np.float32)
    for debiased in (False, True):
        whole = cka.linear_gram(x32.astype(np.float64), y32.astype(np.float64), debiased)
        assert cka.linear(x32, y32, debiased) == pytest.approx(whole, rel=1e-9)
