"""The one results schema shared by every command (JSON), plus per-example JSONL beside it.

Top-level fields: ``schema_version``, ``command``, ``task``, ``model`` (name, path,
fingerprint, layers, hidden size), ``checkpoint``, ``languages``, ``layers``, ``config``
(resolved), ``data``, ``versions``, ``git``, ``seed``, ``created``, ``elapsed_s``,
``timings``, ``scores`` (flat records ``{"layer", "lang", "metric", "value"}``) and
``examples`` (the JSONL file name, relative to the JSON).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from align import metrics
from align._io import JsonlWriter, restore_undefined, write_json_atomic, write_jsonl_atomic
from align.errors import AlignError
from align.result_checks import check_intervals, check_schema

SCHEMA_VERSION = 2
_PACKAGES = (
    "align",
    "torch",
    "transformers",
    "tokenizers",
    "faiss-cpu",
    "faiss-gpu-cu12",
    "numpy",
    "scikit-learn",
)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_state() -> dict[str, Any] | None:
    """Commit of the align source tree (when it is a git checkout) and whether it is dirty."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "align"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def score_record(
    layer: int, lang: str, metric: str, value: float, lang_b: str | None = None
) -> dict[str, Any]:
    """One score; ``metric`` must be registered in :mod:`align.metrics`; ``lang_b``: the second
    language of a pair's score (``lang -> lang_b``)."""
    record = {
        "layer": int(layer),
        "lang": lang,
        "metric": metrics.check(metric),
        "value": float(value),
    }
    return record if lang_b is None else record | {"lang_b": lang_b}


def build_result(
    *,
    command: str,
    task: str,
    model: dict[str, Any],
    checkpoint: str | None,
    languages: list[str],
    layers: list[int],
    config: Any,
    data: dict[str, Any],
    seed: int,
    started: dt.datetime,
    elapsed_s: float,
    timings: dict[str, float],
    scores: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "command": command,
        "task": task,
        "model": model,
        "checkpoint": checkpoint,
        "languages": languages,
        "layers": layers,
        "config": jsonable(config),
        "data": jsonable(data),
        "versions": versions(),
        "git": git_state(),
        "seed": seed,
        "created": started.isoformat(timespec="seconds"),
        "elapsed_s": round(elapsed_s, 3),
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "scores": scores,
    }


def save_result(
    result: dict[str, Any],
    path: Path,
    examples: JsonlWriter | list[dict[str, Any]] | None = None,
) -> Path:
    """Write ``path`` (JSON) and, when given, ``<stem>.examples.jsonl`` beside it, atomically.

    ``examples``: rows streamed during the run (a :class:`~align._io.JsonlWriter` targeting the
    JSONL beside ``path``, committed here) or a list of rows.
    """
    path = Path(path)
    check_intervals(result)
    if examples is not None:
        examples_path = path.with_name(path.stem + ".examples.jsonl")
        if isinstance(examples, JsonlWriter):
            if examples.target != examples_path:
                raise AlignError(f"examples go to {examples_path}, not {examples.target}")
            examples.commit()
        else:
            write_jsonl_atomic(examples_path, examples)
        result = {**result, "examples": examples_path.name}
    write_json_atomic(path, result)
    return path


def load_result(path: Path) -> dict[str, Any]:
    path = Path(path)
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise AlignError(f"{path}: results file not found") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AlignError(f"{path}: not a valid results JSON ({exc})") from exc
    if not isinstance(result, dict):
        raise AlignError(f"{path}: not an align results file (expected a JSON object)")
    for record in result.get("scores") if isinstance(result.get("scores"), list) else []:
        if isinstance(record, dict):
            restore_undefined(record)
    missing = {"schema_version", "task", "model", "scores"} - set(result)
    if missing:
        raise AlignError(
            f"{path}: not an align results file (missing {', '.join(sorted(missing))})"
        )
    version = result["schema_version"]
    if type(version) is not int or version != SCHEMA_VERSION:
        raise AlignError(
            f"{path}: results schema version {version!r}, this align reads version "
            f"{SCHEMA_VERSION} (an integer); re-run the command that wrote it"
        )
    check_schema(result, path)
    return result


# headline metrics of the results kinds that are not retrieval tasks (first one present)
_HEADLINES: dict[str, tuple[str, ...]] = {
    "cka": ("cka_linear",),
    "cka_matrix": ("cka_linear",),
    "probe": ("cos_gap",),
}


def _headline(kind: str) -> tuple[str, ...]:
    from align.retrieval import tasks

    task = tasks.find(kind)
    return task.headline if task is not None else _HEADLINES.get(kind, ())


def main_metric(kind: str) -> str | None:
    """The retrieval metric a comparison of ``kind`` (a task name) attributes and plots."""
    from align.retrieval import tasks

    task = tasks.find(kind)
    return task.main_metric if task is not None else None


def primary_metric(result: dict[str, Any] | Result) -> str:
    """The headline metric of a results file (BUCC without test gold: the dev F1)."""
    data = result.data if isinstance(result, Result) else result
    present = {r["metric"] for r in data["scores"]}
    convention = data.get("convention")
    if isinstance(convention, dict) and convention.get("metric") in present:
        return str(convention["metric"])  # the number the named convention reports
    for metric in _headline(data["task"]):
        if metric in present:
            return metric
    if not data["scores"]:
        raise AlignError(f"results of {data['task']!r} hold no scores")
    return str(data["scores"][0]["metric"])


