"""``align compare`` on a multi-way set: the paired change of every ordered language pair at
every layer, and whether the change is English-centred.

Each layer of every language is read once per model; every ordered pair's per-sentence
outcomes (top-1 accuracy, xSIM error) come from the task's pair scoring. A pair's change gets
the exact paired interval and McNemar's test, adjusted over pairs x layers x metrics (as
``compare`` adjusts over languages x layers x metrics). Two summaries resample sentences (the
unit every language shares: sentence i is one sentence in every language), the same resamples
for every pair:

- ``english_centricity``: per layer, the mean change of the pairs with English minus the mean
  change of the pairs without it (above 0: the change favours English's pairs; below 0: the
  pairs among the other languages gained more);
- ``mean_pair_change``: per language, the mean change of its pairs (both directions).

The summary says, at the layer where the mean change over all pairs is largest, whether the
change is English-centred or shared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from align import metrics
from align.compare import deltas, stats
from align.compare.deltas import StatsConfig
from align.progress import step
from align.retrieval.pairs import PAIR_METRICS, PairOutcomes
from align.retrieval.tasks import RetrievalTask, TaskParams
from align.retrieval.tasks.multiway import SET, english_of
from align.store import ModelSets

CENTRICITY_METHOD = "percentile-bootstrap"
_FIELDS = {"acc_a2b": "acc", "xsim_error_a2b": "xsim_error"}


@dataclass
class _Changes:
    """One checkpoint's per-sentence changes of the main metric, per layer: ``[pairs, n]``."""

    pairs: list[tuple[str, str]]
    by_layer: dict[int, np.ndarray] = field(default_factory=dict)


def _outcomes(task: RetrievalTask, model: ModelSets, langs, layer, pairs, params):
    emb = {lang: model.layer(lang, layer, (SET,))[SET] for lang in langs}
    return task.pair_outcomes(emb, pairs, params)  # type: ignore[attr-defined]


def _own_records(model: str, layer: int, found: dict, cfg: StatsConfig) -> list[dict[str, Any]]:
    records = []
    for (a, b), out in found.items():
        for metric, name in _FIELDS.items():
            values = getattr(out, name)
            low, high = stats.proportion_interval(int(values.sum()), len(values), cfg.confidence)
            records.append(
                {"model": model, "layer": layer, "lang": a, "lang_b": b, "metric": metric,
                 "value": float(values.mean()), "ci_low": low, "ci_high": high,
                 "ci_method": "wilson"}
            )  # fmt: skip
    return records


def _delta_records(
    model: str,
    layer: int,
    base: dict[tuple[str, str], PairOutcomes],
    tuned: dict[tuple[str, str], PairOutcomes],
    task: RetrievalTask,
    cfg: StatsConfig,
) -> list[dict[str, Any]]:
    records = []
    for pair, out in base.items():
        seed = deltas.layer_seed(cfg, f"{pair[0]}>{pair[1]}", layer)
        for metric, name in _FIELDS.items():
            a, b = getattr(out, name), getattr(tuned[pair], name)
            diff = deltas._per_sentence(metric, a, b, task, cfg, seed)
            records.append(
                deltas.delta_record(model, layer, pair[0], metric, diff) | {"lang_b": pair[1]}
            )
    return records


