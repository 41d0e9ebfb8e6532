"""The metric registry's built-in entries: retrieval scores, alignment measures (each with its
computation and the commands that report it), attribution. Registered when :mod:`align.metrics`
is imported."""

from __future__ import annotations

from typing import Any

from align.metrics.registry import Computation, Family, Metric, Outcome, register


def _add(
    name: str,
    label: str,
    family: Family,
    higher: bool | None,
    bounds: tuple[float | None, float | None] = (None, None),
    outcome: Outcome = "aggregate",
    description: str = "",
    **extra: Any,
) -> None:
    register(Metric(name, label, family, higher, bounds, outcome, description, **extra))


UNIT, COS = (0.0, 1.0), (-1.0, 1.0)
pair = Computation


def _retrieval() -> None:
    unit = UNIT
    # Retrieval (Tatoeba)
    _add("acc_xx2en", "Tatoeba top-1 accuracy (xx→en)", "retrieval", True, unit, "binary")
    _add("acc_en2xx", "Tatoeba top-1 accuracy (en→xx)", "retrieval", True, unit, "binary")
    _add("xsim_error", "xSIM error rate (xx→en, ratio margin)", "retrieval", False, unit, "binary")
    # Retrieval between two languages of a multi-way set (records carry lang and lang_b)
    _add("acc_a2b", "top-1 accuracy (lang → lang_b)", "retrieval", True, unit, "binary")
    _add(
        "xsim_error_a2b",
        "xSIM error rate (lang → lang_b, ratio margin)",
        "retrieval",
        False,
        unit,
        "binary",
    )
    # Retrieval (BUCC): test scores at the dev-chosen threshold
    _add("f1", "BUCC F1 (test, dev-chosen threshold)", "retrieval", True, unit)
    _add("precision", "BUCC precision (test)", "retrieval", True, unit)
    _add("recall", "BUCC recall (test)", "retrieval", True, unit)
    _add("f1_dev", "BUCC F1 (dev)", "retrieval", True, unit)
    _add(
        "f1_oracle",
        "BUCC F1 (test, oracle threshold; an upper bound)",
        "diagnostic",
        True,
        unit,
        description="threshold tuned on test itself: never the result",
    )
    _add("threshold", "BUCC margin threshold (chosen on dev)", "diagnostic", None)
    _add(
        "f1_procrustes",
        "BUCC F1 after an orthogonal map fit on dev's gold pairs (test, dev-chosen threshold)",
        "alignment",
        True,
        unit,
        description="each side centred; the map xx -> en fit on dev's gold pairs (cross-fitted "
        "on dev, where the threshold is chosen) and applied to test: what a rotation recovers",
    )
    _add(
        "knn_recall",
        "recall@k of the approximate index vs exact search",
        "diagnostic",
        True,
        unit,
        description="on a seeded sample of queries (--recall-sample); only with --index ivf/hnsw",
    )


def _cka() -> None:
    from align.probes import alignment as al
    from align.probes import cka

    unit = UNIT
    # Alignment: CKA (align cka per layer; compare's changes)
    _add(
        "cka_linear",
        "linear CKA (xx vs en)",
        "alignment",
        True,
        unit,
        compute=pair(lambda x, y, p: cka.linear(x, y)),
        used_by=("cka", "compare"),
    )
    _add(
        "cka_linear_debiased",
        "debiased linear CKA (xx vs en)",
        "alignment",
        True,
        unit,
        compute=pair(lambda x, y, p: cka.linear(x, y, debiased=True)),
        used_by=("cka", "compare"),
    )
    _add(
        "cka_rbf",
        "RBF CKA (xx vs en)",
        "alignment",
        True,
        unit,
        compute=pair(al.rbf_cka_subsampled),
        used_by=("cka",),
    )


def _pwcca(x, y, p) -> float:
    """PWCCA where it is defined (more sentences than dimensions on each side, as its reference
    asserts); NaN otherwise (written as null, with the reason)."""
    from align.probes import similarity as sim

    return sim.pwcca(x, y) if len(x) > max(x.shape[1], y.shape[1]) else float("nan")


