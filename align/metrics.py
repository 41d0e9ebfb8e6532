"""The metric registry: every score name align writes has one entry here.

An entry says what a number is (label, unit bounds), which way is better, which family it
belongs to (retrieval, alignment, diagnostic), and whether it is a mean over sentences, so that
paired statistics (bootstrap over sentences, McNemar for 0/1 outcomes) apply to a difference.
Tables, plots, ``align compare`` and the report read labels and bounds from here.

Names of derived records resolve through their base metric:

- ``mknn@10``: the ``mknn@k`` entry with k filled in;
- ``delta_<m>``, ``graft_delta_<m>``, ``restore_delta_<m>``: a change in ``m`` (bounds +-range);
- ``spearman_<m1>_vs_<m2>``: a rank correlation in [-1, 1].
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, replace
from typing import Literal

from align.errors import AlignError

Family = Literal["retrieval", "alignment", "diagnostic", "attribution"]
Outcome = Literal["binary", "continuous", "aggregate"]


@dataclass(frozen=True)
class Metric:
    """One score: its name in results files, how to label it, and how to compare it."""

    name: str
    label: str
    family: Family
    higher_is_better: bool | None  # None: neither (a diagnostic such as a threshold)
    bounds: tuple[float | None, float | None] = (None, None)
    outcome: Outcome = "aggregate"  # binary/continuous: a mean over per-sentence values
    description: str = ""

    @property
    def per_sentence(self) -> bool:
        """A mean over sentences: a paired bootstrap over sentences applies to a difference."""
        return self.outcome != "aggregate"

    @property
    def span(self) -> float | None:
        low, high = self.bounds
        return None if low is None or high is None else high - low


_REGISTRY: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add ``metric``; a second entry under one name is refused."""
    if metric.name in _REGISTRY:
        raise AlignError(f"metric {metric.name!r} is already registered")
    _REGISTRY[metric.name] = metric
    return metric


def names() -> list[str]:
    return sorted(_REGISTRY)


def _unknown(name: str) -> AlignError:
    close = difflib.get_close_matches(name, names(), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return AlignError(f"unknown metric {name!r}{hint} (known: {', '.join(names())})")


_DELTA = re.compile(r"^(graft_delta|restore_delta|delta)_(.+)$")
_SPEARMAN = re.compile(r"^spearman_(.+)_vs_(.+)$")
_PARAM = re.compile(r"^(\w+)@(\d+)$")


def get(name: str) -> Metric:
    """The entry for ``name`` (derived names resolve through their base); unknown: an error."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if match := _PARAM.match(name):
        base = _REGISTRY.get(f"{match.group(1)}@k")
        if base is not None:
            k = match.group(2)
            return replace(base, name=name, label=base.label.replace("k=k", f"k={k}"))
    if match := _DELTA.match(name):
        kind, base = match.group(1), get(match.group(2))
        span = base.span
        what = {"delta": "Δ", "graft_delta": "graft Δ", "restore_delta": "restore Δ"}[kind]
        return replace(
            base,
            name=name,
            label=f"{what} {base.label}",
            family="attribution" if kind != "delta" else base.family,
            bounds=(-span, span) if span is not None else (None, None),
        )
    if match := _SPEARMAN.match(name):
        a, b = get(match.group(1)), get(match.group(2))
        return Metric(
            name,
            f"Spearman ρ(Δ {a.name}, Δ {b.name})",
            "attribution",
            None,
            (-1.0, 1.0),
            description=f"rank correlation of the change in {a.name} and in {b.name}",
        )
    raise _unknown(name)


def check(name: str) -> str:
    """``name`` if it resolves to a registered metric; else an error that suggests close names."""
    get(name)
    return name


def _add(
    name: str,
    label: str,
    family: Family,
    higher: bool | None,
    bounds: tuple[float | None, float | None] = (None, None),
    outcome: Outcome = "aggregate",
    description: str = "",
) -> None:
    register(Metric(name, label, family, higher, bounds, outcome, description))


UNIT = (0.0, 1.0)
COS = (-1.0, 1.0)

# Retrieval (Tatoeba)
_add("acc_xx2en", "Tatoeba top-1 accuracy (xx→en)", "retrieval", True, UNIT, "binary")
_add("acc_en2xx", "Tatoeba top-1 accuracy (en→xx)", "retrieval", True, UNIT, "binary")
_add("xsim_error", "xSIM error rate (xx→en, ratio margin)", "retrieval", False, UNIT, "binary")
# Retrieval (BUCC): test scores at the dev-chosen threshold
_add("f1", "BUCC F1 (test, dev-chosen threshold)", "retrieval", True, UNIT)
_add("precision", "BUCC precision (test)", "retrieval", True, UNIT)
_add("recall", "BUCC recall (test)", "retrieval", True, UNIT)
_add("f1_dev", "BUCC F1 (dev)", "retrieval", True, UNIT)
_add(
    "f1_oracle",
    "BUCC F1 (test, oracle threshold; an upper bound)",
    "diagnostic",
    True,
    UNIT,
    description="threshold tuned on test itself: never the result",
)
_add("threshold", "BUCC margin threshold (chosen on dev)", "diagnostic", None)
# Alignment: CKA
_add("cka_linear", "linear CKA (xx vs en)", "alignment", True, UNIT)
_add("cka_linear_debiased", "debiased linear CKA (xx vs en)", "alignment", True, UNIT)
_add("cka_rbf", "RBF CKA (xx vs en)", "alignment", True, UNIT)
# Alignment: cosine, neighbourhoods, centring
_add("pair_cos", "cosine of translation pairs", "alignment", True, COS, "continuous")
_add("random_cos", "cosine of random cross-language pairs", "diagnostic", None, COS, "continuous")
_add("cos_gap", "pair cos − random cos", "alignment", True, (-2.0, 2.0), "continuous")
_add("mknn@k", "mutual kNN overlap (k=k)", "alignment", True, UNIT, "continuous")
_add(
    "acc_centered_xx2en", "top-1 accuracy after centring (xx→en)", "alignment", True, UNIT, "binary"
)
_add(
    "acc_centered_en2xx", "top-1 accuracy after centring (en→xx)", "alignment", True, UNIT, "binary"
)
# Alignment: isotropy and language identity (lower = more language-neutral / isotropic)
_add(
    "iso_avg_cos",
    "mean cosine of random same-language pairs",
    "alignment",
    False,
    COS,
    "continuous",
)
_add("iso_top_pc_share", "variance share of the top principal direction", "alignment", False, UNIT)
_add("iso_n_outlier_dims", "outlier dimensions", "diagnostic", False, (0.0, None))
_add("iso_max_dim_ratio", "largest dimension magnitude / median", "diagnostic", False, (0.0, None))
_add("langid_acc", "language-ID probe accuracy", "alignment", False, UNIT)
# Attribution (align compare)
_add(
    "centred_share_xx2en",
    "share of Δ accuracy (xx→en) left after centring",
    "attribution",
    None,
    description="Δ centred accuracy / Δ accuracy: ~1 alignment itself, ~0 a removed offset",
)
