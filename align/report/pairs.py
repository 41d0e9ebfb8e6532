"""Figures of a multi-way set (issue 28), from results files only: per layer, a language x
language heatmap of pair accuracy (one model: ``retrieve --task parallel``) or of its change
(``compare --task parallel``; significant cells marked), languages ordered by family and script
(:mod:`align.data.families`); and the English-centricity of the change by layer."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from align import metrics
from align.data.families import describe, ordered
from align.errors import AlignError
from align.report.style import FULL, _figure, _finish, styled
from align.results import as_result


def _pair_records(res, model: str | None) -> tuple[str, list[dict[str, Any]], bool]:
    """The records drawn: a checkpoint's changes (compare) or the model's accuracies."""
    if res.command == "compare":
        model = model or (res.compared[0] if res.compared else None)
        name = metrics.delta("acc_a2b")
        recs = [r for r in res.records(name, model=model) if "lang_b" in r]
        return f"{model} − base: Δ top-1 accuracy (row → column)", recs, True
    recs = [r for r in res.records("acc_a2b") if "lang_b" in r]
    return f"{res.model}: top-1 accuracy (row → column)", recs, False


@styled
def pair_heatmap(
    result: dict[str, Any], out: Path, model: str | None = None, alpha: float = 0.05
) -> Path:
    """Figure 8: per layer, language x language top-1 accuracy (or its change, * adjusted
    p < alpha), languages ordered by family and script."""
    res = as_result(result)
    title, recs, change = _pair_records(res, model)
    if not recs:
        raise AlignError("no language-pair records in these results (the parallel task has them)")
    langs = ordered(sorted({r["lang"] for r in recs} | {r["lang_b"] for r in recs}))
    layers = sorted({r["layer"] for r in recs})
    grids = {layer: np.full((len(langs), len(langs)), np.nan) for layer in layers}
    marks: list[tuple[int, int, int]] = []
    for r in recs:
        i, j = langs.index(r["lang"]), langs.index(r["lang_b"])
        grids[r["layer"]][i, j] = r["value"] if r["value"] is not None else np.nan
        if change and r.get("p_adjusted") is not None and r["p_adjusted"] < alpha:
            marks.append((r["layer"], i, j))
    cols = min(len(layers), 5)
    rows = math.ceil(len(layers) / cols)
    side = min(0.25 * len(langs) + 0.45, (FULL - 0.8) / cols)  # one panel, inches
    fig, axes = _figure(
        cols * side + 0.8, rows * (side + 0.15) + 0.6, ncols=cols, nrows=rows,
        layout="constrained",
    )  # fmt: skip
    values = np.concatenate([g[np.isfinite(g)] for g in grids.values()])
    bound = float(np.abs(values).max()) if change and values.size else 1.0
    low, high = (-(bound or 1.0), bound or 1.0) if change else (0.0, 1.0)
    cmap = "RdBu" if change else "viridis"
    image = None
    for ax, layer in zip(axes.flat, layers, strict=False):
        image = ax.imshow(grids[layer], cmap=cmap, vmin=low, vmax=high, aspect="equal")
        for mark_layer, i, j in marks:
            if mark_layer == layer:
                dark = abs(grids[layer][i, j]) > 0.6 * (bound or 1.0)
                ax.text(j, i, "*", ha="center", va="center", fontsize=5,
                        color="white" if dark else "black")  # fmt: skip
        ax.set_title(f"layer {layer}", fontsize=6, pad=2)
        ax.set_xticks(range(len(langs)), langs, rotation=90, fontsize=4.5)
        ax.set_yticks(range(len(langs)), langs, fontsize=4.5)
        ax.tick_params(length=0, pad=1)
        ax.spines[:].set_visible(False)
    for ax in list(axes.flat)[len(layers) :]:
        ax.axis("off")
    bar = fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, aspect=30)
    bar.set_label("Δ top-1 accuracy" if change else "top-1 accuracy", fontsize=6)
    bar.ax.tick_params(labelsize=5)
    families = " | ".join(dict.fromkeys(describe(c).family for c in langs))
    note = f"; * adjusted p < {alpha}" if change else ""
    fig.suptitle(f"{title}{note}\nlanguages by family: {families}", fontsize=6)
    return _finish_colorbar(fig, out)


def _finish_colorbar(fig: Any, out: Path) -> Path:
    """Save as laid out (constrained: a colourbar shared by a grid, a two-line title)."""
    from align.report.plots import _save

    return _save(fig, Path(out))


@styled
def english_centricity(result: dict[str, Any], out: Path, model: str | None = None) -> Path:
    """Figure 9: per layer, the mean change of the pairs with English and without it, and their
    difference (the English-centricity) with its 95% bootstrap interval."""
    res = as_result(result)
    model = model or (res.compared[0] if res.compared else None)
    recs = sorted(res.records("english_centricity", model=model), key=lambda r: r["layer"])
    if not recs:
        raise AlignError(
            f"no english_centricity records for {model} (compare --task parallel on a set "
            "holding English writes them)"
        )
    layers = [r["layer"] for r in recs]
    fig, axes = _figure(3.4, 2.2)
    ax = axes[0, 0]
    value = np.array([r["value"] for r in recs])
    ax.fill_between(layers, [r["ci_low"] for r in recs], [r["ci_high"] for r in recs],
                    color="black", alpha=0.15, lw=0, label="95% interval")  # fmt: skip
    ax.plot(layers, value, color="black", marker="o", ms=2.5, lw=1.3,
            label="centricity (with − without)")  # fmt: skip
    ax.plot(layers, [r["with_english"] for r in recs], color="tab:red", lw=0.9, ls="--",
            label="pairs with English")  # fmt: skip
    ax.plot(layers, [r["without_english"] for r in recs], color="tab:blue", lw=0.9, ls=":",
            label="pairs without English")  # fmt: skip
    ax.axhline(0, color="0.5", lw=0.5)
    ax.set_xticks(layers)
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel("Δ top-1 accuracy (mean over pairs)")
    ax.set_title(f"{model} − base: is the change English-centred?")
    ax.grid(alpha=0.25, lw=0.4)
    ax.legend(frameon=False, fontsize=5)
    return _finish(fig, out)
