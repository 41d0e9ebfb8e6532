"""The metric registry: every score name align writes has one entry here.

An entry says what a number is (label, unit bounds), which way is better, which family it
belongs to (retrieval, alignment, diagnostic, attribution), whether it is a mean over sentences
(so that paired statistics apply to a difference), and, for the alignment measures, how it is
computed (:class:`Computation`) and which commands report it. ``align probe`` and ``align
compare`` (and the attribution) take their list of measures from here: registering one entry
with a computation adds a measure to both.

Names of derived records are structured (:class:`MetricName`): a base metric plus a kind —

- ``delta_<m>``, ``graft_delta_<m>``, ``restore_delta_<m>``: a change in ``m`` (bounds +-range);
- ``spearman_<m1>_vs_<m2>``: a rank correlation in [-1, 1];
- ``mknn@10``: the ``mknn@k`` entry with its parameter filled in.

They are built and parsed here only (:func:`delta`, :func:`graft`, :func:`restore`,
:func:`spearman`, :func:`parse`); results files keep the flat names users' scripts read.
"""

from align.metrics import builtin as _builtin  # noqa: F401  (registers the built-in entries)
from align.metrics.registry import (
    Computation,
    Family,
    Kind,
    Metric,
    MetricName,
    Outcome,
    ProbeParams,
    Scope,
    check,
    delta,
    get,
    graft,
    measures,
    names,
    parse,
    register,
    registered,
    restore,
    spearman,
    unregister,
)

__all__ = [
    "Computation",
    "Family",
    "Kind",
    "Metric",
    "MetricName",
    "Outcome",
    "ProbeParams",
    "Scope",
    "check",
    "delta",
    "get",
    "graft",
    "measures",
    "names",
    "parse",
    "register",
    "registered",
    "restore",
    "spearman",
    "unregister",
]