def _weights(n: int, n_boot: int, seed: int) -> np.ndarray:
    """Resample counts of the sentences ``[n_boot, n]`` (multinomial, seeded)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1 / n), size=n_boot).astype(np.float64)


def summary_records(
    model: str, changes: _Changes, english: str | None, cfg: StatsConfig, n_boot: int
) -> list[dict[str, Any]]:
    """The English-centricity of the change per layer and each language's mean change, with
    percentile intervals from resampled sentences (one set of resamples for every pair)."""
    records: list[dict[str, Any]] = []
    pairs = changes.pairs
    langs = list(dict.fromkeys(lang for pair in pairs for lang in pair))
    with_english = np.array([english in pair for pair in pairs])
    for layer, diff in sorted(changes.by_layer.items()):
        w = _weights(diff.shape[1], n_boot, cfg.seed + layer)
        point = diff.mean(1)  # each pair's mean change
        replicate = (w @ diff.T) / diff.shape[1]  # [n_boot, pairs]
        if english is not None and with_english.any() and (~with_english).any():
            value = point[with_english].mean() - point[~with_english].mean()
            reps = replicate[:, with_english].mean(1) - replicate[:, ~with_english].mean(1)
            low, high = stats.percentile_interval(reps, cfg.confidence)
            records.append(
                {"model": model, "layer": layer, "lang": "all",
                 "metric": metrics.check("english_centricity"), "value": float(value),
                 "with_english": float(point[with_english].mean()),
                 "without_english": float(point[~with_english].mean()),
                 "ci_low": low, "ci_high": high, "ci_method": CENTRICITY_METHOD}
            )  # fmt: skip
        for lang in langs:
            mine = np.array([lang in pair for pair in pairs])
            low, high = stats.percentile_interval(replicate[:, mine].mean(1), cfg.confidence)
            value = float(point[mine].mean())
            records.append(
                {"model": model, "layer": layer, "lang": lang,
                 "metric": metrics.check("mean_pair_change"), "value": value,
                 "ci_low": low, "ci_high": high, "ci_method": CENTRICITY_METHOD}
            )  # fmt: skip
    return records


def sentence(records: list[dict[str, Any]], model: str, english: str | None) -> str | None:
    """At the layer of the largest mean change over all pairs: English-centred or shared."""
    centricity = {r["layer"]: r for r in records if r["model"] == model
                  and r["metric"] == "english_centricity"}  # fmt: skip
    if english is None or not centricity:
        return None
    overall = {}
    for r in records:
        if r["model"] == model and r["metric"] == metrics.delta("acc_a2b"):
            overall.setdefault(r["layer"], []).append(r["value"])
    layer = max(overall, key=lambda k: abs(np.mean(overall[k])))
    c = centricity[layer]
    mean = float(np.mean(overall[layer]))
    what = "gain" if mean > 0 else "loss"
    if c["ci_low"] > 0:
        kind = "English-centred: pairs with English change more"
    elif c["ci_high"] < 0:
        kind = "strongest among the pairs without English"
    else:
        kind = "shared: pairs with and without English change alike"
    return (
        f"layer {layer} (largest mean {what}, {mean:+.3f} over all pairs): the change is {kind} "
        f"(with English {c['with_english']:+.3f}, without {c['without_english']:+.3f}; "
        f"centricity {c['value']:+.3f}, 95% CI [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}])"
    )


def compare_pairs(
    task: RetrievalTask,
    langs: list[str],
    layers: list[int],
    base: ModelSets,
    tuned: list[ModelSets],
    pairs: list[tuple[str, str]],
    params: TaskParams,
    cfg: StatsConfig,
    n_boot: int = 1000,
    progress: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Every model's own pair scores, every checkpoint's paired changes (p-values adjusted over
    its pairs x layers x metrics), the centricity and per-language summaries; and each
    checkpoint's sentence."""
    english = english_of(langs)
    records = []
    changes = {m.name: _Changes(pairs) for m in tuned}
    own = {m.name: [] for m in [base, *tuned]}
    changed = {m.name: [] for m in tuned}
    what = f"compare: {len(pairs)} ordered pairs x {len(layers)} layers, {base.name} vs " + (
        ", ".join(m.name for m in tuned)
    )
    with step(what, len(layers), "layer", progress) as update:
        for layer in layers:
            found = _outcomes(task, base, langs, layer, pairs, params)
            own[base.name] += _own_records(base.name, layer, found, cfg)
            for model in tuned:
                out = _outcomes(task, model, langs, layer, pairs, params)
                own[model.name] += _own_records(model.name, layer, out, cfg)
                changed[model.name] += _delta_records(model.name, layer, found, out, task, cfg)
                changes[model.name].by_layer[layer] = np.stack(
                    [out[p].acc - found[p].acc for p in pairs]
                ).astype(np.float32)
            update(1)
    said = {}
    records += own[base.name]
    for model in tuned:
        deltas.adjust_family(changed[model.name], cfg.correction)
        summary = summary_records(model.name, changes[model.name], english, cfg, n_boot)
        records += own[model.name] + changed[model.name] + summary
        if (text := sentence(summary + changed[model.name], model.name, english)) is not None:
            said[model.name] = text
    return records, said


def findings(
    records: list[dict[str, Any]], said: dict[str, str], alpha: float, correction: str
) -> dict[str, dict[str, Any]]:
    """Each checkpoint's summary: its significant gains and losses in pair accuracy (adjusted
    p < ``alpha``), the family they were adjusted over, and the centricity sentence."""
    out = {}
    delta = metrics.delta("acc_a2b")
    for model in dict.fromkeys(r["model"] for r in records if r["metric"] == delta):
        tested = [r for r in records if r["model"] == model and r.get("p_value") is not None]
        found = [r for r in tested if r["metric"] == delta and r["p_adjusted"] < alpha]
        cells = len({(r["lang"], r["lang_b"], r["layer"]) for r in tested})
        kinds = len({r["metric"] for r in tested})
        text = [f"{model}: {len(found)} significant change(s) in pair accuracy"]
        text += [f"  centricity: {said[model]}"] if model in said else []
        out[model] = {
            "gains": [r for r in found if r["value"] > 0],
            "losses": [r for r in found if r["value"] < 0],
            "family": f"{correction.title()} over {cells} pair cells x {kinds} metrics = "
            f"{len(tested)} tests",
            "pairs": said.get(model),
            "text": text,
        }
    return out


__all__ = ["PAIR_METRICS", "compare_pairs", "findings", "sentence", "summary_records"]
