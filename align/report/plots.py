"""Layer-curve figures from a results JSON: one line per language, their mean dashed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from align import metrics
from align._io import atomic_path
from align.errors import AlignError
from align.results import Result, as_result, primary_metric

PROBE_PANELS = ("cos_gap", "acc_centered_xx2en", "langid_acc", "iso_avg_cos", "iso_top_pc_share")
# Ten colours: Okabe-Ito's seven (distinguishable with every common colour-vision deficiency;
# its black is kept for a base model and for means) and three of matplotlib's tab10.
COLOURS = (
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
    "#7F7F7F", "#8C564B", "#9467BD",
)  # fmt: skip
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D")
MAX_LINES = len(COLOURS)  # more series than colours: small multiples or a heatmap instead


def styles(n: int) -> list[dict[str, str]]:
    """``n`` line styles, no two alike: the ten colours, then again with another dash and
    marker (40 at most); matplotlib keyword arguments (color, linestyle, marker)."""
    if n > len(COLOURS) * len(LINESTYLES):
        raise AlignError(f"{n} series in one panel: more than a figure can tell apart")
    return [
        {
            "color": COLOURS[i % len(COLOURS)],
            "linestyle": LINESTYLES[i // len(COLOURS)],
            "marker": MARKERS[i // len(COLOURS)],
        }
        for i in range(n)
    ]


def language_styles(langs: list[str]) -> dict[str, dict[str, str]]:
    """One style per language (sorted), the same in every panel and figure of a run."""
    ordered = sorted(langs)
    return dict(zip(ordered, styles(len(ordered)), strict=True))


def legend_outside(target: Any, handles=None, labels=None, ncol: int = 1, **extra: Any) -> None:
    """A legend beside the data, right of the axes (or figure), never on it."""
    kwargs = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "frameon": False, "ncol": ncol}
    kwargs |= extra
    if handles is not None:
        target.legend(handles, labels, **kwargs)
    else:
        target.legend(**kwargs)


def legend_width(labels: list[str], fontsize: float = 6.0) -> float:
    """Inches a one-column legend of ``labels`` takes beside the axes (so that a figure can
    be widened by as much and its axes keep their size)."""
    longest = max((len(label) for label in labels), default=0)
    return 0.5 + longest * 0.55 * fontsize / 72


def dataset_title(result: dict[str, Any] | Result) -> str:
    """The data's name as the run recorded it (the Bible demo set is not Tatoeba)."""
    res = as_result(result)
    return res.data.get("data", {}).get("name") or res.task


def set_metric_axis(ax: Any, metric: str, axis: str = "y") -> None:
    """Label an axis with the metric's registered label; clip to its bounds when it has both."""
    entry = metrics.get(metric)
    (ax.set_ylabel if axis == "y" else ax.set_xlabel)(entry.label)
    low, high = entry.bounds
    if low is not None and high is not None and (low, high) in ((0.0, 1.0), (-1.0, 1.0)):
        (ax.set_ylim if axis == "y" else ax.set_xlim)(low, high)


def _pyplot():
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    # a language name or path outside the font's script (CJK) is drawn as boxes, not warned about
    warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)
    import matplotlib.pyplot as plt

    return plt


def close_all() -> None:
    """Close every open figure (one that raised before it was saved included)."""
    if "matplotlib.pyplot" in __import__("sys").modules:
        _pyplot().close("all")


def _save(fig: Any, out_path: Path) -> Path:
    """PNG at ``out_path`` and a PDF beside it, each written atomically."""
    out_path = Path(out_path)
    for path in (out_path, out_path.with_suffix(".pdf")):
        with atomic_path(path) as tmp:
            # a tight bounding box: no axis label is ever cut at the figure's edge
            fig.savefig(tmp, format=path.suffix.lstrip("."), bbox_inches="tight", pad_inches=0.03)
    _pyplot().close(fig)
    return out_path


