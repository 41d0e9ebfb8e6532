"""Correlational attribution: which change in alignment tracks the change in retrieval?

Across (language, layer) points, the Spearman correlation between the change in the retrieval
metric and the change in each alignment metric, with a bootstrap interval: sentences are
resampled (the same resample for both models and for both metrics of a language) and both
changes recomputed. Metrics that are means over sentences, and linear CKA, are recomputed on
every resample; the other aggregates (debiased CKA, top-PC share) get the point value only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from align import metrics
from align.compare import stats
from align.compare.outcomes import Outcomes
from align.probes import cka

Replicates = Callable[[np.ndarray], np.ndarray]  # weights [B, n_units] -> deltas [B]


@dataclass
class LanguageChanges:
    """One language's changes at each layer: point values and resample functions."""

    lang: str
    n_units: int
    point: dict[str, dict[int, float]] = field(default_factory=dict)  # metric -> layer -> Δ
    replicate: dict[str, dict[int, Replicates]] = field(default_factory=dict)


def _mean_replicates(diff: np.ndarray, unit_of: np.ndarray | None) -> Replicates:
    def fn(weights: np.ndarray) -> np.ndarray:
        w = weights if unit_of is None else weights[:, unit_of]
        return (w @ diff) / np.maximum(w.sum(1), 1e-12)

    return fn


def _f1_replicates(base: stats.F1Counts, tuned: stats.F1Counts) -> Replicates:
    def fn(weights: np.ndarray) -> np.ndarray:
        return np.array([tuned.f1(w) - base.f1(w) for w in weights])

    return fn


def _cka_replicates(
    base: tuple[np.ndarray, np.ndarray], tuned: tuple[np.ndarray, np.ndarray], unit_of
) -> Replicates:
    def fn(weights: np.ndarray) -> np.ndarray:
        w = weights if unit_of is None else weights[:, unit_of]
        return cka.linear_resampled(*tuned, w) - cka.linear_resampled(*base, w)

    return fn


def language_changes(
    lang: str,
    n_units: int,
    base: Outcomes,
    tuned: Outcomes,
    embeddings: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] | None = None,
    unit_of: np.ndarray | None = None,
) -> LanguageChanges:
    """Point changes and their resample functions for every metric of one language.

    ``embeddings``: ``{"base"|"tuned": {layer: (src, tgt)}}`` for linear CKA resamples;
    ``unit_of``: for per-sentence values not indexed by unit (BUCC gold pairs), each value's unit.
    """
    out = LanguageChanges(lang, n_units)
    for metric, by_layer in base.per_sentence.items():
        units = None if metrics.get(metric).family == "retrieval" else unit_of
        for layer, a in by_layer.items():
            diff = tuned.per_sentence[metric][layer] - a
            out.point.setdefault(metric, {})[layer] = float(diff.mean())
            out.replicate.setdefault(metric, {})[layer] = _mean_replicates(diff, units)
    for layer, counts in base.f1.items():
        out.point.setdefault("f1", {})[layer] = tuned.f1[layer].f1() - counts.f1()
        out.replicate.setdefault("f1", {})[layer] = _f1_replicates(counts, tuned.f1[layer])
    for metric, by_layer in base.aggregate.items():
        for layer, a in by_layer.items():
            out.point.setdefault(metric, {})[layer] = tuned.aggregate[metric][layer] - a
            if metric == "cka_linear" and embeddings is not None:
                pair = embeddings["base"][layer], embeddings["tuned"][layer]
                out.replicate.setdefault(metric, {})[layer] = _cka_replicates(*pair, unit_of)
    return out


def _points(changes: list[LanguageChanges], metric: str) -> list[tuple[str, int]]:
    return [(c.lang, layer) for c in changes for layer in sorted(c.point.get(metric, {}))]


def spearman_records(
    model: str,
    changes: list[LanguageChanges],
    retrieval: str,
    alignment_metrics: list[str],
    n_boot: int,
    confidence: float,
    seed: int,
) -> list[dict[str, Any]]:
    """Spearman ρ(Δretrieval, Δalignment) over layers x languages (``all``) and per language."""
    rng = np.random.default_rng(seed)
    weights = {
        c.lang: rng.multinomial(c.n_units, np.full(c.n_units, 1 / c.n_units), n_boot)
        for c in changes
    }
    by_lang = {c.lang: c for c in changes}
    records = []
    for other in alignment_metrics:
        points = [
            p for p in _points(changes, retrieval) if p[1] in by_lang[p[0]].point.get(other, {})
        ]
        if len(points) < 3:
            continue
        can_resample = all(
            layer in by_lang[lang].replicate.get(other, {})
            and layer in by_lang[lang].replicate[retrieval]
            for lang, layer in points
        )
        reps = {}
        if can_resample:
            for lang, layer in points:
                c = by_lang[lang]
                reps[(lang, layer)] = (
                    c.replicate[retrieval][layer](weights[lang]),
                    c.replicate[other][layer](weights[lang]),
                )
        for scope in ["all", *sorted({lang for lang, _ in points})]:
            chosen = [p for p in points if scope in ("all", p[0])]
            if len(chosen) < 3:
                continue
            x = [by_lang[lang].point[retrieval][layer] for lang, layer in chosen]
            y = [by_lang[lang].point[other][layer] for lang, layer in chosen]
            record = {
                "model": model,
                "lang": scope,
                "metric": metrics.check(f"spearman_{retrieval}_vs_{other}"),
                "value": stats.spearman(np.array(x), np.array(y)),
                "ci_low": None,
                "ci_high": None,
                "n_points": len(chosen),
            }
            if can_resample:
                rx = np.stack([reps[p][0] for p in chosen], axis=1)  # [B, points]
                ry = np.stack([reps[p][1] for p in chosen], axis=1)
                rho = np.array([stats.spearman(a, b) for a, b in zip(rx, ry, strict=True)])
                record["ci_low"], record["ci_high"] = stats.percentile_interval(rho, confidence)
            records.append(record)
    return records


def centring_records(model: str, changes: list[LanguageChanges]) -> list[dict[str, Any]]:
    """How much of each change in xx->en accuracy survives per-language centring.

    ``centred_share_xx2en`` = Δ(centred accuracy) / Δ(accuracy): near 1, the change is in the
    alignment itself; near 0, centring (removing each language's mean) already gives it.
    """
    records = []
    for c in changes:
        raw, centred = c.point.get("acc_xx2en", {}), c.point.get("acc_centered_xx2en", {})
        for layer in sorted(set(raw) & set(centred)):
            if raw[layer] != 0:
                records.append(
                    {
                        "model": model,
                        "layer": layer,
                        "lang": c.lang,
                        "metric": metrics.check("centred_share_xx2en"),
                        "value": centred[layer] / raw[layer],
                    }
                )
    return records
