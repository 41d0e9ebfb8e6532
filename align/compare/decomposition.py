"""What kind of change in the geometry carries a change in retrieval, pooled over languages.

For each checkpoint and layer, the change in xx->en accuracy as measured (``raw``) and after
each transform (centring, whitening, a cross-fitted orthogonal map, a cross-fitted linear map:
:mod:`align.probes.transforms`), every query of every language counted once, with the exact
conditional interval of a paired 0/1 change (descriptive: not in the p-value family). The
compare result holds it under ``decomposition``; the report draws it and the summary says, for
the layer where the raw change is largest, which kind of change carries it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from align.compare import stats
from align.compare.outcomes import LayerOutcomes
from align.errors import AlignError
from align.probes.transforms import WORDS

# the metric each part of the decomposition reads, in the order figures and text give them
PARTS = {
    "raw": "acc_xx2en",
    "centred": "acc_centered_xx2en",
    "whitened": "acc_whitened_xx2en",
    "procrustes": "acc_procrustes_xx2en",
    "linear": "acc_linear_xx2en",
}
_FIELDS = ("layer", "delta", "base", "tuned", "ci_low", "ci_high", "n")


class Decomposition:
    """Per (model, layer, part): every language's paired 0/1 outcomes, to pool at the end."""

    def __init__(self) -> None:
        self.parts: dict[tuple[str, int, str], list[tuple[np.ndarray, np.ndarray]]] = defaultdict(
            list
        )

    def add(self, model: str, layer: int, base: LayerOutcomes, tuned: LayerOutcomes) -> None:
        if not all(m in base.per_sentence for m in PARTS.values()):
            return  # a task without xx->en pairs (BUCC), or a run without the probes
        for part, metric in PARTS.items():
            pair = (base.per_sentence[metric], tuned.per_sentence[metric])
            self.parts[(model, layer, part)].append(pair)

    def finish(self, confidence: float = 0.95) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """``{model: {part: [{layer, delta, base, tuned, ci_low, ci_high, n}, ...]}}``."""
        out: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for (model, layer, part), pairs in sorted(self.parts.items()):
            base = np.concatenate([p[0] for p in pairs])
            tuned = np.concatenate([p[1] for p in pairs])
            diff = stats.paired_binary_difference(base, tuned, confidence)
            entry = {
                "layer": layer,
                "delta": diff.delta,
                "base": diff.base,
                "tuned": diff.tuned,
                "ci_low": diff.ci_low,
                "ci_high": diff.ci_high,
                "n": len(base),
            }
            out.setdefault(model, {}).setdefault(part, []).append(entry)
        return out


def check(result: dict[str, Any], where: str) -> dict[str, Any]:
    """A result's ``decomposition`` field with every entry's fields checked for their types:
    one line naming the file and the field where it was edited or broken."""
    found = result.get("decomposition") or {}
    if not isinstance(found, dict):
        raise AlignError(f"{where}: decomposition: expected an object")
    for model, parts in found.items():
        if not isinstance(parts, dict):
            raise AlignError(f"{where}: decomposition.{model}: expected an object")
        for part, entries in parts.items():
            if part not in PARTS or not isinstance(entries, list):
                raise AlignError(f"{where}: decomposition.{model}.{part}: unknown or not a list")
            for i, e in enumerate(entries):
                bad = list(_FIELDS) if not isinstance(e, dict) else [
                    f for f in _FIELDS if not isinstance(e.get(f), int | float)
                    and not (f.startswith("ci_") and e.get(f) is None)]  # fmt: skip
                if bad:
                    raise AlignError(
                        f"{where}: decomposition.{model}.{part}[{i}]: expected numbers for "
                        f"{', '.join(bad or _FIELDS)}"
                    )
    return found


def largest_change_layer(decomposed: dict[str, list[dict[str, Any]]]) -> int | None:
    """The layer where the raw change is largest (absolute), or None."""
    raw = decomposed.get("raw") or []
    return max(raw, key=lambda e: abs(e["delta"]))["layer"] if raw else None


def shares_at(decomposed: dict[str, list[dict[str, Any]]], layer: int) -> dict[str, float]:
    """Each transform's pooled change over the raw pooled change at ``layer``."""
    at = {part: {e["layer"]: e["delta"] for e in entries} for part, entries in decomposed.items()}
    raw = at.get("raw", {}).get(layer, 0.0)
    if raw == 0:
        return {}
    return {part: at[part][layer] / raw for part in WORDS if layer in at.get(part, {})}


def sentence(decomposed: dict[str, list[dict[str, Any]]]) -> str | None:
    """One sentence: at the layer of the largest change, the share that survives each transform
    and the kind of change that reading points to."""
    layer = largest_change_layer(decomposed)
    if layer is None:
        return None
    shares = shares_at(decomposed, layer)
    if not shares:
        return None
    raw = next(e["delta"] for e in decomposed["raw"] if e["layer"] == layer)
    kind = "loss" if raw < 0 else "gain"
    said = ", ".join(f"{shares[p]:.2f} survives {WORDS[p]}" for p in WORDS if p in shares)
    if shares.get("centred", 1.0) < 0.5:
        verdict = "mostly an offset between the languages, which centring removes"
    elif shares.get("whitened", 1.0) < 0.5:
        verdict = "mostly a stretch, which each language's whitening removes"
    elif shares.get("procrustes", 1.0) < 0.5:
        verdict = "mostly a rotation, which an orthogonal map learned on other pairs undoes"
    elif shares.get("linear", 1.0) < 0.5:
        verdict = "a linear distortion, which a linear map learned on other pairs undoes"
    else:
        verdict = (
            "the languages' internal structure changed, not their placement: no linear map "
            "learned on other pairs recovers it"
        )
    return f"layer {layer}: of the {kind} ({raw:+.3f}, pooled), {said}: {verdict}"
