"""What one model does on one language at one layer, kept per sentence where a metric allows.

The retrieval outcomes come from the task's one scoring function
(:meth:`~align.retrieval.tasks.base.RetrievalTask.layer_outcomes`); the alignment outcomes from
the measures the metric registry lists for ``compare`` (:func:`align.metrics.measures`). A metric
that is a mean over sentences keeps its per-sentence values so that two models' changes can be
bootstrapped and tested pairwise; an aggregate keeps one value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from align import metrics
from align.metrics import ProbeParams
from align.retrieval.bucc import F1Counts
from align.retrieval.tasks import RetrievalTask, TaskParams


@dataclass
class LayerOutcomes:
    """One model on one language at one layer: per-sentence values and aggregates by metric."""

    per_sentence: dict[str, np.ndarray] = field(default_factory=dict)
    aggregate: dict[str, float] = field(default_factory=dict)
    f1: F1Counts | None = None  # BUCC test, at the dev threshold
    threshold: float | None = None
    f1_after: dict[str, F1Counts] = field(default_factory=dict)  # BUCC after a map: its counts

    def put(self, metric: str, values: np.ndarray) -> None:
        self.per_sentence[metric] = np.asarray(values, np.float64)


def measure(
    metric: metrics.Metric,
    params: ProbeParams,
    src: np.ndarray | None = None,
    tgt: np.ndarray | None = None,
    by_lang: dict[str, np.ndarray] | None = None,
):
    """Run one registered measure at one layer on the inputs its scope takes."""
    assert metric.compute is not None
    scope, fn = metric.compute.scope, metric.compute.fn
    if scope == "pair":
        return fn(src, tgt, params)
    if scope == "single":
        return fn(src, params)
    return fn(by_lang, params)


def alignment_values(
    src: np.ndarray,
    tgt: np.ndarray | None,
    params: ProbeParams,
    command: str = "compare",
    scopes: tuple[str, ...] = ("pair", "single"),
) -> dict[str, object]:
    """Every measure of ``scopes`` that ``command`` reports, as computed: per-sentence arrays
    or numbers (``single`` measures run on ``src``)."""
    return {
        metric.record_name(params): measure(metric, params, src, tgt)
        for metric in metrics.measures(command, params)
        if metric.compute is not None and metric.compute.scope in scopes
    }


def alignment_outcomes(
    src: np.ndarray, tgt: np.ndarray, params: ProbeParams, command: str = "compare"
) -> LayerOutcomes:
    """Every pair- and single-language measure ``command`` reports, on translation pairs."""
    out = LayerOutcomes()
    for name, value in alignment_values(src, tgt, params, command).items():
        if metrics.get(name).per_sentence:
            out.put(name, value)  # type: ignore[arg-type]
        else:
            out.aggregate[name] = float(value)  # type: ignore[arg-type]
    return out


def languages_outcomes(
    by_lang: dict[str, np.ndarray], params: ProbeParams, command: str = "compare"
) -> dict[str, float]:
    """The measures over every language at once (language ID), reported under ``all``."""
    return {
        metric.record_name(params): float(measure(metric, params, by_lang=by_lang))
        for metric in metrics.measures(command, params)
        if metric.compute is not None and metric.compute.scope == "languages"
    }


def layer_outcomes(
    task: RetrievalTask,
    emb: dict[str, np.ndarray],
    data: object,
    params: TaskParams,
    probe: ProbeParams | None,
) -> LayerOutcomes:
    """Retrieval outcomes of one layer, and (``probe`` given) the alignment outcomes."""
    found = task.layer_outcomes(emb, data, params)
    out = LayerOutcomes(f1=found.f1, threshold=found.threshold, f1_after=found.f1_after)
    for metric, values in found.per_sentence.items():
        out.put(metric, values)
    if probe is not None:
        src, tgt = task.parallel(data).pairs(emb)
        aligned = alignment_outcomes(src, tgt, probe)
        out.per_sentence |= aligned.per_sentence
        out.aggregate |= aligned.aggregate
    return out