def score_table(result: dict[str, Any] | Result, metric: str) -> dict[str, dict[int, float]]:
    """``{lang: {layer: value}}`` for one metric."""
    return as_result(result).table(metric)


_MISSING = object()


class Result:
    """A results file read through one typed view: records by field, grids, intervals.

    The JSON stays the flat schema (users' scripts read it); every reader in align (tables,
    figures, the report, the summary, the demo) goes through here instead of filtering
    ``scores`` by hand or splitting metric names apart.
    """

    def __init__(self, data: dict[str, Any], path: Path | None = None) -> None:
        self.data, self.path = data, path

    @classmethod
    def load(cls, path: Path) -> Result:
        return cls(load_result(path), Path(path))

    # ------------------------------------------------------------------ facts
    @property
    def task(self) -> str:
        return str(self.data["task"])

    @property
    def command(self) -> str:
        return str(self.data.get("command", ""))

    @property
    def model(self) -> str:
        """The (base) model's name."""
        return str(self.data["model"]["name"])

    @property
    def compared(self) -> list[str]:
        """The checkpoints of a comparison, in the order compared (empty otherwise)."""
        return [m["name"] for m in self.data.get("compared", [])]

    @property
    def languages(self) -> list[str]:
        return list(self.data["languages"])

    @property
    def layers(self) -> list[int]:
        return list(self.data["layers"])

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.data.get("config", {}))

    @property
    def main_metric(self) -> str:
        """The retrieval metric a comparison attributes: the convention's (``--preset``),
        else the task's, else the headline."""
        convention = self.data.get("convention")
        if isinstance(convention, dict) and any(
            r.get("metric") == convention.get("metric") for r in self.data["scores"]
        ):
            return str(convention["metric"])
        return main_metric(self.task) or primary_metric(self)

    def summary(self, model: str) -> dict[str, Any]:
        return dict(self.data.get("summary", {}).get(model, {}))

    # ---------------------------------------------------------------- records
    def records(
        self,
        metric: str | metrics.MetricName | None = None,
        model: Any = _MISSING,
        lang: str | None = None,
        layer: int | None = None,
        **fields: Any,
    ) -> list[dict[str, Any]]:
        """The records matching every given field (``model=None``: records without a model).
        A metric name that is neither in this result nor a registered metric is an error (a typo
        would otherwise read as "no data")."""
        name = None if metric is None else str(metric)
        if name is not None and not any(r["metric"] == name for r in self.data["scores"]):
            metrics.check(name)  # unknown: an error suggesting the close names
        out = []
        for r in self.data["scores"]:
            if name is not None and r["metric"] != name:
                continue
            if model is not _MISSING and r.get("model") != model:
                continue
            if lang is not None and r["lang"] != lang:
                continue
            if layer is not None and r.get("layer") != layer:
                continue
            if any(r.get(k) != v for k, v in fields.items()):
                continue
            out.append(r)
        return out

    def metric_names(self, kind: metrics.Kind | None = None) -> list[metrics.MetricName]:
        """Every metric present (structured), in first-seen order; ``kind`` filters."""
        seen = dict.fromkeys(r["metric"] for r in self.data["scores"])
        parsed = [metrics.parse(name) for name in seen]
        return [m for m in parsed if kind is None or m.kind == kind]

    def spearman(self, retrieval: str, model: str, lang: str = "all") -> dict[str, dict]:
        """``{alignment metric: record}`` of the Spearman records of one model."""
        return {
            str(m.other): rec
            for m in self.metric_names("spearman")
            if m.base == retrieval
            for rec in self.records(m, model=model, lang=lang)
        }

    def table(self, metric: str, model: Any = _MISSING) -> dict[str, dict[int, float]]:
        """``{lang: {layer: value}}`` of one metric."""
        table: dict[str, dict[int, float]] = {}
        for rec in self.records(metric, model=model):
            table.setdefault(rec["lang"], {})[rec["layer"]] = rec["value"]
        return table

    def grid(
        self, records: list[dict[str, Any]], rows: str, cols: str
    ) -> tuple[list[Any], list[Any], np.ndarray]:
        """(row keys, column keys, values) of ``records`` laid out by two fields (NaN: none;
        several records in one cell are averaged)."""
        row_keys = sorted({r[rows] for r in records})
        col_keys = sorted({r[cols] for r in records})
        sums = np.zeros((len(row_keys), len(col_keys)))
        counts = np.zeros_like(sums)
        for r in records:
            i, j = row_keys.index(r[rows]), col_keys.index(r[cols])
            sums[i, j] += r["value"]
            counts[i, j] += 1
        return row_keys, col_keys, np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    @staticmethod
    def ci_text(record: dict[str, Any], digits: int = 3) -> str:
        """`` [low, high]`` of a record's interval (signed), or '' when it has none."""
        if record.get("ci_low") is None:
            return ""
        return f" [{record['ci_low']:+.{digits}f}, {record['ci_high']:+.{digits}f}]"

    @staticmethod
    def p_text(p: float, digits: int = 2) -> str:
        """A p-value as text; an exact test's p that underflowed to 0.0 reads '<1e-300', not 0."""
        return "<1e-300" if p == 0 else f"{p:.{digits}g}"


def as_result(result: dict[str, Any] | Result) -> Result:
    return result if isinstance(result, Result) else Result(result)
