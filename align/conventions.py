"""Named conventions: how a code base scores a retrieval task (``--preset xtreme|jiant``).

Papers report Tatoeba and BUCC numbers under their code base's choices: which hidden state,
which pooling, with or without <s> and </s>, which retrieval direction, on which split BUCC's
threshold is chosen. A :class:`Convention` records those choices and where they were read;
each retrieval task holds its own (``RetrievalTask.conventions``), and a result measured under
one names it beside every number (``result["convention"]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from align.errors import AlignError

Preset = Literal["xtreme", "jiant"]
PRESETS: tuple[Preset, ...] = ("xtreme", "jiant")


@dataclass(frozen=True)
class Convention:
    preset: Preset
    label: str  # how tables name it: "XTREME convention", "jiant convention"
    metric: str  # the record its numbers correspond to (e.g. acc_en2xx, f1_oracle)
    direction: str | None  # "en->xx" (Tatoeba), None where it does not apply
    layers: dict[int, int]  # model depth -> hidden_states index (0 = embeddings)
    pooling: Literal["mean", "cls"]
    exclude_special: bool
    max_length: int | None  # None: the convention leaves it to the user
    threshold: str | None  # BUCC: where the threshold is chosen
    source: str  # the files the choices were read in

    def layer(self, depth: int) -> int:
        """The hidden state the convention scores for a model of ``depth`` blocks."""
        if depth not in self.layers:
            known = ", ".join(f"{d} blocks: hidden_states[{i}]" for d, i in self.layers.items())
            raise AlignError(
                f"preset {self.preset}: the {self.label} names a layer for models of "
                f"{known}, not for {depth} blocks; pass --layers instead",
                param="preset",
            )
        return self.layers[depth]

    def text(self, layer: int, max_length: int | None = None) -> str:
        """One line for tables: ``XTREME convention: en->xx, hidden_states[14], ...``."""
        parts = [self.direction] if self.direction else []
        parts.append(f"hidden_states[{layer}]")
        specials = "without" if self.exclude_special else "with"
        parts.append(f"{self.pooling} pooling {specials} <s> and </s>")
        if max_length is not None:
            parts.append(f"max length {max_length}")
        if self.threshold:
            parts.append(f"threshold chosen on {self.threshold}")
        return f"{self.label}: " + ", ".join(parts)

    def record(self, layer: int, max_length: int) -> dict[str, Any]:
        """What a result records of the convention it was measured under."""
        return {
            "preset": self.preset,
            "metric": self.metric,
            "layer": layer,
            "pooling": self.pooling,
            "exclude_special": self.exclude_special,
            "max_length": max_length,
            "direction": self.direction,
            "threshold": self.threshold,
            "text": self.text(layer, max_length),
            "source": self.source,
        }


XTREME_SOURCE = "google-research/xtreme"
JIANT_SOURCE = "nyu-mll/jiant"
