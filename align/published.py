"""Published numbers beside measured ones: one table shipped with the package.

``align/data/published/published.csv`` holds numbers read in their sources (each row: model,
task, language or ``avg``, metric, convention, value in points, source with its table
number). A run whose model name and ``--preset`` match a row prints the published value beside
the measured one, and the gap; ``ALIGN_PUBLISHED`` names another table (a user's own, a test's).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from align.errors import AlignError

FIELDS = ("model", "task", "lang", "metric", "convention", "value", "source")


@dataclass(frozen=True)
class Published:
    model: str
    task: str
    lang: str  # a file code, or "avg" (the mean over the languages the source averages)
    metric: str
    convention: str
    value: float  # points, as printed
    source: str


def table_path() -> Path:
    override = os.environ.get("ALIGN_PUBLISHED")
    if override:
        return Path(override)
    return Path(str(resources.files("align.data") / "published" / "published.csv"))


def load(path: Path | None = None) -> list[Published]:
    """Every row, checked: all fields present, a number for value, a source for each."""
    path = path or table_path()
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if not ln.startswith("#")]
    reader = csv.DictReader(lines)
    if tuple(reader.fieldnames or ()) != FIELDS:
        raise AlignError(f"{path}: expected the columns {', '.join(FIELDS)}")
    rows = []
    for number, row in enumerate(reader, start=2):
        if not row["source"].strip():
            raise AlignError(f"{path}: row {number}: no source (every number says where)")
        try:
            value = float(row["value"])
        except ValueError as exc:
            bad = f"{path}: row {number}: value {row['value']!r} is not a number"
            raise AlignError(bad) from exc
        rows.append(Published(**{k: row[k].strip() for k in FIELDS if k != "value"}, value=value))
    return rows


def matching(result: dict[str, Any], rows: list[Published] | None = None) -> list[Published]:
    """The rows a result can be put beside: its model's name, its task and its convention."""
    convention = result.get("convention")
    if not isinstance(convention, dict):
        return []
    rows = load() if rows is None else rows
    model = result["model"]["name"]
    return [
        r
        for r in rows
        if r.model == model and r.task == result["task"] and r.convention == convention["preset"]
    ]


def comparisons(result: dict[str, Any], rows: list[Published] | None = None) -> list[str]:
    """One line per matching row: published, measured (at the convention's layer), the gap."""
    lines = []
    for row in matching(result, rows):
        values = [
            r["value"]
            for r in result["scores"]
            if r["metric"] == row.metric and (row.lang == "avg" or r["lang"] == row.lang)
        ]
        if not values:
            continue
        measured = 100 * sum(values) / len(values)
        lines.append(
            f"published {row.metric} {row.lang}: {row.value:.1f} ({row.source}); measured "
            f"{measured:.1f} (gap {measured - row.value:+.1f} points)"
        )
    return lines
