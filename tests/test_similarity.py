"""The similarity measures of align.probes.similarity (issue 27): equal to their reference code
on fixed arrays, and invariant to what each says it is invariant to (and not to the rest).

Reference values were computed on :func:`fixture`'s arrays by running the reference code itself
(read and run locally, never copied into align):

- google/svcca at 1f3fbf19bd31bd9b76e728ef75842aa1d9a4cd2b: ``cca_core.get_cca_similarity`` on
  the SVD-reduced activations as its tutorial does (10 directions, ``epsilon=1e-10``;
  ``np.mean(cca_coef1)`` and the ``mean`` statistic), on the raw activations (``epsilon=0``:
  ``cca_coef1``), and ``pwcca.compute_pwcca(x.T, y.T, epsilon=0.)[0]``;
- ahwillia/netrep at 0186b8a77ec1ebaf541cc8f7173cb2556df8a8f0:
  ``LinearMetric(alpha=1, center_columns=True, zero_pad=True, score_method=...).fit_score``;
- minyoungg/platonic-rep at dcd76ba3c950c1b197a2ae8b1c6713535c94ecf9:
  ``metrics.AlignmentMetrics.cknna(A, B, topk=10)`` and ``.mutual_knn(A, B, topk=10)`` on
  ``torch.nn.functional.normalize(., dim=1)`` of float64 tensors (its float32 masks round the
  mutual kNN value at 1e-9).
"""

from __future__ import annotations

import numpy as np
import pytest

from align.probes import similarity as sim

REFERENCE = {
    "svcca_dims10": 0.8660112127817433,
    "svcca_dims10_mean_stat": 0.8660112127817433,
    "cca_coef1_first3": [0.9984540248758165, 0.9981015600227784, 0.9972539761960754],
    "pwcca": 0.9185986250698136,
    "procrustes_angular": 0.4212444403388798,
    "procrustes_euclidean": 1829.7070043756128,
    "cknna_k10": 0.5403227978322299,
    "mutual_knn_k10": 0.512333333492279,
}


def fixture() -> tuple[np.ndarray, np.ndarray]:
    """300 sentences; x 24-wide, y 32-wide holding a noisy linear image of x and 8 unrelated
    columns; both off-centre."""
    rng = np.random.default_rng(20261206)
    n, d1, d2 = 300, 24, 32
    x = rng.standard_normal((n, d1)) @ rng.standard_normal((d1, d1)) + 0.5
    y = np.hstack([x @ rng.standard_normal((d1, d1)), rng.standard_normal((n, d2 - d1))])
    y = y + 4.0 * rng.standard_normal((n, d2)) - 1.0
    return x, y


def test_every_measure_equals_its_reference_code() -> None:
    x, y = fixture()
    assert sim.svcca(x, y, dims=10) == pytest.approx(REFERENCE["svcca_dims10"], abs=1e-8)
    assert sim.svcca(x, y, dims=10, trailing=0.98) == pytest.approx(
        REFERENCE["svcca_dims10_mean_stat"], abs=1e-8
    )
    assert sim.cca_correlations(x, y)[:3] == pytest.approx(REFERENCE["cca_coef1_first3"], abs=1e-9)
    assert sim.pwcca(x, y) == pytest.approx(REFERENCE["pwcca"], abs=1e-10)
    for score in ("angular", "euclidean"):
        assert sim.procrustes_distance(x, y, score) == pytest.approx(
            REFERENCE[f"procrustes_{score}"], rel=1e-12
        )
    assert sim.cknna(x, y, k=10) == pytest.approx(REFERENCE["cknna_k10"], abs=1e-12)
    assert sim.mutual_knn(x, y, k=10) == pytest.approx(REFERENCE["mutual_knn_k10"], abs=1e-8)


def test_rsa_is_the_rank_correlation_of_the_dissimilarities() -> None:
    from scipy.spatial.distance import pdist
    from scipy.stats import pearsonr, spearmanr

    x, y = fixture()
    assert sim.rsa(x, y) == pytest.approx(spearmanr(pdist(x, "cosine"), pdist(y, "cosine"))[0])
    assert sim.rsa(x, y, "euclidean", "pearson") == pytest.approx(pearsonr(pdist(x), pdist(y))[0])
    tied = np.repeat(np.eye(4), 3, axis=0)  # many equal distances: average ranks, as scipy
    assert sim.rsa(tied, tied + 0.01 * np.arange(12)[:, None]) == pytest.approx(
        spearmanr(pdist(tied, "cosine"), pdist(tied + 0.01 * np.arange(12)[:, None], "cosine"))[0]
    )


def test_mutual_knn_equals_aligns_mknn() -> None:
    from align.probes.alignment import mutual_knn

    x, y = fixture()
    z = y[:, :24] + 0.5 * x  # align's mknn takes sides of one width
    assert sim.mutual_knn(x, z, k=10) == pytest.approx(mutual_knn(x, z, k=10), abs=1e-12)


