"""The metric registry itself: entries, structured names, lookups (see :mod:`align.metrics`)."""

from __future__ import annotations

import contextlib
import difflib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

from align.errors import AlignError

Family = Literal["retrieval", "alignment", "diagnostic", "attribution"]
Outcome = Literal["binary", "continuous", "aggregate"]
Kind = Literal["score", "delta", "graft", "restore", "spearman"]
Scope = Literal["pair", "single", "languages"]

_PREFIX: dict[Kind, str] = {"delta": "delta_", "graft": "graft_delta_", "restore": "restore_delta_"}


@dataclass(frozen=True)
class MetricName:
    """A record's metric: a base metric, the kind of record, and (Spearman) the second metric."""

    base: str
    kind: Kind = "score"
    other: str | None = None

    def __str__(self) -> str:
        if self.kind == "score":
            return self.base
        if self.kind == "spearman":
            return f"spearman_{self.base}_vs_{self.other}"
        return _PREFIX[self.kind] + self.base


_DERIVED = re.compile(r"^(graft_delta|restore_delta|delta)_(.+)$")
_SPEARMAN = re.compile(r"^spearman_(.+)_vs_(.+)$")
_PARAM = re.compile(r"^(\w+)@(\d+)$")
_KINDS: dict[str, Kind] = {"delta": "delta", "graft_delta": "graft", "restore_delta": "restore"}


def parse(name: str | MetricName) -> MetricName:
    """The structure of a record's metric name (``delta_acc_xx2en`` -> delta of acc_xx2en)."""
    if isinstance(name, MetricName):
        return name
    if name in _REGISTRY:
        return MetricName(name)
    if match := _DERIVED.match(name):
        return MetricName(match.group(2), _KINDS[match.group(1)])
    if match := _SPEARMAN.match(name):
        return MetricName(match.group(1), "spearman", match.group(2))
    return MetricName(name)


def delta(metric: str) -> str:
    return str(MetricName(metric, "delta"))


def graft(metric: str) -> str:
    return str(MetricName(metric, "graft"))


def restore(metric: str) -> str:
    return str(MetricName(metric, "restore"))


def spearman(retrieval: str, alignment: str) -> str:
    return str(MetricName(retrieval, "spearman", alignment))


@dataclass(frozen=True)
class ProbeParams:
    """What the alignment computations may need besides the embeddings."""

    seed: int = 0
    knn_k: int = 10
    outlier_factor: float = 5.0
    langid_test_fraction: float = 0.5
    sigma_frac: float = 0.5
    rbf_max_n: int = 2000
    map_folds: int = 5  # cross-fitting folds of the maps xx -> en (and back)
    whiten_shrinkage: float = 0.05  # covariance shrinkage toward tr(S)/d * I before whitening
    device: str = "cpu"  # where the maps and whitening run (torch)
    geometry: bool = True  # retrieval after the transforms (the geometry group); off: skipped


@dataclass(frozen=True)
class Computation:
    """How an alignment measure is computed at one layer.

    ``scope``: ``pair`` -> ``fn(src [n, d], tgt [n, d], params)`` on translation pairs (tgt is
    English); ``single`` -> ``fn(x [n, d], params)`` on one language's sentences; ``languages``
    -> ``fn({lang: x}, params)`` over every language at once (reported under ``all``). The
    function returns one value per sentence (``outcome`` binary/continuous: the mean is the
    score, ``compare`` pairs the values) or one number (an aggregate).
    """

    fn: Callable[..., Any]
    scope: Scope = "pair"


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
    compute: Computation | None = None
    used_by: tuple[str, ...] = ("probe", "compare")  # the commands that report a computed one
    attributed: bool = True  # compare correlates its change with the change in retrieval
    param: str | None = None  # a ProbeParams field filling in the name (mknn@k -> mknn@10)
    group: str | None = None  # "geometry": computed only while ProbeParams.geometry is on

    @property
    def per_sentence(self) -> bool:
        """A mean over sentences: a paired bootstrap over sentences applies to a difference."""
        return self.outcome != "aggregate"

    @property
    def span(self) -> float | None:
        low, high = self.bounds
        return None if low is None or high is None else high - low

    def record_name(self, params: ProbeParams) -> str:
        """The name its records carry under ``params`` (``mknn@k`` -> ``mknn@10``)."""
        if self.param is None:
            return self.name
        return self.name.replace("@k", f"@{getattr(params, self.param)}")


_REGISTRY: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    """Add ``metric``; a second entry under one name is refused."""
    if metric.name in _REGISTRY:
        raise AlignError(f"metric {metric.name!r} is already registered")
    _REGISTRY[metric.name] = metric
    return metric


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


@contextlib.contextmanager
def registered(metric: Metric) -> Iterator[Metric]:
    """``metric`` registered for the duration of a block (tests, experiments)."""
    register(metric)
    try:
        yield metric
    finally:
        unregister(metric.name)


def names() -> list[str]:
    return sorted(_REGISTRY)


def measures(command: str, params: ProbeParams | None = None) -> list[Metric]:
    """The computed measures ``command`` reports, in registration order (under ``params``: the
    geometry group only while ``params.geometry`` is on)."""
    return [
        m
        for m in _REGISTRY.values()
        if m.compute is not None
        and command in m.used_by
        and (params is None or params.geometry or m.group != "geometry")
    ]


def _unknown(name: str) -> AlignError:
    close = difflib.get_close_matches(name, names(), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return AlignError(f"unknown metric {name!r}{hint} (known: {', '.join(names())})")


def _base(name: str) -> Metric:
    if name in _REGISTRY:
        return _REGISTRY[name]
    if match := _PARAM.match(name):
        base = _REGISTRY.get(f"{match.group(1)}@k")
        if base is not None:
            k = match.group(2)
            return replace(base, name=name, label=base.label.replace("k=k", f"k={k}"))
    raise _unknown(name)


def get(name: str | MetricName) -> Metric:
    """The entry for ``name`` (derived names resolve through their base); unknown: an error."""
    parsed = parse(name)
    base = _base(parsed.base)
    if parsed.kind == "score":
        return base
    if parsed.kind == "spearman":
        other = _base(str(parsed.other))
        return Metric(
            str(parsed),
            f"Spearman ρ(Δ {base.name}, Δ {other.name})",
            "attribution",
            None,
            (-1.0, 1.0),
            description=f"rank correlation of the change in {base.name} and in {other.name}",
        )
    span = base.span
    what = {"delta": "Δ", "graft": "graft Δ", "restore": "restore Δ"}[parsed.kind]
    return replace(
        base,
        name=str(parsed),
        label=f"{what} {base.label}",
        family="attribution" if parsed.kind != "delta" else base.family,
        bounds=(-span, span) if span is not None else (None, None),
        compute=None,
    )


def check(name: str | MetricName) -> str:
    """``name`` if it resolves to a registered metric; else an error that suggests close names."""
    get(name)
    return str(name)
