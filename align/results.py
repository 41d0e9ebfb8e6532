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

from align import metrics
from align._io import write_json_atomic, write_jsonl_atomic
from align.errors import AlignError

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


def score_record(layer: int, lang: str, metric: str, value: float) -> dict[str, Any]:
    """One score; ``metric`` must be registered in :mod:`align.metrics`."""
    return {
        "layer": int(layer),
        "lang": lang,
        "metric": metrics.check(metric),
        "value": float(value),
    }


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
    result: dict[str, Any], path: Path, examples: list[dict[str, Any]] | None = None
) -> Path:
    """Write ``path`` (JSON) and, when given, ``<stem>.examples.jsonl`` beside it, atomically."""
    path = Path(path)
    if examples is not None:
        examples_path = path.with_name(path.stem + ".examples.jsonl")
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
    missing = {"schema_version", "task", "model", "scores"} - set(result)
    if missing:
        raise AlignError(
            f"{path}: not an align results file (missing {', '.join(sorted(missing))})"
        )
    if result["schema_version"] != SCHEMA_VERSION:
        raise AlignError(
            f"{path}: results schema version {result['schema_version']}, this align reads "
            f"version {SCHEMA_VERSION}; re-run the command that wrote it"
        )
    return result


# the retrieval metric a comparison attributes, by task
RETRIEVAL_METRIC: dict[str, str] = {"tatoeba": "acc_xx2en", "bucc": "f1"}

# each results kind's headline metric, in order of preference (the first one present)
PRIMARY_METRICS: dict[str, tuple[str, ...]] = {
    "tatoeba": ("acc_xx2en",),
    "bucc": ("f1", "f1_dev"),
    "cka": ("cka_linear",),
    "cka_matrix": ("cka_linear",),
    "probe": ("cos_gap",),
}


def primary_metric(result: dict[str, Any]) -> str:
    """The headline metric of a results file (BUCC without test gold: the dev F1)."""
    present = {r["metric"] for r in result["scores"]}
    for metric in PRIMARY_METRICS.get(result["task"], ()):
        if metric in present:
            return metric
    if not result["scores"]:
        raise AlignError(f"results of {result['task']!r} hold no scores")
    return str(result["scores"][0]["metric"])


def score_table(result: dict[str, Any], metric: str) -> dict[str, dict[int, float]]:
    """``{lang: {layer: value}}`` for one metric."""
    table: dict[str, dict[int, float]] = {}
    for rec in result["scores"]:
        if rec["metric"] == metric:
            table.setdefault(rec["lang"], {})[rec["layer"]] = rec["value"]
    return table
