"""Layer-curve figures from a results JSON: one line per language, their mean dashed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from align._io import atomic_path
from align.errors import AlignError
from align.results import load_result, score_table

PRIMARY_METRIC = {"tatoeba": "acc_xx2en", "bucc": "f1"}
METRIC_LABELS = {
    "acc_xx2en": "Tatoeba top-1 accuracy (xx→en)",
    "acc_en2xx": "Tatoeba top-1 accuracy (en→xx)",
    "xsim_error": "xSIM error rate (xx→en, ratio margin)",
    "f1": "BUCC F1 (test, dev-chosen threshold)",
    "f1_dev": "BUCC F1 (dev)",
}


def plot_layer_curves(results_path: Path, out_path: Path, metric: str | None = None) -> Path:
    """Write a PNG (and a PDF beside it) of ``metric`` against layer for every language."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = load_result(results_path)
    metric = metric or PRIMARY_METRIC.get(result["task"], result["scores"][0]["metric"])
    table = score_table(result, metric)
    if not table:
        raise AlignError(f"{results_path}: no scores for metric {metric!r}")
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=150)
    layers = sorted({layer for values in table.values() for layer in values})
    for lang, values in sorted(table.items()):
        xs = sorted(values)
        ax.plot(xs, [values[x] for x in xs], marker="o", markersize=3, linewidth=1.2, label=lang)
    mean = [np.mean([v[x] for v in table.values() if x in v]) for x in layers]
    ax.plot(layers, mean, color="black", linestyle="--", linewidth=1.8, label="mean")
    pairs = [s.get("pairs") for s in result.get("data", {}).get("sizes", {}).values()]
    if metric.startswith("acc_") and pairs and all(pairs):
        ax.axhline(1 / min(pairs), color="grey", linestyle=":", linewidth=1, label="chance")
    ax.set_xlabel("layer (hidden_states index; 0 = embeddings)")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.set_xticks(layers)
    if metric.startswith(("acc", "f1", "precision", "recall", "xsim")):
        ax.set_ylim(0, 1.0)
    ax.set_title(f"{result['model']['name']} — {result['task']}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, frameon=False)
    fig.tight_layout()
    out_path = Path(out_path)
    for path in (out_path, out_path.with_suffix(".pdf")):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip("."))
    plt.close(fig)
    return out_path
