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


def _attribution() -> None:
    # Attribution (align compare)
    _add(
        "centred_share_xx2en",
        "share of Δ accuracy (xx→en) left after centring",
        "attribution",
        None,
        description="Δ centred accuracy / Δ accuracy: ~1 alignment itself, ~0 a removed offset",
    )


_retrieval()
_cka()
_cosines()
_neighbourhoods()
_isotropy_and_language()
_attribution()
