"""``align report``: one self-contained HTML page from results files (figures embedded).

The page holds the findings in plain language with their numbers, the figures (PNG, base64 in
the page: it opens from disk with no server and fetches nothing), tables, and for every run its
model fingerprints, data, resolved config, versions and git hash. Results of different
languages, sentences or layers are refused: a report puts only like-for-like numbers together.
"""

from __future__ import annotations

import base64
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from align import __version__, metrics
from align._io import write_text_atomic
from align.errors import AlignError
from align.report import figures, plots
from align.report.tables import encoding_note
from align.results import Result, primary_metric


@dataclass
class Section:
    title: str
    note: str = ""
    figures: list[dict[str, str]] = field(default_factory=list)
    tables: list[dict[str, Any]] = field(default_factory=list)


def _encoding(result: dict[str, Any]) -> dict[str, Any]:
    cfg = result.get("config", {})
    keys = ("prefix", "pooling", "max_length", "dtype", "exclude_special")
    return {k: cfg.get(k) for k in keys}


def _models(result: dict[str, Any]) -> dict[str, str | None]:
    """Every model a results file names (base, compared, cka's model B) -> its fingerprint."""
    named = [result["model"], *result.get("compared", []), result["model"].get("b") or {}]
    return {m["name"]: m.get("fingerprint") for m in named if m.get("name")}


def _layers_text(result: dict[str, Any]) -> str:
    layers = result["layers"]
    span = ", ".join(map(str, layers)) if len(layers) < 6 else f"{layers[0]}..{layers[-1]}"
    return f"layers {span} of a {result['model'].get('num_layers')}-layer model"


def check_comparable(results: dict[Path, dict[str, Any]]) -> None:
    """Refuse results of different languages, sentences, layers or encodings, or one model
    name with two sets of weights, naming the files and what differs."""
    items = list(results.items())
    first_path, first = items[0]
    facts = {
        "languages": lambda r: ", ".join(sorted(r["languages"])),
        "sentences": lambda r: (r["data"].get("dir"), r["data"].get("sizes")),
        "layers": _layers_text,
    }
    for path, result in items[1:]:
        for what, fact in facts.items():
            if result["task"] != first["task"]:
                break  # another target task (the cross-task view): its own sentences
            if fact(result) != fact(first):
                raise AlignError(
                    f"{first_path} and {path} cover different {what} "
                    f"({_short(fact(first))} vs {_short(fact(result))}); a report puts only "
                    "like-for-like results side by side"
                )
        a, b = _encoding(first), _encoding(result)
        for option, value in a.items():
            if b[option] != value:
                raise AlignError(
                    f"{first_path} and {path} were encoded differently ({option} {value!r} vs "
                    f"{b[option]!r}); a report compares numbers measured one way only"
                )
    fingerprints: dict[str, tuple[Path, str | None]] = {}
    for path, result in items:
        for name, fingerprint in _models(result).items():
            seen = fingerprints.setdefault(name, (path, fingerprint))
            if seen[1] != fingerprint:
                raise AlignError(
                    f"{seen[0]} and {path} name different weights {name!r} (fingerprints "
                    f"{str(seen[1])[:12]} vs {str(fingerprint)[:12]}); rename one checkpoint or "
                    "report them apart"
                )


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) < 80 else text[:77] + "..."


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


