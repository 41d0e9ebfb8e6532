"""The findings of a comparison in plain language, built from its records only.

For each tuned model: the layers and languages with significant gains and losses (adjusted p),
the alignment metric whose change tracks the retrieval change best (Spearman ρ and its CI),
how much of the changes survives centring, and the blocks whose transplant carries most of
each change.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from align import metrics
from align.results import Result


def _fmt_ci(r: dict[str, Any]) -> str:
    from align.results import Result

    return Result.ci_text(r)


def significant(
    records: list[dict[str, Any]], metric: str, alpha: float
) -> tuple[list[dict], list[dict]]:
    """(gains, losses) of ``delta_<metric>`` with adjusted p < alpha, largest first."""
    chosen = [
        r
        for r in records
        if r["metric"] == metrics.delta(metric)
        and r.get("p_adjusted") is not None
        and r["p_adjusted"] < alpha
    ]
    better = metrics.get(metric).higher_is_better is not False
    gains = [r for r in chosen if (r["value"] > 0) == better and r["value"] != 0]
    losses = [r for r in chosen if (r["value"] < 0) == better and r["value"] != 0]
    key = lambda r: -abs(r["value"])  # noqa: E731
    return sorted(gains, key=key), sorted(losses, key=key)


MIN_CHANGED_POINTS = 4  # layer x language points where both changes are non-zero


def changed_points(records: list[dict[str, Any]], retrieval: str, other: str) -> int:
    """Points (language, layer) where the retrieval change and the ``other`` change are both
    non-zero: what a rank correlation of the changes rests on."""
    deltas: dict[str, dict[tuple[str, int], float]] = {retrieval: {}, other: {}}
    for r in records:
        parsed = metrics.parse(r["metric"])
        if parsed.kind == "delta" and parsed.base in deltas and r["lang"] != "all":
            deltas[parsed.base][(r["lang"], r["layer"])] = r["value"]
    shared = deltas[retrieval].keys() & deltas[other].keys()
    return sum(1 for p in shared if deltas[retrieval][p] != 0 and deltas[other][p] != 0)


def best_tracker(records: list[dict[str, Any]], retrieval: str) -> dict[str, Any] | None:
    """The alignment metric whose change tracks the retrieval change best: the largest |ρ|
    (all languages pooled; a negative ρ tracks as well, e.g. isotropy: lower is better), among
    those whose interval excludes 0 and that rest on at least :data:`MIN_CHANGED_POINTS`
    points where both changes are non-zero. None when no metric qualifies."""
    pooled = []
    for r in records:
        if not (_is_spearman_of(r["metric"], retrieval) and r["lang"] == "all"):
            continue
        low, high = r.get("ci_low"), r.get("ci_high")
        if not (np.isfinite(r["value"]) and low is not None and high is not None):
            continue
        if not (np.isfinite(low) and np.isfinite(high) and (low > 0 or high < 0)):
            continue  # the interval spans 0: no evidence that it tracks at all
        other = metrics.parse(r["metric"]).other
        if changed_points(records, retrieval, other) >= MIN_CHANGED_POINTS:
            pooled.append(r)
    return max(pooled, key=lambda r: abs(r["value"]), default=None)


def _is_spearman_of(name: str, retrieval: str) -> bool:
    parsed = metrics.parse(name)
    return parsed.kind == "spearman" and parsed.base == retrieval


def carrying_block(
    records: list[dict[str, Any]], lang: str, layer: int, metric: str, kind: str, sign: float
) -> dict[str, Any] | None:
    """The transplant record whose block moves (lang, layer) most in direction ``sign``: a
    graft towards the full change (sufficiency), a restore back from it (necessity)."""
    name = metrics.graft(metric) if kind == "graft" else metrics.restore(metric)
    moves = [
        r for r in records if r["metric"] == name and r["lang"] == lang and r["layer"] == layer
    ]
    if not moves:
        return None
    return max(moves, key=lambda r: sign * r["value"])


def _share(r: dict[str, Any]) -> str:
    share = r.get("share")
    return "" if share is None else f" ({100 * share:.0f}% of the change on its subsample)"


def _transplant_phrase(graft: dict[str, Any], restore: dict[str, Any], sign: float) -> str:
    """Sufficiency (the best single graft) and necessity (the best single restore), in words."""
    direction = "raises" if sign > 0 else "lowers"
    if sign * graft["value"] > 0:
        first = (
            f"grafting tuned block {graft['block']} alone into the base {direction} it "
            f"{graft['value']:+.3f}{_share(graft)}"
        )
    else:
        first = f"no single tuned block grafted into the base {direction} it"
    if -sign * restore["value"] > 0:
        return (
            f"{first}; restoring base block {restore['block']} alone undoes "
            f"{restore['value']:+.3f}{_share(restore)}"
        )
    return f"{first}; no single restored base block undoes it"


def _describe(r: dict[str, Any], metric: str) -> str:
    return (
        f"{r['lang']} layer {r['layer']}: {r['base']:.3f} → {r['tuned']:.3f} "
        f"(Δ {r['value']:+.3f}{_fmt_ci(r)}, p_adj {Result.p_text(r['p_adjusted'])})"
    )


_CORRECTIONS = {"holm": "Holm", "bh": "Benjamini-Hochberg"}


def family_text(records: list[dict[str, Any]], correction: str = "holm") -> str:
    """``Holm over 26 cells x 3 metrics = 78 tests``: the family a model's p-values were
    adjusted over (every change that carries a p-value)."""
    tested = [
        r
        for r in records
        if r.get("p_adjusted") is not None and metrics.parse(r["metric"]).kind == "delta"
    ]
    cells = len({(r["lang"], r.get("layer")) for r in tested})
    kinds = len({r["metric"] for r in tested})
    name = _CORRECTIONS.get(correction, correction)
    if cells * kinds == len(tested):
        return f"{name} over {cells} cells x {kinds} metrics = {len(tested)} tests"
    return f"{name} over {len(tested)} tests ({kinds} metrics)"


def summarize(
    records: list[dict[str, Any]],
    retrieval: str,
    alpha: float,
    top: int = 5,
    correction: str = "holm",
) -> dict[str, Any]:
    """Per tuned model: findings as data (for the JSON and the report) and as text lines."""
    by_model: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_model[r["model"]].append(r)
    out: dict[str, Any] = {}
    compared = {r["model"] for r in records if metrics.parse(r["metric"]).kind == "delta"}
    for model, recs in by_model.items():
        if model not in compared:
            continue
        gains, losses = significant(recs, retrieval, alpha)
        tracker = best_tracker(recs, retrieval)
        shares = {
            (r["lang"], r["layer"]): r["value"]
            for r in recs
            if r["metric"] == "centred_share_xx2en"
        }
        lines = [f"{model} vs base — {metrics.get(retrieval).label}:"]
        tested = sum(1 for r in recs if r["metric"] == metrics.delta(retrieval))
        lines.append(
            f"  {len(gains)} significant gains and {len(losses)} losses among {tested} "
            f"layer x language cells (adjusted p < {alpha}; {family_text(recs, correction)})"
        )
        for title, group in (("gain", gains), ("loss", losses)):
            for r in group[:top]:
                text = f"  {title}: {_describe(r, retrieval)}"
                share = shares.get((r["lang"], r["layer"]))
                if share is not None and retrieval == "acc_xx2en":
                    text += f"; {100 * share:.0f}% of it remains after centring"
                sign = 1.0 if r["value"] > 0 else -1.0
                graft = carrying_block(recs, r["lang"], r["layer"], retrieval, "graft", sign)
                restore = carrying_block(recs, r["lang"], r["layer"], retrieval, "restore", -sign)
                if graft is not None and restore is not None:
                    text += "; " + _transplant_phrase(graft, restore, sign)
                lines.append(text)
        if tracker is not None:
            other = metrics.parse(tracker["metric"]).other
            lines.append(
                f"  best-tracking alignment metric: {other} (Spearman ρ {tracker['value']:+.2f}"
                f"{_fmt_ci(tracker)} over {tracker.get('n_points', '?')} layer x language points)"
            )
        elif any(_is_spearman_of(r["metric"], retrieval) for r in recs):
            lines.append(
                "  no alignment metric tracks the retrieval change: every Spearman interval "
                f"spans 0 or rests on fewer than {MIN_CHANGED_POINTS} points where both change"
            )
        out[model] = {
            "family": family_text(recs, correction),
            "gains": [_key(r) for r in gains],
            "losses": [_key(r) for r in losses],
            "best_tracker": None if tracker is None else _key(tracker),
            "text": lines,
        }
    return out


def _key(r: dict[str, Any]) -> dict[str, Any]:
    keep = ("lang", "layer", "metric", "value", "base", "tuned", "ci_low", "ci_high", "p_adjusted")
    return {k: r[k] for k in keep if k in r}