def _draw_curves(
    ax: Any, result: dict | Result, metric: str, legend: bool = True, looks: dict | None = None
) -> None:
    res = as_result(result)
    table = res.table(metric)
    if not table:
        raise AlignError(f"no scores for metric {metric!r} in this results file")
    looks = looks or language_styles(list(table))
    layers = sorted({layer for values in table.values() for layer in values})
    for lang, values in sorted(table.items()):
        xs = sorted(values)
        ax.plot(
            xs,
            [values[x] for x in xs],
            markersize=3,
            linewidth=1.2,
            label=lang,
            **looks.get(lang, {"color": "#555555", "marker": "o"}),
        )
    if len(table) > 1:
        mean = [np.mean([v[x] for v in table.values() if x in v]) for x in layers]
        ax.plot(layers, mean, color="black", linestyle="--", linewidth=1.8, label="mean")
    pairs = [s.get("pairs") for s in res.data.get("data", {}).get("sizes", {}).values()]
    if metric.startswith("acc") and pairs and all(pairs):
        ax.axhline(1 / min(pairs), color="grey", linestyle=":", linewidth=1, label="chance")
    ax.set_xlabel("layer (hidden_states index; 0 = embeddings)")
    set_metric_axis(ax, metric)
    ax.set_xticks(layers)
    ax.grid(alpha=0.3)
    if legend:
        legend_outside(ax, ncol=1 + len(table) // 16)


def _layer_heatmap(ax: Any, result: Result, metric: str) -> Any:
    """Languages (rows) x layers of ``metric``, each cell printed: many languages at once."""
    table = result.table(metric)
    if not table:
        raise AlignError(f"no scores for metric {metric!r} in this results file")
    langs = sorted(table)
    layers = sorted({layer for values in table.values() for layer in values})
    grid = np.array([[table[lang].get(x, np.nan) for x in layers] for lang in langs])
    low, high = metrics.get(metric).bounds
    image = ax.imshow(grid, cmap="viridis", aspect="auto", vmin=low, vmax=high)
    for (i, j), value in np.ndenumerate(grid):
        if value == value:
            ax.text(j, i, f"{value:.2f}"[1:] if 0 <= value < 1 else f"{value:.1f}",
                    ha="center", va="center", fontsize=5,
                    color="black" if value > 0.6 * (high or 1) else "white")  # fmt: skip
    ax.set_xticks(range(len(layers)), [str(x) for x in layers])
    ax.set_yticks(range(len(langs)), langs)
    ax.set_xlabel("layer (hidden_states index; 0 = embeddings)")
    return image


def plot_layer_curves(results_path: Path, out_path: Path, metric: str | None = None) -> Path:
    """Write a PNG (and a PDF beside it) of ``metric`` against layer for every language: lines
    up to ten languages, a language x layer heatmap beyond (no colour is used twice)."""
    plt = _pyplot()
    result = Result.load(results_path)
    metric = metric or primary_metric(result)
    langs = len(result.table(metric))
    if langs > MAX_LINES:
        fig, ax = plt.subplots(figsize=(6.4, 1.0 + 0.24 * langs), dpi=150)
        image = _layer_heatmap(ax, result, metric)
        fig.colorbar(image, ax=ax, label=metrics.get(metric).label, fraction=0.04, pad=0.02)
    else:
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=150)
        _draw_curves(ax, result, metric)
    ax.set_title(f"{result.model} — {dataset_title(result)}", fontsize=9)
    fig.tight_layout()
    return _save(fig, out_path)


def plot_probe_panels(
    results_path: Path, out_path: Path, metrics: tuple[str, ...] = PROBE_PANELS
) -> Path:
    """One panel per probe metric against layer (the metrics present in the results file)."""
    plt = _pyplot()
    result = Result.load(results_path)
    present = {str(m) for m in result.metric_names()}
    mknn = sorted(m for m in present if m.startswith("mknn@"))
    chosen = [m for m in metrics if m in present] + mknn[:1]
    cols = 3
    rows = -(-len(chosen) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), dpi=150, squeeze=False)
    looks = language_styles(sorted({r["lang"] for r in result.records()}))
    for ax, metric in zip(axes.flat, chosen, strict=False):
        _draw_curves(ax, result, metric, legend=False, looks=looks)
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("layer")
    for ax in list(axes.flat)[len(chosen) :]:
        ax.axis("off")
    handles, labels = {}, {}
    for ax in axes.flat:  # every series once (a language, the mean, chance), beside the panels
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
            labels[label] = label
    legend_outside(fig, list(handles.values()), list(labels), ncol=1 + len(labels) // 20)
    fig.suptitle(f"{result.model} — alignment probes — {dataset_title(result)}", fontsize=10)
    fig.tight_layout()
    return _save(fig, out_path)


def layer_grid(records: list[dict[str, Any]]) -> tuple[list[int], list[int], np.ndarray]:
    """(rows = ``layer``, columns = ``layer_b``, values) of layer x layer matrix records."""
    rows = sorted({r["layer"] for r in records})
    cols = sorted({r["layer_b"] for r in records})
    grid = np.full((len(rows), len(cols)), np.nan)
    for r in records:
        grid[rows.index(r["layer"]), cols.index(r["layer_b"])] = r["value"]
    return rows, cols, grid


def plot_cka_matrix(results_path: Path, out_path: Path, metric: str = "cka_linear") -> Path:
    """Heatmap of a layer x layer matrix (layer indices, colourbar): the measure's own bounds
    where it has them (CKA 0..1), else the values' range; brighter is more similar (a
    distance's scale is reversed)."""
    plt = _pyplot()
    result = Result.load(results_path)
    recs = [r for r in result.records(metric) if "layer_b" in r]
    if not recs:
        raise AlignError(f"{results_path}: no layer x layer {metric!r} matrix")
    rows, cols, grid = layer_grid(recs)
    entry = metrics.get(metric)
    finite = grid[np.isfinite(grid)]
    low, high = entry.bounds
    low = low if low is not None else (float(finite.min()) if finite.size else 0.0)
    high = high if high is not None else (float(finite.max()) if finite.size else 1.0)
    cmap = "magma_r" if entry.higher_is_better is False else "magma"
    fig, ax = plt.subplots(figsize=(5.6, 4.8), dpi=150)
    image = ax.imshow(grid, vmin=low, vmax=high, cmap=cmap, origin="lower", aspect="equal")
    ax.set_xticks(range(len(cols)), [str(c) for c in cols])
    ax.set_yticks(range(len(rows)), [str(r) for r in rows])
    name_b = result.data["model"].get("b", {}).get("name", "model B")
    ax.set_xlabel(f"layer of {name_b}")
    ax.set_ylabel(f"layer of {result.model}")
    # the registry's label speaks of a language against English; a cell is a pair of layers
    label = entry.label.replace("xx vs en", "layer vs layer")
    fig.colorbar(image, ax=ax, label=label)
    ax.set_title(f"{metric}: {result.model} vs {name_b}", fontsize=9)
    fig.tight_layout()
    return _save(fig, out_path)
