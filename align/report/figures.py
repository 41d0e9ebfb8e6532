"""Paper figures of a comparison, drawn from its results file only (nothing is recomputed).

Each function takes a results dict (``align compare``'s) and an output path, and writes a PNG
and a PDF beside it at one paper column (3.4 in) unless the content needs the full width.
Colours: Okabe-Ito for languages and models, a diverging blue-red map centred on zero for
changes, viridis for CKA; every axis carries the metric's registered label.

1. ``retrieval_curves``: the retrieval metric by layer for the base and each checkpoint, 95%
   intervals as bands, chance as a dotted line.
2. ``gain_heatmap``: language x layer change, cells with adjusted p < alpha marked.
3. ``cka_matrix``: layer x layer linear CKA, base vs checkpoint.
4. ``attribution_scatter``: change in each alignment metric vs change in retrieval, one point
   per language x layer, Spearman ρ and its interval in each panel.
5. ``transplant_heatmap``: block x layer graft (and restore) changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator

from align import metrics
from align.errors import AlignError
from align.report.plots import (
    MAX_LINES,
    _save,
    language_styles,
    layer_grid,
    legend_outside,
    legend_width,
    styles,
)
from align.report.style import COLUMN, FULL, _figure, _finish, styled
from align.results import Result, as_result


def _result(result: dict[str, Any] | Result) -> Result:
    return as_result(result)


def compared_models(result: dict[str, Any] | Result) -> list[str]:
    """The checkpoints of a comparison, in the order compared."""
    res = _result(result)
    if res.command != "compare":
        raise AlignError("this figure needs the results of align compare")
    return res.compared


def retrieval_metric(result: dict[str, Any] | Result) -> str:
    return _result(result).main_metric


def _chance(result: dict[str, Any]) -> float | None:
    sizes = [s.get("pairs") for s in result.get("data", {}).get("sizes", {}).values()]
    return 1 / min(sizes) if sizes and all(sizes) else None


@styled
def retrieval_curves(
    result: dict[str, Any], out: Path, lang: str = "all", metric: str | None = None
) -> Path:
    """Figure 1: the metric by layer, base (black) and each checkpoint (a style of its own),
    95% bands where three models or fewer are drawn (``lang``: one language, or ``all`` =
    every query of every language pooled); the legend beside the axes."""
    res = _result(result)
    metric = metric or res.main_metric
    models = [res.model, *compared_models(res)]
    looks = [{"color": "black", "linestyle": "-", "marker": "o"}, *styles(len(models) - 1)]
    bands = len(models) <= 3
    labels = [f"{models[0]} (base)", *models[1:]]
    fig, axes = _figure(COLUMN + legend_width(labels), 2.3)
    ax = axes[0, 0]
    for i, model in enumerate(models):
        recs = sorted(res.records(metric, model=model, lang=lang), key=lambda r: r["layer"])
        if not recs:
            raise AlignError(f"no {metric} scores for {model} ({lang}) in these results")
        x = [r["layer"] for r in recs]
        label = f"{model} (base)" if i == 0 else model
        ax.plot(x, [r["value"] for r in recs], ms=2, lw=1.4 if i == 0 else 1, label=label,
                **looks[i])  # fmt: skip
        if bands and recs[0].get("ci_low") is not None:
            ax.fill_between(x, [r["ci_low"] for r in recs], [r["ci_high"] for r in recs],
                            color=looks[i]["color"], alpha=0.15, lw=0)  # fmt: skip
    chance = _chance(res.data)
    if chance is not None and metric.startswith("acc"):
        ax.axhline(chance, color="grey", ls=":", lw=0.8, label="chance")
    entry = metrics.get(metric)
    ax.set_ylim(*entry.bounds)
    ax.set_ylabel(entry.label)
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_xticks(x)
    where = "all languages pooled" if lang == "all" else lang
    ax.set_title(f"{where}; bands: 95% CI" if bands else f"{where} ({len(models)} models)")
    legend_outside(ax)
    ax.grid(alpha=0.25, lw=0.4)
    return _finish(fig, out)


def _diverging(ax: Any, grid: np.ndarray, bound: float):
    return ax.imshow(grid, cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto", origin="lower")


@styled
def gain_heatmap(
    result: dict[str, Any],
    out: Path,
    metric: str | None = None,
    model: str | None = None,
    alpha: float = 0.05,
) -> Path:
    """Figure 2: language x layer change of ``metric``; * marks adjusted p < ``alpha``."""
    res = _result(result)
    metric = metric or res.main_metric
    model = model or compared_models(res)[0]
    recs = res.records(metrics.delta(metric), model=model)
    if not recs:
        raise AlignError(f"no {metrics.delta(metric)} records for {model} in these results")
    langs, layers, grid = res.grid(recs, "lang", "layer")
    marks = np.zeros_like(grid, dtype=bool)
    for r in recs:
        if r.get("p_adjusted") is not None and r["p_adjusted"] < alpha:
            marks[langs.index(r["lang"]), layers.index(r["layer"])] = True
    bound = float(np.nanmax(np.abs(grid))) or 1.0  # all zero: any scale shows "no change"
    fig, axes = _figure(COLUMN, 0.9 + 0.22 * len(langs))
    ax = axes[0, 0]
    image = _diverging(ax, grid, bound)
    for i in range(len(langs)):
        for j in range(len(layers)):
            if marks[i, j]:
                dark = abs(grid[i, j]) > 0.6 * bound
                ax.text(
                    j,
                    i,
                    "*",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if dark else "black",
                )
    ax.set_xticks(range(len(layers)), [str(x) for x in layers])
    ax.set_yticks(range(len(langs)), langs)
    ax.set_xlabel("layer (0 = embeddings)")
    ax.spines[:].set_visible(False)
    bar = fig.colorbar(image, ax=ax, pad=0.02, fraction=0.05)
    bar.set_label(f"Δ {metric}", fontsize=6)
    bar.ax.tick_params(labelsize=6)
    ax.set_title(f"{model} − base; * adjusted p < {alpha} ({res.config.get('correction', 'holm')})")
    return _finish(fig, out)


@styled
def cka_matrix(result: dict[str, Any], out: Path, model: str | None = None) -> Path:
    """Figure 3: layer x layer linear CKA, base layers (rows) vs checkpoint layers (columns)."""
    res = _result(result)
    model = model or compared_models(res)[0]
    recs = [r for r in res.records("cka_linear", model=model) if "layer_b" in r]
    if not recs:
        raise AlignError(f"no layer x layer CKA for {model} (compare ran with --no-cka-matrix?)")
    rows, cols, grid = layer_grid(recs)
    fig, axes = _figure(COLUMN, 2.9)
    ax = axes[0, 0]
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", origin="lower", aspect="equal")
    ax.set_xticks(range(len(cols)), [str(c) for c in cols])
    ax.set_yticks(range(len(rows)), [str(r) for r in rows])
    ax.set_xlabel(f"layer, tuned ({model})")
    ax.set_ylabel("layer, base")
    ax.spines[:].set_visible(False)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03)
    bar.set_label("linear CKA (same sentences)", fontsize=6)
    bar.ax.tick_params(labelsize=6)
    return _finish(fig, out)


@styled
def attribution_scatter(
    result: dict[str, Any],
    out: Path,
    model: str | None = None,
    alignment: list[str] | None = None,
) -> Path:
    """Figure 4: Δ alignment metric (x) vs Δ retrieval (y), one point per language x layer."""
    res = _result(result)
    model = model or compared_models(res)[0]
    retrieval = res.main_metric
    rhos = res.spearman(retrieval, model)
    chosen = alignment or sorted(rhos, key=lambda m: -abs(rhos[m]["value"]))[:6]
    if not chosen:
        raise AlignError(f"no attribution records for {model} (compare ran with --no-probes?)")
    y = {
        (r["lang"], r["layer"]): r["value"]
        for r in res.records(metrics.delta(retrieval), model=model)
    }
    langs = sorted({lang for lang, _ in y})
    by_layer = len(langs) > MAX_LINES  # more languages than colours: colour by layer instead
    looks = {} if by_layer else language_styles(langs)
    layers = sorted({layer for _, layer in y})
    ncols = min(3, len(chosen))
    nrows = -(-len(chosen) // ncols)
    width = (FULL if ncols > 1 else COLUMN) + (0 if by_layer else legend_width(langs))
    layout = {"layout": "constrained"} if by_layer else {}
    fig, axes = _figure(width, 1.9 * nrows, ncols, nrows, sharey=True, **layout)
    image = None
    for ax, other in zip(axes.flat, chosen, strict=False):
        x = {
            (r["lang"], r["layer"]): r["value"]
            for r in res.records(metrics.delta(other), model=model)
        }
        if by_layer:
            keys = [k for k in x if k in y]
            image = ax.scatter([x[k] for k in keys], [y[k] for k in keys], s=5, lw=0,
                               c=[k[1] for k in keys], cmap="viridis", vmin=min(layers),
                               vmax=max(layers))  # fmt: skip
        for lang, look in looks.items():
            keys = [k for k in x if k[0] == lang and k in y]
            ax.scatter([x[k] for k in keys], [y[k] for k in keys], s=6, color=look["color"],
                       marker=look["marker"], label=lang)  # fmt: skip
        rho = rhos.get(other)
        if rho is not None:
            ax.set_title(f"ρ = {rho['value']:+.2f}{Result.ci_text(rho, 2)}")
        ax.axhline(0, color="grey", lw=0.4)
        ax.axvline(0, color="grey", lw=0.4)
        ax.set_xlabel(metrics.get(metrics.delta(other)).label, fontsize=6)
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.grid(alpha=0.2, lw=0.3)
    for ax in list(axes.flat)[len(chosen) :]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"Δ {retrieval}")
    if by_layer:
        bar = fig.colorbar(image, ax=list(axes.flat), fraction=0.02, pad=0.01)
        bar.set_ticks(layers if len(layers) <= 13 else layers[:: -(-len(layers) // 13)])
        bar.set_label(f"layer ({len(langs)} languages, one point each)", fontsize=6)
        bar.ax.tick_params(labelsize=6)
        return _save(fig, Path(out))
    legend_outside(axes.flat[min(ncols, len(chosen)) - 1], markerscale=1.5)
    return _finish(fig, out)


def _shares(recs: list[dict[str, Any]], blocks: list[int], layers: list[int]) -> np.ndarray:
    """Per block x layer: the block's change over the whole change, both summed over languages
    (the share of the mean change); NaN where the whole change is 0."""
    moved = np.zeros((len(blocks), len(layers)))
    whole = np.zeros_like(moved)
    for r in recs:
        i, j = blocks.index(r["block"]), layers.index(r["layer"])
        sign = 1.0 if metrics.parse(r["metric"]).kind == "graft" else -1.0
        moved[i, j] += sign * r["value"]
        whole[i, j] += r["full_delta"]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(whole != 0, moved / np.where(whole != 0, whole, 1), np.nan)


def _annotate_shares(ax: Any, grid: np.ndarray, most: int = 400) -> None:
    """Each cell's share in per cent, printed on it (white on the dark ends of the scale,
    where -100% and +100% sit, so a saturated column still reads); shares beyond ±100% are
    printed as they are, on the colour of the end they pass."""
    if grid.size > most:
        return
    for (i, j), value in np.ndenumerate(grid):
        if value == value:
            dark = abs(value) > 55
            ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=3.6,
                    color="white" if dark else "0.15")  # fmt: skip


@styled
def transplant_heatmap(
    result: dict[str, Any] | Result, out: Path, model: str | None = None, lang: str = "mean"
) -> Path:
    """Figure 5: per block x layer, the share of the whole change (tuned − base, same
    subsample) that grafting the block alone reproduces, and that restoring it alone undoes
    (``lang``: one language, or ``mean``: the share of the change summed over languages)."""
    res = _result(result)
    model = model or compared_models(res)[0]
    metric = res.main_metric
    fig, axes = _figure(FULL, 2.8, 2, 1, layout="constrained")
    grids = {}
    for kind in ("graft", "restore"):
        name = metrics.graft(metric) if kind == "graft" else metrics.restore(metric)
        recs = [r for r in res.records(name, model=model) if lang == "mean" or r["lang"] == lang]
        if not recs:
            raise AlignError(
                f"no transplant records for {model} (compare ran without --transplant?)"
            )
        if any("full_delta" not in r for r in recs):
            raise AlignError("these transplant records carry no full_delta: re-run align compare")
        blocks = sorted({r["block"] for r in recs})
        layers = sorted({r["layer"] for r in recs})
        grids[kind] = (_shares(recs, blocks, layers), blocks, layers)
    for ax, (kind, (grid, blocks, layers)) in zip(axes.flat, grids.items(), strict=True):
        image = _diverging(ax, 100 * grid, 100.0)
        _annotate_shares(ax, 100 * grid)
        ax.set_xticks(range(len(layers)), [str(x) for x in layers])
        ax.set_yticks(range(len(blocks)), [str(b) for b in blocks])
        ax.set_xlabel("layer scored")
        ax.set_ylabel("block transplanted")
        ax.spines[:].set_visible(False)
        what = "base + tuned block b" if kind == "graft" else "tuned + base block b (undone)"
        ax.set_title(f"{kind}: {what}")
    bar = fig.colorbar(image, ax=list(axes.flat), fraction=0.03, pad=0.02, extend="both")
    where = "languages summed" if lang == "mean" else lang
    bar.set_label(f"% of the whole Δ {metric} ({where})", fontsize=6)
    bar.ax.tick_params(labelsize=6)
    fig.suptitle(
        f"{model}: share of the change one block carries (blank: layer < block, or no change)"
    )
    return _save(fig, Path(out))


@styled
def cross_task(
    results: list[dict[str, Any]], out: Path, alpha: float = 0.05, paths: list[Any] | None = None
) -> Path:
    """Figure 6: each checkpoint's change on each target task (the paper's cross-task view),
    one panel per task, one row per checkpoint (named; with several bases, with its base), the
    95% interval as a line; a filled marker and * where the adjusted p < ``alpha``."""
    from align.compare.crosstask import table

    laid = table(results, paths)
    if not laid.cells:
        raise AlignError("no cross-task entries in these results (align compare writes them)")
    labels = [laid.label(row) for row in laid.rows]
    n = len(laid.rows)
    fig, axes = _figure(max(COLUMN, 2.2 * len(laid.tasks)), 0.6 + 0.2 * n, len(laid.tasks))
    for ax, task in zip(axes[0], laid.tasks, strict=True):
        entries = [laid.cells.get((*row, task)) for row in laid.rows]
        for y, entry in enumerate(entries):
            if entry is None:
                continue
            p = entry.get("p_adjusted")
            sig = p is not None and p < alpha
            if entry["ci_low"] is not None:
                ax.plot([100 * entry["ci_low"], 100 * entry["ci_high"]], [y, y],
                        color="0.2", lw=0.8)  # fmt: skip
            ax.plot([100 * entry["delta"]], [y], "o", ms=3, mec="0.1",
                    mfc="0.1" if sig else "white", mew=0.7)  # fmt: skip
            ax.annotate(f"L{entry['layer']}{'*' if sig else ''}", (100 * entry["delta"], y),
                        xytext=(0, 2.5), textcoords="offset points", ha="center",
                        fontsize=4.5)  # fmt: skip
        ax.axvline(0, color="0.5", lw=0.5, ls=":")
        given = [e for e in entries if e is not None]
        layers = {e["layer"] for e in given}
        where = f"layer {layers.pop()}" if len(layers) == 1 else "each one's layer"
        ax.set_title(f"{task}: Δ {given[0]['metric']}, {where}")
        ax.set_xlabel("Δ from the base (points)")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=3))
        ax.set_yticks(range(n), labels if ax is axes[0][0] else [""] * n)
        ax.set_ylim(n - 0.5, -0.7)
        ax.grid(axis="y", color="0.92", lw=0.4)
    return _finish(fig, out)


from align.report.geometry import decomposition  # noqa: E402  (it draws in this style too)
from align.report.pairs import english_centricity, pair_heatmap  # noqa: E402

FIGURES = {
    "retrieval_curves": retrieval_curves,
    "gain_heatmap": gain_heatmap,
    "cka_matrix": cka_matrix,
    "attribution_scatter": attribution_scatter,
    "transplant_heatmap": transplant_heatmap,
    "decomposition": decomposition,
    "pair_heatmap": pair_heatmap,
    "english_centricity": english_centricity,
}
# figures drawn from several results files (one per target task)
MULTI_FIGURES = {"cross_task": cross_task}
