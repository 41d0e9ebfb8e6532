"""Changes between two models (tuned - base) at one language and layer, with statistics.

Paired 0/1 outcomes (retrieval accuracies, xSIM errors, centred accuracies) get an exact
conditional interval from their discordant sentences; the retrieval ones also get McNemar's
exact test on the same counts, so interval and test agree. Continuous per-sentence measures get
a paired bootstrap interval (BCa); BUCC F1 a paired bootstrap over source sentences with its
p-value (thresholds fixed from dev); aggregates (CKA, top-PC share, language ID) the difference
alone. p-values are adjusted over the family of layers x languages x metrics of one comparison.
Every interval records how it was built (``ci_method``).
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from align import metrics
from align.compare import stats
from align.compare.outcomes import LayerOutcomes
from align.retrieval.tasks import RetrievalTask


@dataclass(frozen=True)
class StatsConfig:
    n_boot: int = 1000
    confidence: float = 0.95
    correction: stats.Correction = "holm"
    seed: int = 0


def delta_record(
    model: str, layer: int, lang: str, metric: str, diff: stats.Difference
) -> dict[str, Any]:
    return {
        "model": model,
        "layer": int(layer),
        "lang": lang,
        "metric": metrics.check(metrics.delta(metric)),
        "value": diff.delta,
        "base": diff.base,
        "tuned": diff.tuned,
        "ci_low": diff.ci_low,
        "ci_high": diff.ci_high,
        "ci_method": diff.method,
        "p_value": diff.p_value,
        "p_adjusted": None,
    }


def layer_seed(cfg: StatsConfig, lang: str, layer: int) -> int:
    """One seed per (language, layer): every metric there is bootstrapped on the same resamples."""
    key = zlib.crc32(f"{lang}:{layer}".encode())
    return int(np.random.SeedSequence([cfg.seed, key]).generate_state(1)[0])


def _per_sentence(
    metric: str, a: np.ndarray, b: np.ndarray, task: RetrievalTask, cfg: StatsConfig, seed: int
) -> stats.Difference:
    entry = metrics.get(metric)
    if entry.outcome == "binary":
        diff = stats.paired_binary_difference(a, b, cfg.confidence)
        tested = entry.family == "retrieval" and task.statistics.get(metric) == "mcnemar"
        return diff if tested else replace(diff, p_value=None)
    return stats.bootstrap_mean_difference(a, b, cfg.n_boot, cfg.confidence, seed)


def layer_deltas(
    model: str,
    lang: str,
    layer: int,
    base: LayerOutcomes,
    tuned: LayerOutcomes,
    task: RetrievalTask,
    cfg: StatsConfig,
) -> list[dict[str, Any]]:
    """Every metric's change at (lang, layer), with its interval and (retrieval) its p-value."""
    seed = layer_seed(cfg, lang, layer)
    records = []
    for metric, a in base.per_sentence.items():
        diff = _per_sentence(metric, a, tuned.per_sentence[metric], task, cfg, seed)
        records.append(delta_record(model, layer, lang, metric, diff))
    for metric, a in base.aggregate.items():
        b = tuned.aggregate[metric]
        diff = stats.Difference(a, b, b - a, None, None)
        records.append(delta_record(model, layer, lang, metric, diff))
    if base.f1 is not None and tuned.f1 is not None:
        diff = stats.bootstrap_f1_difference(base.f1, tuned.f1, cfg.n_boot, cfg.confidence, seed)
        records.append(delta_record(model, layer, lang, "f1", diff))
    for metric, counts in base.f1_after.items():  # alignment measures: not in the tested family
        if metric in tuned.f1_after:
            diff = stats.bootstrap_f1_difference(
                counts, tuned.f1_after[metric], cfg.n_boot, cfg.confidence, seed
            )
            records.append(delta_record(model, layer, lang, metric, replace(diff, p_value=None)))
    return records


def adjust_family(records: list[dict[str, Any]], correction: stats.Correction) -> None:
    """Fill ``p_adjusted`` over the retrieval tests of one comparison (one model vs the base)."""
    tested = [r for r in records if r.get("p_value") is not None]
    for record, p in zip(
        tested, stats.adjust([r["p_value"] for r in tested], correction), strict=True
    ):
        record["p_adjusted"] = p


class Levels:
    """One model's own retrieval scores with intervals, per language and pooled (``all``).

    Accuracies (and xSIM errors): Wilson intervals; pooled over languages, every query counts
    once (only the counts are kept). BUCC F1: a percentile bootstrap over source sentences.
    """

    def __init__(self, model: str, cfg: StatsConfig) -> None:
        self.model, self.cfg = model, cfg
        self.records: list[dict[str, Any]] = []
        self._pooled: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])

    def _add(self, layer: int, lang: str, metric: str, value: float, interval, method) -> None:
        self.records.append(
            {
                "model": self.model,
                "layer": int(layer),
                "lang": lang,
                "metric": metrics.check(metric),
                "value": float(value),
                "ci_low": interval[0],
                "ci_high": interval[1],
                "ci_method": method,
            }
        )

    def add(self, lang: str, layer: int, out: LayerOutcomes) -> None:
        for metric, values in out.per_sentence.items():
            if metrics.get(metric).family != "retrieval":
                continue
            hits = int(values.sum())
            interval = stats.proportion_interval(hits, len(values), self.cfg.confidence)
            self._add(layer, lang, metric, values.mean(), interval, "wilson")
            self._pooled[(metric, layer)][0] += hits
            self._pooled[(metric, layer)][1] += len(values)
        if out.f1 is not None:
            seed = layer_seed(self.cfg, lang, layer)
            interval = stats.f1_interval(out.f1, self.cfg.n_boot, self.cfg.confidence, seed)
            self._add(layer, lang, "f1", out.f1.f1(), interval, "percentile-bootstrap")

    def finish(self) -> list[dict[str, Any]]:
        for (metric, layer), (hits, n) in self._pooled.items():
            interval = stats.proportion_interval(hits, n, self.cfg.confidence)
            self._add(layer, "all", metric, hits / n, interval, "wilson")
        return self.records
