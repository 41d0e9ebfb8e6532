"""Checks of a results file's contents: the field types every reader relies on (on load) and
that every estimate lies inside its own interval (before a result is written)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from align.errors import AlignError

_RECORD_NUMBERS = ("value", "base", "tuned", "ci_low", "ci_high", "p_value", "p_adjusted")
_RECORD_NUMBERS += ("full_delta", "share")


def _number(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def check_schema(result: dict[str, Any], path: Path | str) -> None:
    """The fields every reader relies on, with their types: one line naming the file and the
    field (``scores[12].value``) where a results file was edited or written by something else."""

    def fail(field: str, expected: str, value: Any) -> AlignError:
        shown = repr(value) if len(repr(value)) < 60 else repr(value)[:57] + "..."
        return AlignError(f"{path}: {field}: expected {expected}, got {shown}")

    for field, kind, expected in (
        ("task", str, "a string"),
        ("model", dict, "an object"),
        ("scores", list, "a list of records"),
    ):
        if not isinstance(result[field], kind):
            raise fail(field, expected, result[field])
    if not isinstance(result["model"].get("name"), str):
        raise fail("model.name", "a string", result["model"].get("name"))
    for field in ("languages", "layers"):
        if field in result and not isinstance(result[field], list):
            raise fail(field, "a list", result[field])
    for i, record in enumerate(result["scores"]):
        if not isinstance(record, dict):
            raise fail(f"scores[{i}]", "an object", record)
        if not isinstance(record.get("metric"), str):
            raise fail(f"scores[{i}].metric", "a string", record.get("metric"))
        for key in ("lang", "lang_b"):
            if key in record and not isinstance(record[key], str):
                raise fail(f"scores[{i}].{key}", "a string", record[key])
        for key in ("layer", "layer_b", "block"):
            value = record.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise fail(f"scores[{i}].{key}", "an integer", value)
        for key in _RECORD_NUMBERS:
            if key in record and not _number(record[key]):
                raise fail(f"scores[{i}].{key}", "a number", record[key])


_INTERVAL_SLACK = 1e-9  # float rounding of an interval's ends; nothing larger passes


def _outside(value: Any, low: Any, high: Any) -> bool:
    numbers = all(isinstance(v, int | float) and v == v for v in (value, low, high))
    slack = _INTERVAL_SLACK * max(1.0, abs(value) if numbers else 1.0)
    return numbers and not (low - slack <= value <= high + slack)


def check_intervals(result: dict[str, Any]) -> None:
    """Every estimate lies inside its own interval (a record's value, a cross-task entry's
    delta); otherwise nothing is written and the first such record is named: an interval that
    excludes its estimate is a defect of the method that built it, never a finding."""
    for i, r in enumerate(result.get("scores", [])):
        if _outside(r.get("value"), r.get("ci_low"), r.get("ci_high")):
            where = ", ".join(f"{k} {r[k]}" for k in ("model", "metric", "lang", "layer") if k in r)
            raise AlignError(
                f"scores[{i}] ({where}): the estimate {r['value']:.6g} lies outside its interval "
                f"[{r['ci_low']:.6g}, {r['ci_high']:.6g}] ({r.get('ci_method')}); not written "
                "(a defect of the interval's method: please report it)"
            )
    for model, e in (result.get("cross_task") or {}).items():
        if isinstance(e, dict) and _outside(e.get("delta"), e.get("ci_low"), e.get("ci_high")):
            raise AlignError(
                f"cross_task.{model}: the change {e['delta']:.6g} lies outside its interval "
                f"[{e['ci_low']:.6g}, {e['ci_high']:.6g}]; not written (please report it)"
            )
