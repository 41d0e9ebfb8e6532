"""Figure 7: what kind of change in the geometry carries the change in retrieval.

Per layer, pooled over languages, the change in xx->en accuracy as measured and after centring,
whitening, a cross-fitted orthogonal map and a cross-fitted linear map, each with its 95%
interval (the compare result's ``decomposition``; nothing is recomputed). Where the lines part,
the transform undoes the change; where they stay with the raw change, it survives it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from align.compare import decomposition as dec
from align.errors import AlignError
from align.probes.transforms import WORDS
from align.report.plots import legend_outside, legend_width, styles
from align.report.style import COLUMN, _figure, _finish, styled
from align.results import as_result


@styled
def decomposition(result: dict[str, Any], out: Path, model: str | None = None) -> Path:
    """Figure 7: per layer, the pooled change in xx->en accuracy as measured and after each
    transform (centring, whitening, cross-fitted orthogonal and linear maps), 95% intervals."""
    res = as_result(result)
    found = dec.check(res.data, str(getattr(res, "path", None) or "results"))
    model = model or (res.compared[0] if res.compared else None)
    parts = found.get(model or "")
    if not parts:
        raise AlignError(
            f"no decomposition for {model} in these results (compare with the probes, on a "
            "task of translation pairs, writes it)"
        )
    labels = {"raw": "as measured", **{p: f"after {w}" for p, w in WORDS.items()}}
    looks = [{"color": "black", "linestyle": "-", "marker": "o"}, *styles(len(WORDS))]
    fig, axes = _figure(COLUMN + legend_width(list(labels.values())), 2.3)
    ax = axes[0, 0]
    shown = [p for p in dec.PARTS if p in parts]
    offsets = {p: (i - (len(shown) - 1) / 2) * 0.08 for i, p in enumerate(shown)}
    for look, part in zip(looks, dec.PARTS, strict=True):
        if part not in parts:
            continue
        entries = sorted(parts[part], key=lambda e: e["layer"])
        x = [e["layer"] + offsets[part] for e in entries]
        y = [e["delta"] for e in entries]
        low = [e["delta"] - e["ci_low"] if e["ci_low"] is not None else 0 for e in entries]
        high = [e["ci_high"] - e["delta"] if e["ci_high"] is not None else 0 for e in entries]
        ax.errorbar(x, y, yerr=[low, high], lw=1.4 if part == "raw" else 0.9, ms=2.2,
                    capsize=0, elinewidth=0.6, label=labels[part], **look)  # fmt: skip
    ax.axhline(0, color="0.5", lw=0.5, ls=":")
    layers = sorted({e["layer"] for e in parts["raw"]})
    ax.set_xticks(layers)
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel("Δ top-1 accuracy (xx→en), pooled")
    ax.set_title(f"{model} − base: the change and what survives each transform")
    ax.grid(alpha=0.25, lw=0.4)
    legend_outside(ax)
    return _finish(fig, out)
