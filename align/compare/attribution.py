"""Correlational attribution: which change in alignment tracks the change in retrieval?

Across (language, layer) points, the Spearman correlation between the change in the retrieval
metric and the change in each alignment metric, with a bootstrap interval: sentences are
resampled (the same resample for both models and for both metrics of a language) and both
changes recomputed. Metrics that are means over sentences, BUCC F1 and linear CKA are
recomputed on every resample; the other aggregates (debiased CKA, top-PC share) get the point
value only. Resamples are drawn in batches (:class:`~align.compare.stats.ResampleWeights`) while
a layer's embeddings are loaded; only the replicate changes (``n_boot`` numbers per point and
metric) are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from align import metrics
from align.compare import stats
from align.compare.decomposition import PARTS
from align.compare.outcomes import LayerOutcomes
from align.probes import cka
from align.timing import stage


@dataclass
class LanguageChanges:
    """One language's changes at each layer: point values and bootstrap replicates."""

    lang: str
    n_units: int
    point: dict[str, dict[int, float]] = field(default_factory=dict)  # metric -> layer -> Δ
    replicate: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)  # -> [n_boot]


def _mean_replicates(diff: np.ndarray, unit_of: np.ndarray | None, w: np.ndarray) -> np.ndarray:
    if unit_of is not None:
        w = w[:, unit_of]
    return (w @ diff) / np.maximum(w.sum(1), 1e-12)


def add_layer(
    changes: LanguageChanges,
    layer: int,
    base: LayerOutcomes,
    tuned: LayerOutcomes,
    weights: Callable[[], Iterable[np.ndarray]],
    pairs: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
    unit_of: np.ndarray | None = None,
    device: str | None = None,
) -> None:
    """Record one layer's point changes, and their replicates over the resamples ``weights()``
    hands out in batches (drawn again as often as needed, identically).

    ``pairs``: (base, tuned) translation pairs (src, tgt) for linear-CKA resamples; ``unit_of``:
    for per-sentence values not indexed by unit (BUCC gold pairs), each value's unit;
    ``device``: where the resampled CKA's products run (default: the CPU).
    """
    with stage("attribution_replicates"):
        _add_layer(changes, layer, base, tuned, weights, pairs, unit_of, device)


def _add_layer(changes, layer, base, tuned, weights, pairs, unit_of, device) -> None:
    diffs: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for metric, a in base.per_sentence.items():
        diff = tuned.per_sentence[metric] - a
        changes.point.setdefault(metric, {})[layer] = float(diff.mean())
        units = None if metrics.get(metric).family == "retrieval" else unit_of
        diffs[metric] = (diff, units)
    if base.f1 is not None and tuned.f1 is not None:
        changes.point.setdefault("f1", {})[layer] = tuned.f1.f1() - base.f1.f1()
    for metric, a in base.aggregate.items():
        changes.point.setdefault(metric, {})[layer] = tuned.aggregate[metric] - a
    with_cka = pairs is not None and "cka_linear" in base.aggregate
    parts: dict[str, list[np.ndarray]] = {m: [] for m in diffs}
    parts |= {"f1": []} if base.f1 is not None and tuned.f1 is not None else {}
    for w in weights():
        for metric, (diff, units) in diffs.items():
            parts[metric].append(_mean_replicates(diff, units, w))
        if "f1" in parts:
            parts["f1"].append(np.array([tuned.f1.f1(row) - base.f1.f1(row) for row in w]))
    if with_cka:
        with stage("resampled_cka"):
            counts = np.concatenate(
                [w if unit_of is None else w[:, unit_of] for w in weights()]
            ).astype(np.float64)
            (base_pair, tuned_pair) = pairs  # type: ignore[misc]
            parts["cka_linear"] = [
                cka.linear_resampled(*tuned_pair, counts, device=device)
                - cka.linear_resampled(*base_pair, counts, device=device)
            ]
    for metric, chunks in parts.items():
        changes.replicate.setdefault(metric, {})[layer] = np.concatenate(chunks)


