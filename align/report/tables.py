"""Plain-text per-layer tables from a results dict."""

from __future__ import annotations

from typing import Any

import numpy as np

from align import metrics
from align.results import Result, as_result, primary_metric, score_table


def encoding_note(result: dict[str, Any]) -> str:
    """The encoding options every number in a results file was measured with."""
    cfg = result.get("config", {})
    special = ", specials excluded" if cfg.get("exclude_special") else ""
    return (
        f"prefix {cfg.get('prefix')!r}, pooling {cfg.get('pooling')}{special}, "
        f"max length {cfg.get('max_length')}, {cfg.get('dtype')}"
    )


def format_layer_table(result: dict[str, Any], metric: str | None = None) -> str:
    """Rows = layers, columns = languages (+ mean) for one metric."""
    metric = metric or primary_metric(result)
    table = score_table(result, metric)
    langs = sorted(table)
    layers = sorted({layer for values in table.values() for layer in values})
    head = f"{result['task']} {metric} — {result['model']['name']} ({encoding_note(result)})"
    if isinstance(convention := result.get("convention"), dict):
        head += f"\n{convention['text']}"
    if not table:
        return f"{head}\n(no {metric} scores in these results)"
    lines = [head, "layer " + "".join(f"{lang:>8}" for lang in langs) + f"{'mean':>8}"]
    for layer in layers:
        values = [table[lang].get(layer, float("nan")) for lang in langs]
        lines.append(
            f"{layer:>5} " + "".join(f"{v:8.3f}" for v in values) + f"{np.nanmean(values):8.3f}"
        )
    return "\n".join(lines)


def format_pair_table(result: dict[str, Any], metric: str) -> str:
    """Pair records (``lang -> lang_b``) as text: at the layer with the best mean (a change: the
    largest mean in size), a language x language table (rows: from, columns: to)."""
    recs = [r for r in result["scores"] if r["metric"] == metric and "lang_b" in r]
    if not recs:
        return f"{metric}: no pair records"
    by_layer: dict[int, list[float]] = {}
    for r in recs:
        by_layer.setdefault(r["layer"], []).append(r["value"])
    change = metric.startswith("delta_")
    sign = -1 if metrics.get(metric).higher_is_better is False else 1

    def rank(layer: int) -> float:
        mean = sum(by_layer[layer]) / len(by_layer[layer])
        return abs(mean) if change else sign * mean

    layer = max(by_layer, key=rank)
    langs = sorted({r["lang"] for r in recs} | {r["lang_b"] for r in recs})
    value = {(r["lang"], r["lang_b"]): r["value"] for r in recs if r["layer"] == layer}
    if not any((b, a) in value for a, b in value):  # each pair once: a symmetric measure
        value |= {(b, a): v for (a, b), v in value.items()}
    width = max(7, *(len(lang) + 1 for lang in langs))
    chosen = "largest mean change" if change else "best mean over pairs"
    lines = [f"{metric} at layer {layer} ({chosen}): rows from, columns to"]
    lines.append(" " * width + "".join(f"{lang:>{width}}" for lang in langs))
    for a in langs:
        cells = ("-" if (a, b) not in value else f"{value[(a, b)]:+.3f}" if change
                 else f"{value[(a, b)]:.3f}" for b in langs)  # fmt: skip
        lines.append(f"{a:<{width}}" + "".join(f"{c:>{width}}" for c in cells))
    return "\n".join(lines)


def format_matrix(result: dict[str, Any], metric: str) -> str:
    """A layer x layer matrix (records carrying ``layer_b``) as text."""
    recs = [r for r in result["scores"] if r["metric"] == metric and "layer_b" in r]
    rows = sorted({r["layer"] for r in recs})
    cols = sorted({r["layer_b"] for r in recs})
    value = {(r["layer"], r["layer_b"]): r["value"] for r in recs}
    name_b = result["model"].get("b", {}).get("name", "B")
    lines = [
        f"{metric}: rows {result['model']['name']} layers, columns {name_b} layers "
        f"({encoding_note(result)})"
    ]
    lines.append("     " + "".join(f"{c:>6}" for c in cols))
    for r in rows:
        cells = (value[(r, c)] for c in cols)
        lines.append(f"{r:>4} " + "".join("   n/a" if v is None else f"{v:6.2f}" for v in cells))
    return "\n".join(lines)


def format_delta_table(result: dict[str, Any] | Result, metric: str, alpha: float = 0.05) -> str:
    """Per compared model: rows = layers, columns = languages, Δmetric (* adjusted p < alpha)."""
    res = as_result(result)
    name = metrics.delta(metric)
    blocks = []
    for model in dict.fromkeys(r["model"] for r in res.records(name)):
        recs = res.records(name, model=model)
        langs = sorted({r["lang"] for r in recs})
        layers = sorted({r["layer"] for r in recs})
        cell = {(r["layer"], r["lang"]): r for r in recs}
        lines = [
            f"Δ {metric} — {model} vs {res.model} ({encoding_note(res.data)}); "
            f"* adjusted p < {alpha}",
            "layer " + "".join(f"{lang:>9}" for lang in langs),
        ]
        for layer in layers:
            row = ""
            for lang in langs:
                r = cell.get((layer, lang))
                if r is None:
                    row += f"{'':>9}"
                    continue
                star = "*" if r.get("p_adjusted") is not None and r["p_adjusted"] < alpha else " "
                row += f"{r['value']:+8.3f}{star}"
            lines.append(f"{layer:>5} {row}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
