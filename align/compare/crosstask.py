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
from typing import Any

import numpy as np

from align.compare import stats
from align.compare.outcomes import LayerOutcomes
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


def table(results: list[dict[str, Any]]) -> tuple[list[str], list[str], dict]:
    """(checkpoints, tasks, {(checkpoint, task): entry}) from compare results' ``cross_task``."""
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for result in results:
        for model, entry in (result.get("cross_task") or {}).items():
            cells[(model, entry["task"])] = entry
    models = list(dict.fromkeys(m for m, _ in cells))
    tasks = list(dict.fromkeys(t for _, t in cells))
    return models, tasks, cells


def text(results: list[dict[str, Any]], alpha: float = 0.05) -> str:
    """The cross-task table as text: Δ [interval] per checkpoint and task, * where significant."""
    models, tasks, cells = table(results)
    if not cells:
        return ""
    lines = [f"cross-task changes from the base (pooled over languages; * adjusted p < {alpha:g}):"]
    for task in tasks:
        entry = next(e for (m, t), e in cells.items() if t == task)
        lines.append(f"  {task}: {entry['metric']} at hidden_states[L] ({entry['layer_rule']})")
    width = 32  # "L12 -0.555 [-0.592, -0.518]*" and room between columns
    lines.append(f"{'checkpoint':<24}" + "".join(t.rjust(width) for t in tasks))
    for model in models:
        row = f"{model:<24}"
        for task in tasks:
            e = cells.get((model, task))
            if e is None:
                row += "-".rjust(width)
                continue
            star = "*" if (e.get("p_adjusted") is not None and e["p_adjusted"] < alpha) else ""
            ci = "" if e["ci_low"] is None else f" [{e['ci_low']:+.3f}, {e['ci_high']:+.3f}]"
            row += f"L{e['layer']} {e['delta']:+.3f}{ci}{star}".rjust(width)
        lines.append(row)
    return "\n".join(lines)