def _points(changes: list[LanguageChanges], metric: str) -> list[tuple[str, int]]:
    return [(c.lang, layer) for c in changes for layer in sorted(c.point.get(metric, {}))]


def spearman_records(
    model: str,
    changes: list[LanguageChanges],
    retrieval: str,
    alignment_metrics: list[str],
    confidence: float,
) -> list[dict[str, Any]]:
    """Spearman ρ(Δretrieval, Δalignment) over layers x languages (``all``) and per language."""
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
            and layer in by_lang[lang].replicate.get(retrieval, {})
            for lang, layer in points
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
                "metric": metrics.check(metrics.spearman(retrieval, other)),
                "value": stats.spearman(np.array(x), np.array(y)),
                "ci_low": None,
                "ci_high": None,
                "ci_method": None,
                "n_points": len(chosen),
            }
            if record["value"] != record["value"]:
                record["undefined"] = {
                    "value": "the changes of one side are all equal: no rank correlation"
                }
            if can_resample and record["value"] == record["value"]:
                rx = np.stack(
                    [by_lang[lang].replicate[retrieval][layer] for lang, layer in chosen], 1
                )
                ry = np.stack([by_lang[lang].replicate[other][layer] for lang, layer in chosen], 1)
                rho = np.array([stats.spearman(a, b) for a, b in zip(rx, ry, strict=True)])
                record["ci_low"], record["ci_high"] = stats.shifted_percentile_interval(
                    rho, record["value"], confidence
                )
                record["ci_method"] = stats.SHIFTED
            records.append(record)
    return records


# each share of the change in xx->en accuracy that survives a transform: its record -> the
# accuracy after the transform (the decomposition's parts)
SHARES = {f"{part}_share_xx2en": metric for part, metric in PARTS.items() if part != "raw"}
SHARE_METHOD = "median-shifted-bootstrap"  # sentences resampled; the maps are not refit


def share_records(
    model: str, changes: list[LanguageChanges], confidence: float = 0.95
) -> list[dict[str, Any]]:
    """How much of each change in xx->en accuracy survives each transform, per language and
    layer: Δ(accuracy after the transform) / Δ(accuracy). Near 1 the change survives (it is
    not what the transform removes); near 0 the transform undoes it (centring: an offset;
    whitening: a stretch; a cross-fitted orthogonal map: a rotation). The interval resamples
    sentences (the same resamples for both changes) and recomputes both changes from each
    sentence's outcomes; the maps fit at the point estimate are not refit (a sentence's outcome
    under its cross-fitted map is resampled as it is). Ratios are median-shifted like the
    Spearman intervals (:func:`align.compare.stats.shifted_percentile_interval`)."""
    records = []
    for c in changes:
        raw, raw_rep = c.point.get("acc_xx2en", {}), c.replicate.get("acc_xx2en", {})
        for name, metric in SHARES.items():
            kept, kept_rep = c.point.get(metric, {}), c.replicate.get(metric, {})
            for layer in sorted(set(raw) & set(kept)):
                if raw[layer] == 0:
                    continue
                value = kept[layer] / raw[layer]
                record = {
                    "model": model,
                    "layer": layer,
                    "lang": c.lang,
                    "metric": metrics.check(name),
                    "value": value,
                    "ci_low": None,
                    "ci_high": None,
                    "ci_method": None,
                }
                if layer in raw_rep and layer in kept_rep:
                    with np.errstate(divide="ignore", invalid="ignore"):
                        ratio = kept_rep[layer] / raw_rep[layer]
                    low, high = stats.shifted_percentile_interval(
                        ratio, value, confidence, bounds=(-np.inf, np.inf)
                    )
                    if np.isfinite(low) and np.isfinite(high):
                        record |= {"ci_low": low, "ci_high": high, "ci_method": SHARE_METHOD}
                records.append(record)
    return records
