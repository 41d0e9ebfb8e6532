"""The paper's cross-task view: each checkpoint's change on a target task, one number each.

Phang et al. (2020) show intermediate tasks (rows) against target tasks (columns). One compare
run scores one target task; for each checkpoint it records here the change from the base in
the task's headline metric at one layer, pooled over languages, with its interval and its
p-value adjusted over the run's checkpoints:

- the layer: the convention's (``--preset``), else the base's best layer (its highest pooled
  score), named either way: one layer per task, chosen before any checkpoint is looked at
  (a checkpoint's own best layer would be picked on the outcome it then reports);
- accuracies: every query of every language counts once (paired 0/1 outcomes: the exact
  conditional interval and McNemar's test); BUCC: F1 of the pooled counts at each language's
  dev threshold, with a paired bootstrap over source sentences.

``table(results)`` lays the entries of several compare results (one per target task) out as
rows = checkpoints, columns = tasks, for the report and ``scripts/fig_cross_task.py``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from align.compare import stats
from align.compare.outcomes import LayerOutcomes
from align.errors import AlignError
from align.retrieval.bucc import F1Counts


class Pooled:
    """Per (model, layer): the base's and the model's outcomes in ``metric``, every language."""

    def __init__(self, metric: str) -> None:
        self.metric = metric  # the metric wanted; where it is not per sentence, BUCC's "f1"
        self.parts: dict[tuple[str, int], list[tuple[Any, Any]]] = defaultdict(list)

    def add(self, model: str, layer: int, base: LayerOutcomes, tuned: LayerOutcomes) -> None:
        if self.metric in base.per_sentence:
            pair = (base.per_sentence[self.metric], tuned.per_sentence[self.metric])
        elif base.f1 is not None and tuned.f1 is not None:
            pair, self.metric = (base.f1, tuned.f1), "f1"  # at each language's dev threshold
        else:
            return
        self.parts[(model, layer)].append(pair)

    def difference(self, model: str, layer: int, cfg) -> stats.Difference:
        pairs = self.parts[(model, layer)]
        if isinstance(pairs[0][0], F1Counts):
            base, tuned = (_concat_counts([p[i] for p in pairs]) for i in (0, 1))
            return stats.bootstrap_f1_difference(base, tuned, cfg.n_boot, cfg.confidence, cfg.seed)
        base, tuned = (np.concatenate([p[i] for p in pairs]) for i in (0, 1))
        return stats.paired_binary_difference(base, tuned, cfg.confidence)

    def base_score(self, model: str, layer: int) -> float:
        """The base's pooled score at ``layer`` (no statistics: to choose a layer)."""
        pairs = self.parts[(model, layer)]
        if isinstance(pairs[0][0], F1Counts):
            return _concat_counts([p[0] for p in pairs]).f1()
        return float(np.concatenate([p[0] for p in pairs]).mean())

    def n(self, model: str, layer: int) -> int:
        first = self.parts[(model, layer)]
        return int(sum(len(p[0].gold) if isinstance(p[0], F1Counts) else len(p[0]) for p in first))


def _concat_counts(parts: list[F1Counts]) -> F1Counts:
    fields = ("selected", "true_positive", "gold")
    return F1Counts(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields))


def entries(
    pooled: Pooled,
    models: list[str],
    layers: list[int],
    task: str,
    convention: dict[str, Any] | None,
    cfg,
) -> dict[str, dict[str, Any]]:
    """Each model's entry for this target task (see the module's docstring)."""
    out: dict[str, dict[str, Any]] = {}
    scored = {m: [ly for ly in layers if (m, ly) in pooled.parts] for m in models}
    scored = {m: found for m, found in scored.items() if found}
    if not scored:
        return out
    if convention is not None:
        layer, rule = int(convention["layer"]), convention["text"].split(":")[0]
    else:  # the base's outcomes are the same beside every checkpoint: read them beside one
        first = next(iter(scored))
        layer = max(scored[first], key=lambda ly: pooled.base_score(first, ly))
        rule = "the base's best layer"
    for model in scored:
        diff = pooled.difference(model, layer, cfg)
        out[model] = {
            "task": task,
            "metric": pooled.metric,
            "layer": layer,
            "layer_rule": rule,
            "base": diff.base,
            "tuned": diff.tuned,
            "delta": diff.delta,
            "ci_low": diff.ci_low,
            "ci_high": diff.ci_high,
            "ci_method": diff.method,
            "p_value": diff.p_value,
            "n": pooled.n(model, layer),
        }
    tested = [e for e in out.values() if e["p_value"] is not None]
    for entry, p in zip(tested, stats.adjust([e["p_value"] for e in tested], cfg.correction),
                        strict=True):  # fmt: skip
        entry["p_adjusted"] = p
    return out


