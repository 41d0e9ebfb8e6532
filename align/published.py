"""Published numbers beside measured ones: one table shipped with the package.

``align/data/published/published.csv`` holds numbers read in their sources. Each row names the
model, task, language (or ``avg``), align's metric record, the convention (``--preset``) and
what the number is scored on (split, direction, threshold rule, max length), the value in
points and the source with its table. A result measured under the same convention, with the
same model name, task and max length, prints the published value beside the measured one and
the gap; a row of another convention is never put beside it. ``ALIGN_PUBLISHED`` names
another table (a user's own, a test's). The table is read and checked whole before any model
loads: every error names the file and its line.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from align.conventions import PRESETS
from align.data.langs import XTREME, parse_langs
from align.errors import AlignError

FIELDS = (
    "model",
    "task",
    "lang",
    "metric",
    "convention",
    "split",
    "direction",
    "threshold",
    "max_length",
    "value",
    "source",
)
_KEY = ("model", "task", "lang", "metric", "convention", "split", "max_length")
# what each metric record is scored on: (task, split, direction, where the threshold is chosen)
SCORED_ON: dict[str, tuple[str, str, str, str]] = {
    "acc_en2xx": ("tatoeba", "all", "en->xx", ""),
    "acc_xx2en": ("tatoeba", "all", "xx->en", ""),
    "f1": ("bucc", "test", "", "dev"),
    "f1_dev": ("bucc", "dev", "", "dev"),
    "f1_oracle": ("bucc", "test", "", "test"),
}


def averaged(task: str) -> set[str]:
    """The languages an ``avg`` row of ``task`` averages: XTREME's, as results name them."""
    from align.retrieval import tasks

    found = tasks.find(task)
    return set(parse_langs(XTREME, found.lang_codes)) if found is not None else set()


@dataclass(frozen=True)
class Published:
    model: str
    task: str
    lang: str  # a file code, or "avg" (the mean over XTREME's languages of the task)
    metric: str  # align's record name: acc_en2xx, f1_dev, ...
    convention: str  # the --preset the number follows
    split: str  # what it is scored on: all (Tatoeba), dev or test (BUCC, XTREME's naming)
    direction: str  # en->xx / xx->en (Tatoeba), empty for BUCC
    threshold: str  # the split BUCC's threshold is chosen on, empty for Tatoeba
    max_length: int | None  # tokens per sentence the source used; None: not stated
    value: float  # points
    source: str
    line: int = 0  # where it is in its file (for messages)

    def scored_on(self) -> str:
        """``split dev, threshold chosen on dev, max length 256``: what the number is of."""
        parts = [f"split {self.split}"]
        if self.direction:
            parts.append(self.direction)
        if self.threshold:
            parts.append(f"threshold chosen on {self.threshold}")
        if self.max_length is not None:
            parts.append(f"max length {self.max_length}")
        return ", ".join(parts)


def table_path() -> tuple[Path, str]:
    """The table's path and how it was named (for messages)."""
    override = os.environ.get("ALIGN_PUBLISHED")
    if override:
        return Path(override), f"ALIGN_PUBLISHED {override}"
    path = Path(str(resources.files("align.data") / "published" / "published.csv"))
    return path, str(path)


def _text(path: Path, name: str) -> str:
    if not path.exists():
        raise AlignError(f"{name}: file not found")
    if path.is_dir():
        raise AlignError(f"{name}: is a directory, not a table")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AlignError(f"{name}: cannot be read ({exc.strerror or exc})") from exc
    if b"\x00" in raw:
        raise AlignError(f"{name}: a binary file, not a CSV table")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AlignError(f"{name}: not UTF-8 text (byte {exc.start})") from exc


