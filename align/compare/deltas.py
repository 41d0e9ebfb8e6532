"""Changes between two models (tuned - base) per language, layer and metric, with statistics.

Retrieval metrics get a paired bootstrap interval and a paired test (exact McNemar for
accuracies and xSIM errors; a paired bootstrap for BUCC F1); their p-values are adjusted over
the family of layers x languages x metrics of one comparison. Alignment metrics that are means
over sentences get a paired bootstrap interval; aggregates (CKA, top-PC share, language ID) get
the difference alone.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from align import metrics
from align.compare import stats
from align.compare.outcomes import Outcomes

RETRIEVAL_FAMILY = ("acc_xx2en", "acc_en2xx", "xsim_error", "f1")


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
        "metric": metrics.check(f"delta_{metric}"),
        "value": diff.delta,
        "base": diff.base,
        "tuned": diff.tuned,
        "ci_low": diff.ci_low,
        "ci_high": diff.ci_high,
        "p_value": diff.p_value,
        "p_adjusted": None,
    }


def _seed(cfg: StatsConfig, lang: str, layer: int) -> int:
    """One seed per (language, layer): every metric there is bootstrapped on the same resamples."""
    key = zlib.crc32(f"{lang}:{layer}".encode())
    return int(np.random.SeedSequence([cfg.seed, key]).generate_state(1)[0])


def per_sentence_deltas(
    model: str, lang: str, base: Outcomes, tuned: Outcomes, cfg: StatsConfig
) -> list[dict[str, Any]]:
    """Every per-sentence metric: Δ with a paired bootstrap CI; McNemar p for 0/1 retrieval."""
    records = []
    for metric, by_layer in base.per_sentence.items():
        entry = metrics.get(metric)
        for layer, a in by_layer.items():
            b = tuned.per_sentence[metric][layer]
            diff = stats.bootstrap_mean_difference(
                a, b, cfg.n_boot, cfg.confidence, _seed(cfg, lang, layer)
            )
            if entry.family == "retrieval" and entry.outcome == "binary":
                p = stats.mcnemar_exact(a.astype(bool), b.astype(bool))
                diff = replace(diff, p_value=p)
            records.append(delta_record(model, layer, lang, metric, diff))
    return records


def aggregate_deltas(
    model: str, lang: str, base: Outcomes, tuned: Outcomes
) -> list[dict[str, Any]]:
    """Aggregates: the change alone (no interval: the metric is not a mean over sentences)."""
    records = []
    for metric, by_layer in base.aggregate.items():
        for layer, a in by_layer.items():
            b = tuned.aggregate[metric][layer]
            diff = stats.Difference(a, b, b - a, None, None)
            records.append(delta_record(model, layer, lang, metric, diff))
    return records


def f1_deltas(
    model: str, lang: str, base: Outcomes, tuned: Outcomes, cfg: StatsConfig
) -> list[dict[str, Any]]:
    """BUCC test F1 at each model's dev threshold: paired bootstrap over source sentences."""
    records = []
    for layer, counts in base.f1.items():
        diff = stats.bootstrap_f1_difference(
            counts, tuned.f1[layer], cfg.n_boot, cfg.confidence, _seed(cfg, lang, layer)
        )
        records.append(delta_record(model, layer, lang, "f1", diff))
    return records


def adjust_family(records: list[dict[str, Any]], correction: stats.Correction) -> None:
    """Fill ``p_adjusted`` over the retrieval tests of one comparison (one model vs the base)."""
    tested = [r for r in records if r["p_value"] is not None]
    for record, p in zip(
        tested, stats.adjust([r["p_value"] for r in tested], correction), strict=True
    ):
        record["p_adjusted"] = p


def compare_language(
    model: str, lang: str, base: Outcomes, tuned: Outcomes, cfg: StatsConfig
) -> list[dict[str, Any]]:
    return (
        per_sentence_deltas(model, lang, base, tuned, cfg)
        + aggregate_deltas(model, lang, base, tuned)
        + f1_deltas(model, lang, base, tuned, cfg)
    )


def level_records(
    model: str, outcomes_by_lang: dict[str, Outcomes], cfg: StatsConfig
) -> list[dict[str, Any]]:
    """One model's own retrieval scores with intervals, per language and pooled (``all``).

    Accuracies (and xSIM errors): Wilson intervals; pooled over languages, every query counts
    once. BUCC F1: a percentile bootstrap over source sentences.
    """
    records = []

    def add(layer: int, lang: str, metric: str, value: float, low: float, high: float) -> None:
        records.append(
            {
                "model": model,
                "layer": int(layer),
                "lang": lang,
                "metric": metrics.check(metric),
                "value": float(value),
                "ci_low": low,
                "ci_high": high,
            }
        )

    langs = [lang for lang in outcomes_by_lang if lang != "all"]
    first = outcomes_by_lang[langs[0]]
    for metric, by_layer in first.per_sentence.items():
        if metrics.get(metric).family != "retrieval":
            continue
        for layer in by_layer:
            pooled = []
            for lang in langs:
                values = outcomes_by_lang[lang].per_sentence[metric][layer]
                pooled.append(values)
                hits = int(values.sum())
                add(
                    layer,
                    lang,
                    metric,
                    values.mean(),
                    *stats.proportion_interval(hits, len(values), cfg.confidence),
                )
            values = np.concatenate(pooled)
            low, high = stats.proportion_interval(int(values.sum()), len(values), cfg.confidence)
            add(layer, "all", metric, values.mean(), low, high)
    for lang in langs:
        for layer, counts in outcomes_by_lang[lang].f1.items():
            interval = stats.f1_interval(
                counts, cfg.n_boot, cfg.confidence, _seed(cfg, lang, layer)
            )
            add(layer, lang, "f1", counts.f1(), *interval)
    return records
