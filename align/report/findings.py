"""The report's findings: one table of checkpoints (what changed significantly, the largest
change, what tracks it), the plain-language details of each checkpoint below it.

At the paper's shape (nine checkpoints, dozens of languages) a list of every checkpoint's
findings is many near-identical lines; the table puts one row per checkpoint and target task
side by side, and the details stay one click away.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from align import metrics
from align.results import Result


@dataclass
class Findings:
    table: dict[str, Any] | None = None  # rows: checkpoint x task
    lines: list[str] = field(default_factory=list)  # findings of single runs
    details: list[dict[str, Any]] = field(default_factory=list)  # per checkpoint: title, lines
    families: list[str] = field(default_factory=list)  # per table row: its p-values' family

    def finish(self) -> Findings:
        """One family for every row (one comparison's shape): named once, in the note."""
        if self.table is None:
            return self
        if len(set(self.families)) == 1 and self.families[0]:
            self.table["note"] += f"; every row's p-values: {self.families[0]}"
        else:
            for row, family in zip(self.table["rows"], self.families, strict=True):
                if family:
                    row[2]["text"] += f" ({family})"
        return self


def _where(r: dict[str, Any]) -> str:
    """A record's language, or its pair (``deu→fra``)."""
    return f"{r['lang']}→{r['lang_b']}" if "lang_b" in r else r["lang"]


def _change(r: dict[str, Any]) -> str:
    ci = Result.ci_text(r)
    return (
        f"{_where(r)} L{r['layer']}: {r['base']:.3f}→{r['tuned']:.3f} ({r['value']:+.3f}{ci}, "
        f"p_adj {Result.p_text(r['p_adjusted'])})"
    )


def _largest(result: Result, model: str, summary: dict[str, Any]) -> str:
    """The largest significant change; else the largest change, marked not significant."""
    found = [*summary.get("gains", []), *summary.get("losses", [])]
    if found:
        return _change(max(found, key=lambda r: abs(r["value"])))
    recs = [
        r
        for r in result.records(metrics.delta(result.main_metric), model=model)
        if r.get("value") == r.get("value") and r.get("base") is not None
    ]
    if not recs:
        return "—"
    r = max(recs, key=lambda r: abs(r["value"]))
    return f"{_where(r)} L{r['layer']}: {r['value']:+.3f} (not significant)"


def _tracker(result: Result, model: str, summary: dict[str, Any]) -> str:
    tracker = summary.get("best_tracker")
    if "pairs" in summary:
        return "not measured on language pairs"
    if not tracker and not result.spearman(result.main_metric, model):
        return "not measured (--no-probes)"
    if not tracker:
        return "none (every interval spans 0)"
    other = metrics.parse(tracker["metric"]).other
    return f"{other} (ρ {tracker['value']:+.2f}{Result.ci_text(tracker, 2)})"


def add_comparison(found: Findings, result: Result) -> None:
    """Each checkpoint of one compare result: a row of the table and its details."""
    if found.table is None:
        found.table = {
            "title": "Checkpoints at a glance",
            "header": [
                "checkpoint",
                "task (metric)",
                "significant gains / losses",
                "largest change",
                "best-tracking alignment measure",
            ],
            "rows": [],
            "note": "significant: adjusted p below the report's alpha, over the family each "
            "row names; L: hidden_states index; details of each checkpoint below",
        }
    metric = result.main_metric
    for model in result.compared:
        summary = result.summary(model)
        counts = f"{len(summary.get('gains', []))} / {len(summary.get('losses', []))}"
        found.families.append(summary.get("family", ""))
        cells = [model, f"{result.task} ({metric})", counts, _largest(result, model, summary)]
        cells.append(_tracker(result, model, summary))
        found.table["rows"].append([{"text": c, "cls": ""} for c in cells])
        found.details.append({"title": f"{model} vs {result.model} on {result.task}",
                              "lines": summary.get("text", [])})  # fmt: skip