def _row(fields: dict[str, str], where: str) -> Published:
    """One row, every field checked against the others."""
    metric = fields["metric"]
    if metric not in SCORED_ON:
        raise AlignError(f"{where}: metric {metric!r}: expected one of {', '.join(SCORED_ON)}")
    task, split, direction, threshold = SCORED_ON[metric]
    said = (fields["task"], fields["split"], fields["direction"], fields["threshold"])
    if said != (task, split, direction, threshold):
        raise AlignError(
            f"{where}: {metric} is {task}, split {split!r}, direction {direction!r}, threshold "
            f"on {threshold!r}; the row says task {said[0]!r}, split {said[1]!r}, direction "
            f"{said[2]!r}, threshold on {said[3]!r}"
        )
    if fields["convention"] not in PRESETS:
        raise AlignError(
            f"{where}: convention {fields['convention']!r}: expected one of {', '.join(PRESETS)}"
        )
    if not fields["source"]:
        raise AlignError(f"{where}: no source (every number says where it was read)")
    try:
        value = float(fields["value"])
    except ValueError as exc:
        raise AlignError(f"{where}: value {fields['value']!r} is not a number") from exc
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise AlignError(f"{where}: value {fields['value']!r}: expected points in [0, 100]")
    max_length = fields["max_length"]
    if max_length and not (max_length.isdigit() and int(max_length) > 0):
        raise AlignError(f"{where}: max_length {max_length!r}: expected a positive integer")
    return Published(
        **{k: fields[k] for k in ("model", "task", "lang", "metric", "convention", "split")},
        direction=direction,
        threshold=threshold,
        max_length=int(max_length) if max_length else None,
        value=value,
        source=fields["source"],
    )


def load(path: Path | None = None) -> list[Published]:
    """Every row, checked: the columns, each row's field count, the metric and what it is
    scored on, the convention, a finite value in points, a source, no row twice. Errors name
    the file and the line."""
    path, name = (Path(path), str(path)) if path is not None else table_path()
    header: list[str] | None = None
    rows: list[Published] = []
    seen: dict[tuple, int] = {}
    for number, line in enumerate(_text(path, name).splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in next(csv.reader([line]))]
        if header is None:
            if tuple(cells) != FIELDS:
                raise AlignError(f"{name}:{number}: expected the columns {', '.join(FIELDS)}")
            header = cells
            continue
        where = f"{name}:{number}"
        if len(cells) != len(FIELDS):
            raise AlignError(f"{where}: {len(cells)} fields, expected {len(FIELDS)}")
        row = _row(dict(zip(FIELDS, cells, strict=True)), where)
        key = tuple(getattr(row, k) for k in _KEY)
        if key in seen:
            raise AlignError(f"{where}: the same number as line {seen[key]} (one row each)")
        seen[key] = number
        rows.append(Published(**{**row.__dict__, "line": number}))
    if header is None:
        raise AlignError(f"{name}: no header line (expected the columns {', '.join(FIELDS)})")
    return rows


def _model_name(name: str) -> str:
    return name.rstrip("/").split("/")[-1].lower()


def _why_not(row: Published, result: dict[str, Any], langs: set[str]) -> str | None:
    """Why a row of this model, task and preset is not put beside the result (None: it is)."""
    convention = result["convention"]
    measured = convention.get("max_length")
    if row.max_length is not None and measured != row.max_length:
        return f"measured at max length {measured}, the source at {row.max_length}"
    if row.lang == "avg" and langs != averaged(row.task):
        return f"the source averages XTREME's {len(averaged(row.task))} languages"
    return None


def comparisons(result: dict[str, Any], rows: list[Published] | None = None) -> list[str]:
    """One line per row of the result's model, task and convention: published, measured (the
    convention's layer), the gap; or, where what the row is scored on differs, why not."""
    convention = result.get("convention")
    if not isinstance(convention, dict):
        return []
    rows = load() if rows is None else rows
    model, preset = _model_name(result["model"]["name"]), convention["preset"]
    scores = result["scores"]
    langs = {r["lang"] for r in scores}
    lines = []
    for row in rows:
        if (_model_name(row.model), row.task, row.convention) != (model, result["task"], preset):
            continue
        values = [
            r["value"]
            for r in scores
            if r["metric"] == row.metric and (row.lang == "avg" or r["lang"] == row.lang)
        ]
        if not values:
            continue
        label = f"published {row.metric} {row.lang}: {row.value:.1f} ({row.scored_on()}; "
        label += f"{row.source})"
        why = _why_not(row, result, langs)
        if why is not None:
            lines.append(f"{label}; not compared: {why}")
            continue
        measured = 100 * sum(values) / len(values)
        lines.append(f"{label}; measured {measured:.1f} (gap {measured - row.value:+.1f} points)")
    return lines