def delta_table(result: Result, model: str, metric: str, alpha: float) -> dict[str, Any]:
    recs = result.records(metrics.delta(metric), model=model)
    langs = sorted({r["lang"] for r in recs})
    layers = sorted({r["layer"] for r in recs})
    cell = {(r["layer"], r["lang"]): r for r in recs}
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
            row.append(_cell(f"{r['base']:.3f}→{r['tuned']:.3f} ({r['value']:+.3f}{ci}{p})", cls))
        rows.append(row)
    return {
        "title": f"{metrics.get(metric).label}: {model} vs base, per layer",
        "header": ["layer", *langs],
        "rows": rows,
        "note": f"base→tuned (Δ [95% CI] adjusted p); bold: adjusted p < {alpha}; "
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


def transplant_table(result: Result, model: str) -> dict[str, Any] | None:
    """Per language and scored layer: the block whose graft carries the largest share of the
    whole change, and the block whose restore undoes the largest share."""
    metric = result.main_metric
    grafts = result.records(metrics.graft(metric), model=model)
    if not grafts:
        return None
    restores = result.records(metrics.restore(metric), model=model)
    rows = []
    layer = max(r["layer"] for r in grafts)
    for lang in sorted({r["lang"] for r in grafts}):
        cells = [_cell(lang)]
        for recs in (grafts, restores):
            chosen = [r for r in recs if r["lang"] == lang and r["layer"] == layer]
            shared = [r for r in chosen if r.get("share") is not None]
            if not shared:
                cells.append(_cell("no change to share"))
                continue
            best = max(shared, key=lambda r: r["share"])
            cells.append(_cell(f"block {best['block']}: {100 * best['share']:.0f}%"))
        full = next(
            (r["full_delta"] for r in grafts if r["lang"] == lang and r["layer"] == layer), 0.0
        )
        cells.append(_cell(f"{full:+.3f}"))
        rows.append(cells)
    return {
        "title": f"Which block carries the change at layer {layer} (block transplant)",
        "header": ["language", "largest graft share", "largest restore share", "whole Δ"],
        "rows": rows,
        "note": "share: the block's graft change (or the change its restore undoes) over the "
        "whole change tuned − base, measured on the same subsample",
    }


def compare_section(result: Result, alpha: float) -> tuple[list[Section], list[str]]:
    sections, findings = [], []
    metric = result.main_metric
    for model in figures.compared_models(result):
        findings += result.summary(model).get("text", [])
        section = Section(f"{model} vs {result.model}", note=_convention_note(result))
        drawn = [
            (
                "retrieval_curves",
                {},
                "Retrieval by layer, all languages pooled; bands: 95% Wilson intervals.",
            ),
            (
                "gain_heatmap",
                {"model": model},
                f"Change per language and layer; * adjusted p < {alpha}.",
            ),
            (
                "attribution_scatter",
                {"model": model},
                "Change in each alignment metric against the change in retrieval; ρ: Spearman over "
                "layer x language points, with its bootstrap interval.",
            ),
            (
                "cka_matrix",
                {"model": model},
                "Layer x layer linear CKA between the base and the tuned model on the same "
                "sentences.",
            ),
            (
                "transplant_heatmap",
                {"model": model},
                "Block transplant: the share of the whole change (tuned − base, on the same "
                "subsample) that grafting one tuned block into the base reproduces (left) and "
                "that restoring one base block into the tuned model undoes (right).",
            ),
        ]
        for name, kwargs, caption in drawn:
            try:
                png = _png(figures.FIGURES[name], result, **kwargs)
            except AlignError:
                continue  # that part of compare was not run (--no-probes, no --transplant, ...)
            section.figures.append({"png": png, "caption": caption})
        section.tables.append(delta_table(result, model, metric, alpha))
        section.tables.append(spearman_table(result, model))
        shares = transplant_table(result, model)
        if shares is not None:
            section.tables.append(shares)
        sections.append(section)
    return sections, findings


def single_section(path: Path, result: Result) -> tuple[list[Section], list[str]]:
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


def _provenance(path: Path, result: dict[str, Any]) -> dict[str, Any]:
    git = result.get("git") or {}
    commit = git.get("commit", "unknown") + (" (uncommitted changes)" if git.get("dirty") else "")
    return {
        "file": str(path),
        "command": result["command"],
        "task": result["task"],
        "model": result["model"]["name"],
        "fingerprint": result["model"].get("fingerprint", "?"),
        "compared": result.get("compared", []),
        "data": result["data"].get("name", result["data"].get("dir")),
        "languages": ", ".join(result["languages"]),
        "layers": ", ".join(map(str, result["layers"])),
        "encoding": encoding_note(result),
        "git": commit,
        "created": result.get("created"),
        "elapsed": result.get("elapsed_s"),
        "config": json.dumps(result["config"], indent=2, ensure_ascii=False),
        "versions": json.dumps(result["versions"], indent=2),
    }


def refuse_duplicates(results: dict[Path, Result]) -> None:
    """The same result given twice (a file and its copy) would show every finding twice."""
    import hashlib

    seen: dict[str, Path] = {}
    for path, result in results.items():
        digest = hashlib.sha256(json.dumps(result.data, sort_keys=True).encode()).hexdigest()
        if digest in seen:
            raise AlignError(
                f"{path}: the same result as {seen[digest]} (given twice); give each result once"
            )
        seen[digest] = path


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


def render(paths: list[Path], title: str | None = None, alpha: float = 0.05) -> str:
    """The report's HTML for the results at ``paths`` (validated, like for like)."""
    import jinja2

    results = {Path(p): Result.load(p) for p in paths}
    if not results:
        raise AlignError("align report: give at least one results file")
    refuse_duplicates(results)
    check_comparable({path: r.data for path, r in results.items()})
    sections: list[Section] = []
    findings: list[str] = []
    for path, result in results.items():
        secs, found = (
            compare_section(result, alpha)
            if result.command == "compare"
            else single_section(path, result)
        )
        sections += secs
        findings += found
    sections += cross_task_section({p: r.data for p, r in results.items()}, alpha)
    first = next(iter(results.values())).data
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("align.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
    )
    return env.get_template("report.html.j2").render(
        title=title
        or f"align report — {first['model']['name']} on {first['data'].get('name', 'data')}",
        subtitle=(
            f"{len(results)} results file(s); languages {', '.join(first['languages'])}; "
            f"encoding: {encoding_note(first)}"
        ),
        findings=findings,
        sections=sections,
        runs=[_provenance(p, r.data) for p, r in results.items()],
        version=__version__,
    )


def write_report(
    paths: list[Path], out: Path, title: str | None = None, alpha: float = 0.05
) -> Path:
    out = Path(out)
    write_text_atomic(out, render(paths, title, alpha))
    return out
