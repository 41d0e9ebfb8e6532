"""The report's sections, each built from results files only: a comparison (figures, the change
table, what tracks the change, which block carries it), a single run, the cross-task table."""

from __future__ import annotations

import base64
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from align import metrics
from align.compare import summary
from align.errors import AlignError
from align.report import figures, plots
from align.results import Result, primary_metric


@dataclass
class Section:
    title: str
    note: str = ""
    figures: list[dict[str, str]] = field(default_factory=list)
    tables: list[dict[str, Any]] = field(default_factory=list)
    missing: str = ""  # one line: the parts of the run that were not measured, and why
    collapsed: bool = False  # shown on a click (many checkpoints)


def _p(p: float) -> str:
    """`` p=0.04``, or `` p<1e-300`` where an exact test's p underflowed to 0."""
    text = Result.p_text(p, 1)
    return f" p{text}" if text.startswith("<") else f" p={text}"


def _png(draw, source: dict[str, Any] | Path, **kwargs) -> str:
    """A figure's PNG as base64; ``draw(source, out)`` takes a results dict or file."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = draw(source, Path(tmp) / "figure.png", **kwargs)
        finally:  # a figure that refused (its part of compare was not run) is not left open
            plots.close_all()
        return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _convention_note(result: Result) -> str:
    """The named convention every number of the result follows (``--preset``), or nothing."""
    convention = result.data.get("convention")
    return str(convention["text"]) if isinstance(convention, dict) else ""


def _cell(text: str, cls: str = "") -> dict[str, str]:
    return {"text": text, "cls": cls}


COMPACT_AFTER = 6  # more languages than this: cells show Δ, the interval and p on hover


def delta_table(result: Result, model: str, metric: str, alpha: float) -> dict[str, Any]:
    recs = result.records(metrics.delta(metric), model=model)
    langs = sorted({r["lang"] for r in recs})
    layers = sorted({r["layer"] for r in recs})
    cell = {(r["layer"], r["lang"]): r for r in recs}
    compact = len(langs) > COMPACT_AFTER
    rows = []
    for layer in layers:
        row = [_cell(str(layer))]
        for lang in langs:
            r = cell.get((layer, lang))
            if r is None:
                row.append(_cell(""))
                continue
            sig = r.get("p_adjusted") is not None and r["p_adjusted"] < alpha
            ci = Result.ci_text(r)
            p_adj = r.get("p_adjusted")
            p = "" if p_adj is None else _p(p_adj)
            cls = ("sig " if sig else "") + (
                "neg" if r["value"] < 0 else "pos" if r["value"] > 0 else ""
            )
            full = f"{r['base']:.3f}→{r['tuned']:.3f} ({r['value']:+.3f}{ci}{p})"
            if compact:  # many languages: Δ in the cell, the rest on hover
                row.append({"text": f"{r['value']:+.3f}" + ("*" if sig else ""), "cls": cls,
                            "title": full})  # fmt: skip
            else:
                row.append(_cell(full, cls))
        rows.append(row)
    return {
        "title": f"{metrics.get(metric).label}: {model} vs base, per layer",
        "header": ["layer", *langs],
        "rows": rows,
        "note": (
            f"Δ (* and bold: adjusted p < {alpha}); hover a cell for base→tuned, the 95% CI and "
            "the adjusted p; "
            if compact
            else f"base→tuned (Δ [95% CI] adjusted p); bold: adjusted p < {alpha}; "
        )
        + _methods_note(recs),
    }


_METHOD_TEXT = {
    "exact-conditional": "exact conditional interval from the discordant sentences (agrees "
    "with McNemar's exact test)",
    "bca-bootstrap": "BCa paired bootstrap",
    "percentile-bootstrap": "percentile paired bootstrap",
    "median-shifted-bootstrap": "bootstrap over sentences, percentiles moved so that the "
    "replicates' median falls on the estimate (resampling attenuates a correlation)",
    "none": "no discordant sentences (no interval)",
}


def _methods_note(recs: list[dict[str, Any]]) -> str:
    used = sorted({r.get("ci_method") for r in recs if r.get("ci_method")})
    return "intervals: " + "; ".join(_METHOD_TEXT.get(m, m) for m in used) if used else ""


def spearman_table(result: Result, model: str) -> dict[str, Any]:
    recs = result.spearman(result.main_metric, model)
    order = sorted(
        recs, key=lambda m: -(recs[m]["value"] if recs[m]["value"] == recs[m]["value"] else -2)
    )
    rows = []
    for other in order:
        r = recs[other]
        ci = Result.ci_text(r, 2).strip() or "—"
        rows.append(
            [_cell(other), _cell(f"{r['value']:+.2f}"), _cell(ci), _cell(str(r["n_points"]))]
        )
    return {
        "title": "Which change in alignment tracks the change in retrieval (all languages)",
        "header": ["alignment metric", "Spearman ρ", "95% CI", "points"],
        "rows": rows,
        "note": "— : no interval (the metric is not recomputed per bootstrap resample)",
    }


def _transplant_layer(
    result: Result, model: str, lang: str, metric: str, scored: set[int], alpha: float
) -> tuple[int, str] | None:
    """Where a language's change is to be explained: the layer of its largest significant
    change that the sweep scored (and why that layer)."""
    gains, losses = summary.significant(
        result.records(metrics.delta(metric), model=model, lang=lang), metric, alpha
    )
    significant = [r for r in gains + losses if r["layer"] in scored]
    if significant:
        best = max(significant, key=lambda r: abs(r["value"]))
        return best["layer"], f"largest significant Δ ({best['value']:+.3f})"
    return None


def transplant_table(result: Result, model: str, alpha: float) -> dict[str, Any] | None:
    """Per language, at the layer of its largest significant change: the block whose graft
    carries the largest share of the whole change, and the block whose restore undoes the
    largest share. Languages without a significant change at a scored layer are named below."""
    metric = result.main_metric
    grafts = result.records(metrics.graft(metric), model=model)
    if not grafts:
        return None
    restores = result.records(metrics.restore(metric), model=model)
    scored = {r["layer"] for r in grafts}
    rows, quiet = [], []
    for lang in sorted({r["lang"] for r in grafts}):
        where = _transplant_layer(result, model, lang, metric, scored, alpha)
        if where is None:
            quiet.append(lang)
            continue
        layer, why = where
        cells = [_cell(lang), _cell(f"{layer} ({why})")]
        for recs in (grafts, restores):
            chosen = [r for r in recs if r["lang"] == lang and r["layer"] == layer]
            shared = [r for r in chosen if r.get("share") is not None]
            if not shared:
                cells.append(_cell("no change on the subsample"))
                continue
            best = max(shared, key=lambda r: r["share"])
            cells.append(_cell(f"block {best['block']}: {100 * best['share']:.0f}%"))
        full = next(
            (r["full_delta"] for r in grafts if r["lang"] == lang and r["layer"] == layer), 0.0
        )
        cells.append(_cell(f"{full:+.3f}"))
        rows.append(cells)
    note = (
        "share: the block's graft change (or the change its restore undoes) over the whole "
        "change tuned − base, measured on the same subsample"
    )
    if quiet:
        note += f"; no significant change at a layer the sweep scored: {', '.join(quiet)}"
    if not rows:
        return {"title": "Which block carries the change (block transplant)", "header": [],
                "rows": [], "note": f"No significant change at a layer the sweep scored "
                f"({', '.join(quiet)}); the figure above shows every layer."}  # fmt: skip
    return {
        "title": "Which block carries the change, where it is significant (block transplant)",
        "header": [
            "language",
            "layer",
            "largest graft share",
            "largest restore share",
            "whole Δ (subsample)",
        ],
        "rows": rows,
        "note": note,
    }


def _not_run(result: Result) -> list[str]:
    """The parts of compare the run left out, by its own flags."""
    cfg = result.config
    parts = []
    if cfg.get("probes") is False:
        parts.append("the alignment measures and what tracks the change (--no-probes)")
    if cfg.get("cka_matrix") is False:
        parts.append("the layer x layer CKA matrix (--no-cka-matrix)")
    if cfg.get("transplant") is False:
        parts.append("the block transplant (run without --transplant)")
    return parts


COLLAPSE_AFTER = 2  # more checkpoints than this: each one's section opens on a click


def _figure_or_none(name: str, result: Result, caption: str, **kwargs: Any) -> dict | None:
    try:
        return {"png": _png(figures.FIGURES[name], result, **kwargs), "caption": caption}
    except AlignError:
        return None  # that part of compare was not run (--no-probes, no --transplant, ...)


def _model_figures(result: Result, model: str, alpha: float) -> list[dict[str, str]]:
    drawn = [
        ("gain_heatmap", f"Change per language and layer; * adjusted p < {alpha}."),
        (
            "attribution_scatter",
            "Change in each alignment metric against the change in retrieval; ρ: Spearman over "
            "layer x language points, with its bootstrap interval.",
        ),
        (
            "decomposition",
            "What kind of change carries it: per layer, pooled over languages, the change in "
            "xx→en accuracy as measured and after centring, per-language whitening, and maps "
            "xx→en learned on other translation pairs (5-fold cross-fitted orthogonal and ridge "
            "maps); 95% exact intervals. A line nearer 0 than the raw change: the transform "
            "undoes that part of it; further from 0: the change is larger after it.",
        ),
        (
            "cka_matrix",
            "Layer x layer linear CKA between the base and the tuned model on the same sentences.",
        ),
        (
            "transplant_heatmap",
            "Block transplant: the share of the whole change (tuned − base, on the same "
            "subsample) that grafting one tuned block into the base reproduces (left) and that "
            "restoring one base block into the tuned model undoes (right).",
        ),
    ]
    found = [_figure_or_none(name, result, caption, model=model) for name, caption in drawn]
    return [f for f in found if f is not None]


def pair_sections(result: Result, alpha: float) -> list[Section]:
    """A comparison on a multi-way set: per checkpoint, the change of every language pair by
    layer and whether it is English-centred, with its sentence."""
    sections = []
    for model in figures.compared_models(result):
        section = Section(f"{model} vs {result.model}: every language pair")
        said = result.summary(model).get("pairs")
        section.note = said or "no English in the set: no centricity"
        drawn = [
            ("pair_heatmap", f"Change in top-1 accuracy of every ordered pair (row → column) by "
             f"layer, languages ordered by family and script; * adjusted p < {alpha}."),
            ("english_centricity", "Mean change of the pairs with English and without it, and "
             "their difference (95% interval: sentences resampled, the same for every pair)."),
        ]  # fmt: skip
        found = [_figure_or_none(name, result, caption, model=model) for name, caption in drawn]
        section.figures = [f for f in found if f is not None]
        sections.append(section)
    return sections


def compare_section(result: Result, alpha: float) -> list[Section]:
    """The comparison: every model's retrieval by layer once, then one section per checkpoint
    (its changes, what tracks them, which block carries them); collapsed beyond two."""
    if any("lang_b" in r for r in result.data["scores"]):
        return pair_sections(result, alpha)
    metric = result.main_metric
    models = figures.compared_models(result)
    bands = "bands: 95% Wilson intervals" if len(models) <= 2 else "no bands at this many models"
    overview = Section(
        f"{result.task}: {result.model} and {len(models)} checkpoint(s)",
        note=_convention_note(result),
    )
    curves = _figure_or_none(
        "retrieval_curves", result, f"Retrieval by layer, all languages pooled; {bands}."
    )
    overview.figures += [curves] if curves is not None else []
    if left_out := _not_run(result):
        overview.missing = "Not in this comparison: " + "; ".join(left_out) + "."
    sections = [overview]
    for model in models:
        section = Section(f"{model} vs {result.model}", collapsed=len(models) > COLLAPSE_AFTER)
        section.figures = _model_figures(result, model, alpha)
        section.tables.append(delta_table(result, model, metric, alpha))
        tracking = spearman_table(result, model)
        if tracking["rows"]:
            section.tables.append(tracking)
        shares = transplant_table(result, model, alpha)
        if shares is not None:
            section.tables.append(shares)
        sections.append(section)
    return sections


def _pair_section(path: Path, result: Result) -> tuple[list[Section], list[str]]:
    """One model on a multi-way set: its pair heatmaps by layer."""
    section = Section(f"{result.command}: {result.model} ({path.name}), every language pair")
    figure = _figure_or_none(
        "pair_heatmap",
        result,
        "Top-1 accuracy of every ordered pair (row → column) by layer, languages ordered by "
        "family and script.",
    )
    section.figures = [figure] if figure is not None else []
    if figure is None:
        section.missing = "Pair measures other than retrieval: see the results file's records."
    return [section], []


def single_section(path: Path, result: Result) -> tuple[list[Section], list[str]]:
    if any("lang_b" in r for r in result.data["scores"]):
        return _pair_section(path, result)
    metric = primary_metric(result)
    table = result.table(metric)
    findings = []
    for lang, values in sorted(table.items()):
        best = max(values, key=values.get)
        findings.append(
            f"{result.model}, {lang}: {metric} peaks at layer {best} "
            f"({values[best]:.3f}); last layer {values[max(values)]:.3f}"
        )
    section = Section(
        f"{result.command}: {result.model} ({path.name})", note=_convention_note(result)
    )
    if result.command == "probe":
        section.figures.append(
            {
                "png": _png(plots.plot_probe_panels, path),
                "caption": "Alignment probes by layer.",
            }
        )
    elif result.task == "cka_matrix":
        section.figures.append(
            {"png": _png(plots.plot_cka_matrix, path), "caption": "Layer x layer CKA."}
        )
    else:
        section.figures.append(
            {
                "png": _png(plots.plot_layer_curves, path, metric=metric),
                "caption": metrics.get(metric).label,
            }
        )
    return [section], findings[:6]


def cross_task_section(results: dict[Path, dict[str, Any]], alpha: float) -> list[Section]:
    """The paper's view: checkpoints (rows) x target tasks (columns), each the change from the
    base at its task's layer, with interval and adjusted p; several bases keep their own rows."""
    from align.compare.crosstask import table

    data, paths = list(results.values()), list(results)
    laid = table(data, paths)
    if not laid.cells:
        return []
    rows = []
    for row in laid.rows:
        cells = [_cell(laid.label(row))]
        for task in laid.tasks:
            e = laid.cells.get((*row, task))
            if e is None:
                cells.append(_cell("—"))
                continue
            ci = "" if e["ci_low"] is None else f" [{e['ci_low']:+.3f}, {e['ci_high']:+.3f}]"
            p = e.get("p_adjusted")
            sig = p is not None and p < alpha
            sign = "neg" if e["delta"] < 0 else "pos" if e["delta"] > 0 else ""
            cls = ("sig " if sig else "") + sign
            text = f"L{e['layer']}: {e['base']:.3f}→{e['tuned']:.3f} ({e['delta']:+.3f}{ci}"
            cells.append(_cell(text + ("" if p is None else _p(p)) + ")", cls))
        rows.append(cells)
    heads = []
    for task in laid.tasks:
        e = laid.first(task)
        heads.append(f"{task}: Δ {e['metric']} at hidden_states[L] ({e['layer_rule']})")
    bases = (
        f" Rows of {len(laid.bases)} base models, each measured from its own base (named in "
        "the row)."
        if len(laid.bases) > 1
        else ""
    )
    figure = _png(lambda source, out: figures.cross_task(source, out, alpha, paths), data)
    return [
        Section(
            "Cross-task changes",
            note="Each checkpoint's change from the base on each target task, pooled over "
            f"languages, 95% interval; * adjusted p < {alpha} (over the checkpoints of a task)."
            + bases,
            figures=[{"png": figure, "caption": "Cross-task changes."}],
            tables=[
                {
                    "title": "Checkpoints x target tasks",
                    "header": ["checkpoint", *heads],
                    "rows": rows,
                    "note": f"base→tuned (Δ [95% CI] adjusted p); bold: adjusted p < {alpha}",
                }
            ],
        )
    ]
