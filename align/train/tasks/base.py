"""Task specs and validated readers for the standard distributed file formats."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from align.errors import AlignError
from align.train.heads import Example, Head, HeadOptions

Split = Literal["train", "dev"]


@dataclass(frozen=True)
class TaskSpec:
    """One intermediate task: its head type, labels, files, readers and dev metric.

    ``read`` parses the task's standard distributed file; ``from_hub`` maps rows of the hub
    dataset ``hub`` (``datasets``, online) to the same examples.
    """

    name: str
    head: Head
    description: str
    files: dict[str, tuple[str, ...]]  # split -> accepted file names in the data directory
    read: Callable[[Path, str, TaskSpec], list[Example]]
    metric: str  # "accuracy", "f1" (binary), "squad" (EM/F1), "token_accuracy"
    labels: tuple[str, ...] = ()
    hub: tuple[str, str | None] | None = None  # (datasets name, config) when online
    from_hub: Callable[[Any, TaskSpec], list[Example]] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def head_options(self) -> HeadOptions:
        """What the head is told of this task (heads never see the spec itself)."""
        return HeadOptions(self.labels, self.metric, bool(self.options.get("v2", False)))


def find_file(data_dir: Path, spec: TaskSpec, split: str) -> Path:
    for name in spec.files[split]:
        path = Path(data_dir) / name
        if path.is_file():
            return path
    raise AlignError(
        f"task {spec.name}: no {split} file in {data_dir} "
        f"(expected one of: {', '.join(spec.files[split])})"
    )


def _open_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise AlignError(f"{path}: invalid UTF-8 at byte {exc.start}") from exc


def read_tsv(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a GLUE-style TSV (header line, no quoting) as (line number, row)."""
    lines = _open_text(path).splitlines()
    if not lines:
        raise AlignError(f"{path}: file is empty")
    header = lines[0].split("\t")
    missing = [c for c in required if c not in header]
    if missing:
        raise AlignError(
            f"{path}:1: missing column(s) {', '.join(missing)} (header: {', '.join(header)})"
        )
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) < len(header):
            raise AlignError(f"{path}:{number}: {len(cells)} fields, header has {len(header)}")
        yield number, dict(zip(header, cells, strict=False))


def read_csv(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    rows = list(csv.DictReader(_open_text(path).splitlines()))
    if not rows:
        raise AlignError(f"{path}: no rows")
    missing = [c for c in required if c not in rows[0]]
    if missing:
        raise AlignError(f"{path}:1: missing column(s) {', '.join(missing)}")
    yield from enumerate(rows, start=2)


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(_open_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            raise AlignError(f"{path}:{number}: invalid JSON ({exc.msg})") from exc


def field_of(row: dict[str, Any], key: str, path: Path, number: int) -> Any:
    """``row[key]`` (dotted keys descend), or an error naming the file, line and field."""
    value: Any = row
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise AlignError(f"{path}:{number}: missing field {key!r}")
        value = value[part]
    if value is None or (isinstance(value, str) and not value.strip()):
        raise AlignError(f"{path}:{number}: field {key!r} is empty")
    return value


def label_index(value: Any, spec: TaskSpec, path: Path, number: int) -> int:
    text = str(value).strip()
    if text not in spec.labels:
        raise AlignError(
            f"{path}:{number}: label {text!r} is not in task {spec.name}'s label set "
            f"({', '.join(spec.labels)})"
        )
    return spec.labels.index(text)