def _similarities() -> None:
    """The measures papers report beside CKA (align.probes.similarity), each equal to its
    reference implementation; per layer, xx vs English, in ``align cka``."""
    import math

    from align.probes import similarity as sim

    unit = UNIT
    measures = (
        ("svcca", "SVCCA (xx vs en)", True, unit, lambda x, y, p: sim.svcca(x, y)),
        ("pwcca", "PWCCA (xx vs en; needs more sentences than dimensions)", True, unit, _pwcca),
        (
            "procrustes_angular",
            "angular Procrustes distance (xx vs en)",
            False,
            (0.0, math.pi / 2),
            lambda x, y, p: sim.procrustes_distance(x, y, "angular"),
        ),
        (
            "procrustes_distance",
            "Procrustes distance (xx vs en)",
            False,
            (0.0, None),
            lambda x, y, p: sim.procrustes_distance(x, y, "euclidean"),
        ),
        (
            "cknna",
            "CKNNA (xx vs en, k = --knn-k)",
            True,
            COS,
            lambda x, y, p: sim.cknna(x, y, p.knn_k),
        ),
        (
            "rsa",
            "RSA: Spearman ρ of cosine RDMs (xx vs en)",
            True,
            COS,
            lambda x, y, p: sim.rsa(x, y),
        ),
    )
    for name, label, higher, bounds, fn in measures:
        _add(name, label, "alignment", higher, bounds, compute=pair(fn), used_by=("cka",))


def _cosines() -> None:
    from align.probes import alignment as al

    cos = COS
    # Alignment: cosine of translation pairs against random pairs
    _add(
        "pair_cos",
        "cosine of translation pairs",
        "alignment",
        True,
        cos,
        "continuous",
        compute=pair(lambda x, y, p: al.pair_cosines(x, y)),
    )
    _add(
        "random_cos",
        "cosine of random cross-language pairs",
        "diagnostic",
        None,
        cos,
        "continuous",
        compute=pair(lambda x, y, p: al.random_cosines(x, y, p.seed)),
    )
    _add(
        "cos_gap",
        "pair cos − random cos",
        "alignment",
        True,
        (-2.0, 2.0),
        "continuous",
        compute=pair(lambda x, y, p: al.cosine_gaps(x, y, p.seed)),
    )


def _neighbourhoods() -> None:
    from align.probes import alignment as al

    unit = UNIT
    # Alignment: neighbourhoods, centring
    _add(
        "mknn@k",
        "mutual kNN overlap (k=k)",
        "alignment",
        True,
        unit,
        "continuous",
        compute=pair(lambda x, y, p: al.mutual_knn_overlaps(x, y, p.knn_k)),
        param="knn_k",
    )
    _add(
        "acc_centered_xx2en",
        "top-1 accuracy after centring (xx→en)",
        "alignment",
        True,
        unit,
        "binary",
        compute=pair(lambda x, y, p: al.centered_correct(x, y)),
    )
    _add(
        "acc_centered_en2xx",
        "top-1 accuracy after centring (en→xx)",
        "alignment",
        True,
        unit,
        "binary",
        compute=pair(lambda x, y, p: al.centered_correct(y, x)),
        attributed=False,  # the attributed retrieval metric is xx->en
    )


def _isotropy_and_language() -> None:
    from align.probes import alignment as al

    unit, cos = UNIT, COS
    # Alignment: isotropy and language identity (lower = more language-neutral / isotropic)
    _add(
        "iso_avg_cos",
        "mean cosine of random same-language pairs",
        "alignment",
        False,
        cos,
        "continuous",
        compute=Computation(lambda x, p: al.self_cosines(x, p.seed), "single"),
    )
    _add(
        "iso_top_pc_share",
        "variance share of the top principal direction",
        "alignment",
        False,
        unit,
        compute=Computation(lambda x, p: al.top_pc_share(x), "single"),
    )
    _add(
        "iso_n_outlier_dims",
        "outlier dimensions",
        "diagnostic",
        False,
        (0.0, None),
        compute=Computation(lambda x, p: len(al.outlier_dims(x, p.outlier_factor)), "single"),
        used_by=("probe",),
    )
    _add(
        "iso_max_dim_ratio",
        "largest dimension magnitude / median",
        "diagnostic",
        False,
        (0.0, None),
        compute=Computation(lambda x, p: al.max_dim_ratio(x), "single"),
        used_by=("probe",),
    )
    _add(
        "langid_acc",
        "language-ID probe accuracy",
        "alignment",
        False,
        unit,
        compute=Computation(
            lambda by_lang, p: al.langid_accuracy(by_lang, p.langid_test_fraction, p.seed),
            "languages",
        ),
    )