_ENTRY_FIELDS: dict[str, tuple[type | tuple[type, ...], bool, str]] = {
    # field: (types, may be null, what is expected)
    "task": (str, False, "a string"),
    "metric": (str, False, "a string"),
    "layer": (int, False, "an integer"),
    "layer_rule": (str, False, "a string"),
    "base": ((int, float), False, "a number"),
    "tuned": ((int, float), False, "a number"),
    "delta": ((int, float), False, "a number"),
    "ci_low": ((int, float), True, "a number or null"),
    "ci_high": ((int, float), True, "a number or null"),
    "p_value": ((int, float), True, "a number or null"),
}


def check_entries(result: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """A result's ``cross_task`` field, every entry's fields checked for their types: one line
    naming the file and the field (``cross_task.ckpt.delta``) where it was edited or broken."""
    found = result.get("cross_task")
    if found is None:
        return {}
    if not isinstance(found, dict):
        raise AlignError(f"{where}: cross_task: expected an object, got {type(found).__name__}")
    for model, entry in found.items():
        if not isinstance(entry, dict):
            raise AlignError(
                f"{where}: cross_task.{model}: expected an object, got {type(entry).__name__}"
            )
        for name, (kinds, nullable, expected) in _ENTRY_FIELDS.items():
            value = entry.get(name, ...)
            ok = (value is None and nullable) or (
                isinstance(value, kinds) and not isinstance(value, bool)
            )
            if value is ... or not ok:
                got = "nothing" if value is ... else repr(value)[:40]
                raise AlignError(
                    f"{where}: cross_task.{model}.{name}: expected {expected}, got {got}"
                )
    return found


@dataclass(frozen=True)
class Table:
    """Rows (one per base and checkpoint), target tasks (columns) and their cells."""

    rows: list[tuple[str, str]]  # (base, checkpoint)
    tasks: list[str]
    cells: dict[tuple[str, str, str], dict[str, Any]]  # (base, checkpoint, task) -> entry
    bases: list[str]

    def label(self, row: tuple[str, str]) -> str:
        """The checkpoint's name; with several bases, the base it is measured from too."""
        return row[1] if len(self.bases) == 1 else f"{row[1]} (vs {row[0]})"

    def first(self, task: str) -> dict[str, Any]:
        return next(e for (_, _, t), e in self.cells.items() if t == task)


def table(results: list[dict[str, Any]], paths: list[Any] | None = None) -> Table:
    """Every compare result's ``cross_task`` entries laid out as rows (base, checkpoint) x
    target tasks; each entry checked (:func:`check_entries`). A checkpoint and task given by
    two results is refused naming both files; results of different bases each keep their own
    rows, labelled with their base."""
    paths = list(paths) if paths is not None else [f"results #{i + 1}" for i in range(len(results))]
    cells: dict[tuple[str, str, str], dict[str, Any]] = {}
    origin: dict[tuple[str, str, str], Any] = {}
    for result, path in zip(results, paths, strict=True):
        base = str(result["model"]["name"])
        for model, entry in check_entries(result, str(path)).items():
            key = (base, model, entry["task"])
            if key in cells:
                raise AlignError(
                    f"{path}: {model} on {entry['task']} (vs {base}) is also in {origin[key]}; "
                    "give each checkpoint's comparison on a task once"
                )
            cells[key], origin[key] = entry, path
    rows = list(dict.fromkeys((b, m) for b, m, _ in cells))
    tasks = list(dict.fromkeys(t for _, _, t in cells))
    return Table(rows, tasks, cells, list(dict.fromkeys(b for b, _ in rows)))


def text(results: list[dict[str, Any]], alpha: float = 0.05, paths: list[Any] | None = None) -> str:
    """The cross-task table as text: Δ [interval] per checkpoint and task, * where significant."""
    laid = table(results, paths)
    if not laid.cells:
        return ""
    lines = [f"cross-task changes from the base (pooled over languages; * adjusted p < {alpha:g}):"]
    if len(laid.bases) > 1:
        lines.append(f"  rows of {len(laid.bases)} bases, each vs its own: {', '.join(laid.bases)}")
    for task in laid.tasks:
        entry = laid.first(task)
        lines.append(f"  {task}: {entry['metric']} at hidden_states[L] ({entry['layer_rule']})")
    width = 32  # "L12 -0.555 [-0.592, -0.518]*" and room between columns
    labels = [laid.label(row) for row in laid.rows]
    first = max(24, *(len(label) + 2 for label in labels))
    lines.append(f"{'checkpoint':<{first}}" + "".join(t.rjust(width) for t in laid.tasks))
    for row, label in zip(laid.rows, labels, strict=True):
        line = f"{label:<{first}}"
        for task in laid.tasks:
            e = laid.cells.get((*row, task))
            if e is None:
                line += "-".rjust(width)
                continue
            star = "*" if (e.get("p_adjusted") is not None and e["p_adjusted"] < alpha) else ""
            ci = "" if e["ci_low"] is None else f" [{e['ci_low']:+.3f}, {e['ci_high']:+.3f}]"
            line += f"L{e['layer']} {e['delta']:+.3f}{ci}{star}".rjust(width)
        lines.append(line)
    return "\n".join(lines)
