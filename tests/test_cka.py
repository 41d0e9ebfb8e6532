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


@pytest.mark.parametrize("form", ["gram", "feature", "auto"])
@pytest.mark.parametrize("block", [None, 7])  # 7: Gram blocks of 7 rows, ragged at the end
def test_resampled_cka_equals_cka_of_the_repeated_rows(form, block, monkeypatch) -> None:
    """Row b of ``linear_resampled`` is linear CKA on the rows repeated ``weights[b]`` times, in
    either exact form and any blocking, whether the weights come as one array or as batches
    (drawn once: drawing them again per block made the old loop grow as n^3)."""
    from align.probes import _cka_resampled

    if block is not None:
        monkeypatch.setattr(_cka_resampled, "_MIN_GRAM_BLOCK", block)
        monkeypatch.setattr(_cka_resampled, "WORK_BYTES", 0)
        monkeypatch.setattr(_cka_resampled, "block_rows", lambda d: block)
    rng = np.random.default_rng(8)
    n = 90
    weights = rng.multinomial(n, np.full(n, 1 / n), 11)
    x, y = X[:n] + 40.0, Y[:n] - 7.0  # a large common offset: centring must not cancel it badly
    expected = [cka.linear(np.repeat(x, w, 0), np.repeat(y, w, 0)) for w in weights]
    got = cka.linear_resampled(x, y, weights, form=form)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    drawn = []

    def batches():
        drawn.append(1)
        return (weights[i : i + 4] for i in range(0, len(weights), 4))

    np.testing.assert_allclose(cka.linear_resampled(x, y, batches, form=form), got, rtol=1e-12)
    assert len(drawn) == 1
    with pytest.raises(AlignError, match="weights"):
        cka.linear_resampled(x, y, weights[:, :-1], form=form)


def test_resampled_cka_takes_the_cheaper_exact_form(monkeypatch) -> None:
    """Gram blocks while n is small against B d (O(n^2 (d + B))), the feature products when n
    is large (O(B n d^2)); ``auto`` follows the cost model."""
    from align.probes import _cka_resampled as module

    assert module.cost(3000, 384, 384, 200, "gram") < module.cost(3000, 384, 384, 200, "feature")
    assert module.cost(10**6, 64, 64, 50, "feature") < module.cost(10**6, 64, 64, 50, "gram")
    used = []
    for name in ("_hadamard_gram", "_hadamard_feature"):
        original = getattr(module, name)

        def spy(*args, _original=original, _name=name):
            used.append(_name)
            return _original(*args)

        monkeypatch.setattr(module, name, spy)
    weights = np.ones((3, 40))
    cka.linear_resampled(X[:40], Y[:40], weights)  # n 40, d 12, B 3: Gram is cheaper
    monkeypatch.setattr(module, "cost", lambda n, d1, d2, b, form: 0 if form == "feature" else 1)
    cka.linear_resampled(X[:40], Y[:40], weights)
    assert used == ["_hadamard_gram", "_hadamard_feature"]
    with pytest.raises(AlignError, match="form"):
        cka.linear_resampled(X[:40], Y[:40], weights, form="fast")


def test_linear_reads_float32_inputs_without_copying_them(monkeypatch) -> None:
    """CKA on float32 layers converts a block of rows at a time: equal to the float64 result."""
    from align.probes import _cka_base

    monkeypatch.setattr(_cka_base, "WORK_BYTES", 8 * 24 * 70)  # blocks of 70 rows
    x32, y32 = X.astype(np.float32), Y.astype(np.float32)
    for debiased in (False, True):
        whole = cka.linear_gram(x32.astype(np.float64), y32.astype(np.float64), debiased)
        assert cka.linear(x32, y32, debiased) == pytest.approx(whole, rel=1e-9)
