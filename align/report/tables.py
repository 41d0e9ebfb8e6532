"""Plain-text per-layer tables from a results dict."""

from __future__ import annotations

from typing import Any

import numpy as np

from align.report.plots import PRIMARY_METRIC
from align.results import score_table


def format_layer_table(result: dict[str, Any], metric: str | None = None) -> str:
    """Rows = layers, columns = languages (+ mean) for one metric."""
    metric = metric or PRIMARY_METRIC.get(result["task"], "")
    table = score_table(result, metric)
    langs = sorted(table)
    layers = sorted({layer for values in table.values() for layer in values})
    head = f"{result['task']} {metric} — {result['model']['name']}"
    lines = [head, "layer " + "".join(f"{lang:>8}" for lang in langs) + f"{'mean':>8}"]
    for layer in layers:
        values = [table[lang].get(layer, float("nan")) for lang in langs]
        lines.append(
            f"{layer:>5} " + "".join(f"{v:8.3f}" for v in values) + f"{np.nanmean(values):8.3f}"
        )
    return "\n".join(lines)


def format_matrix(result: dict[str, Any], metric: str) -> str:
    """A layer x layer matrix (records carrying ``layer_b``) as text."""
    recs = [r for r in result["scores"] if r["metric"] == metric and "layer_b" in r]
    rows = sorted({r["layer"] for r in recs})
    cols = sorted({r["layer_b"] for r in recs})
    value = {(r["layer"], r["layer_b"]): r["value"] for r in recs}
    name_b = result["model"].get("b", {}).get("name", "B")
    lines = [f"{metric}: rows {result['model']['name']} layers, columns {name_b} layers"]
    lines.append("     " + "".join(f"{c:>6}" for c in cols))
    for r in rows:
        lines.append(f"{r:>4} " + "".join(f"{value[(r, c)]:6.2f}" for c in cols))
    return "\n".join(lines)