_LAST: list = []  # the last (x, y, params) and its transforms: six metrics share one fit


def _transformed(x, y, p):
    """Every transform's outcomes of one pair of layers, computed once for the six metrics
    that read them (the arrays are held, so their ids cannot be reused while cached)."""
    from align.probes import transforms as tf

    key = (id(x), id(y), p.map_folds, p.seed, p.whiten_shrinkage, p.device)
    if not _LAST or _LAST[0] != key:
        found = tf.transformed_correct(x, y, p.map_folds, p.seed, p.whiten_shrinkage, p.device)
        _LAST[:] = [key, (x, y), found]
    return _LAST[2].outcomes


def _ridge(x, y, p, direction: str) -> float:
    """The median over folds of the ridge penalty the linear map chose (x the mean eigenvalue
    of the training Gram), from the same fit as the outcomes."""
    import statistics

    _transformed(x, y, p)
    return float(statistics.median(_LAST[2].fits[f"linear_{direction}"].ridge))


def _reading(name: str):
    return pair(lambda x, y, p: _transformed(x, y, p)[name])


def _transforms() -> None:
    """Retrieval after a transform (align.probes.transforms): what survives whitening and a
    cross-fitted map; centring is registered with the neighbourhood measures."""
    from align.probes.transforms import WORDS

    for direction, flip, arrow in (("xx2en", False, "xx→en"), ("en2xx", True, "en→xx")):
        for kind in ("whitened", "procrustes", "linear"):
            compute = _reading(f"{kind}_{direction}")
            _add(
                f"acc_{kind}_{direction}",
                f"top-1 accuracy after {WORDS[kind]} ({arrow})",
                "alignment",
                True,
                UNIT,
                "binary",
                compute=compute,
                attributed=not flip,  # the attributed retrieval metric is xx->en
                group="geometry",
            )
        _add(
            f"linear_ridge_{direction}",
            f"ridge penalty of the cross-fitted linear map ({arrow}; median over folds)",
            "diagnostic",
            None,
            (0.0, None),
            description="chosen by generalized cross-validation inside each fold's training "
            "pairs, as a multiple of the training Gram's mean eigenvalue",
            compute=pair(lambda x, y, p, d=direction: _ridge(x, y, p, d)),
            group="geometry",
        )


def _attribution() -> None:
    # Attribution (align compare)
    _add(
        "english_centricity",
        "English-centricity of Δ accuracy (pairs with English − pairs without)",
        "attribution",
        None,
        (-2.0, 2.0),
        description="mean Δ acc_a2b of the ordered pairs with English minus that of the pairs "
        "without it: > 0 the change favours English's pairs, < 0 the other pairs gained more",
    )
    _add(
        "mean_pair_change",
        "mean Δ accuracy of a language's pairs (both directions)",
        "attribution",
        None,
        (-1.0, 1.0),
        description="mean Δ acc_a2b over the ordered pairs that hold the language",
    )
    _add(
        "centred_share_xx2en",
        "share of Δ accuracy (xx→en) left after centring",
        "attribution",
        None,
        description="Δ centred accuracy / Δ accuracy: ~1 alignment itself, ~0 a removed offset",
    )
    from align.probes.transforms import WORDS

    for kind in ("whitened", "procrustes", "linear"):
        _add(
            f"{kind}_share_xx2en",
            f"share of Δ accuracy (xx→en) left after {WORDS[kind]}",
            "attribution",
            None,
            description=f"Δ accuracy after {WORDS[kind]} / Δ accuracy: ~0 the transform "
            "undoes the change, ~1 it survives",
        )


_retrieval()
_cka()
_similarities()
_cosines()
_neighbourhoods()
_isotropy_and_language()
_transforms()
_attribution()