def _transforms(d: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    a = rng.standard_normal((d, d)) + 3 * np.eye(d)  # invertible, far from orthogonal
    return q, a


MEASURES = {
    "svcca": lambda x, y: sim.svcca(x, y, dims=10),
    "cca": lambda x, y: float(sim.cca_correlations(x, y).mean()),
    "pwcca": sim.pwcca,
    "procrustes_angular": sim.procrustes_distance,
    "procrustes_euclidean": lambda x, y: sim.procrustes_distance(x, y, "euclidean"),
    "cknna": lambda x, y: sim.cknna(x, y, k=10),
    "mutual_knn": lambda x, y: sim.mutual_knn(x, y, k=10),
    "rsa": sim.rsa,
}
# (orthogonal map, isotropic scaling, translation, invertible linear map) each is invariant to
INVARIANT = {
    "svcca": (True, True, True, False),
    "cca": (True, True, True, True),
    "pwcca": (True, True, True, True),  # y is the wider, unweighted side: x's weigh (below)
    "procrustes_angular": (True, True, True, False),
    "procrustes_euclidean": (True, False, True, False),
    "cknna": (True, True, False, False),
    "mutual_knn": (True, True, False, False),
    "rsa": (True, True, False, False),
}


@pytest.mark.parametrize("name", sorted(MEASURES))
def test_each_measure_is_invariant_to_what_it_says_and_not_to_the_rest(name) -> None:
    x, y = fixture()
    q, a = _transforms(y.shape[1])
    measure, expected = MEASURES[name], INVARIANT[name]
    before = measure(x, y)
    after = [
        measure(x, y @ q),
        measure(x, 7.5 * y),
        measure(x, y + 40.0),
        measure(x, y @ a),
    ]
    for kind, value, invariant in zip(("orthogonal", "scale", "shift", "linear"), after,
                                      expected, strict=True):  # fmt: skip
        if invariant:
            assert value == pytest.approx(before, rel=1e-6, abs=1e-9), (name, kind)
        else:
            assert abs(value - before) > 1e-4, (name, kind, value, before)


def test_pwcca_weighs_by_the_narrower_sides_activity_means_included() -> None:
    x, y = fixture()
    _, a = _transforms(x.shape[1])
    assert abs(sim.pwcca(x + 40.0, y) - sim.pwcca(x, y)) > 1e-4  # x's means enter its weights
    assert abs(sim.pwcca(x @ a, y) - sim.pwcca(x, y)) > 1e-4  # and its directions
    q, _ = _transforms(x.shape[1])
    assert abs(sim.pwcca(x @ q, y) - sim.pwcca(x, y)) > 1e-4  # its neuron basis matters
    assert sim.pwcca(3.0 * x, y) == pytest.approx(sim.pwcca(x, y), rel=1e-9)
    assert sim.pwcca(y, x) == pytest.approx(sim.pwcca(x, y))  # the narrower side, either order


def test_identical_sides_are_most_similar() -> None:
    x, _ = fixture()
    assert sim.svcca(x, x) == pytest.approx(1.0)
    assert sim.pwcca(x, x) == pytest.approx(1.0)
    assert sim.procrustes_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    assert sim.cknna(x, x, k=10) == pytest.approx(1.0, abs=1e-3)  # the reference's + 1e-6
    assert sim.mutual_knn(x, x, k=10) == 1.0 and sim.rsa(x, x) == pytest.approx(1.0)


def test_bad_input_is_refused_in_one_line() -> None:
    from align.errors import AlignError

    x, y = fixture()
    with pytest.raises(AlignError, match="one n"):
        sim.svcca(x, y[:-1])
    with pytest.raises(AlignError, match="finite"):
        sim.rsa(x, np.where(y > 5, np.nan, y))
    with pytest.raises(AlignError, match="no variance"):
        sim.cca_correlations(x, np.ones_like(y))
    with pytest.raises(AlignError, match="k=400"):
        sim.cknna(x, y, k=400)


def test_measures_run_on_torch_tensors() -> None:
    import torch

    x, y = fixture()
    tx, ty = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    assert sim.procrustes_distance(tx, ty) == pytest.approx(REFERENCE["procrustes_angular"],
                                                            rel=1e-5)  # fmt: skip
    assert sim.cknna(tx, ty, k=10) == pytest.approx(REFERENCE["cknna_k10"], abs=1e-5)


def test_layer_by_layer_matrices_hold_each_measure_of_each_pair_of_layers() -> None:
    """Each cell of a measure's layer x layer matrix is the measure of those two layers (the
    registry's computation on them); a model against itself has each measure's identity on the
    diagonal; only aggregates the registry computes for ``cka`` are offered."""
    from align.metrics import ProbeParams, get
    from align.probes.matrix import matrix_measures, measure_matrix_records

    rng = np.random.default_rng(5)
    layers = {i: rng.standard_normal((120, 16)) @ rng.standard_normal((16, 16)) for i in range(3)}
    names = ["svcca", "cknna", "rsa", "procrustes_angular"]
    assert set(names) <= set(matrix_measures()) and "cka_linear" in matrix_measures()
    assert "mknn@k" not in matrix_measures()  # per-sentence: not a matrix cell
    params = ProbeParams(knn_k=5)
    records = measure_matrix_records(names, [0, 1, 2], [0, 2], layers.get, layers.get, params)
    assert len(records) == len(names) * 3 * 2
    for r in records:
        direct = get(r["metric"]).compute.fn(layers[r["layer"]], layers[r["layer_b"]], params)
        assert r["value"] == pytest.approx(direct, abs=1e-12)
        if r["layer"] == r["layer_b"]:
            identity = 0.0 if r["metric"] == "procrustes_angular" else 1.0
            slack = 1e-3 if r["metric"] == "cknna" else 1e-6  # the reference's + 1e-6
            assert r["value"] == pytest.approx(identity, abs=slack), r
