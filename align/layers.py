"""Layer specs: ``all``, ``8``, ``4-12``, ``-1``, ``0,6,12``.

Indices follow ``hidden_states``: 0 is the embedding layer, L the output of block L.
"""

from __future__ import annotations

import re

from align.errors import AlignError

_RANGE = re.compile(r"^(-?\d+)-(-?\d+)$")


def _index(token: str, num_layers: int, spec: str) -> int:
    value = int(token)
    resolved = value + num_layers + 1 if value < 0 else value
    if not 0 <= resolved <= num_layers:
        raise AlignError(
            f"--layers {spec!r}: layer {value} is beyond the model's depth "
            f"(valid: 0..{num_layers} or -1..-{num_layers + 1}; 0 is the embedding layer, "
            f"{num_layers} the last of {num_layers} transformer layers)"
        )
    return resolved


def parse_layers(spec: str, num_layers: int) -> list[int]:
    """Resolve a layer spec against a model with ``num_layers`` transformer blocks."""
    spec = spec.strip()
    if spec == "all":
        return list(range(num_layers + 1))
    layers: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        match = _RANGE.match(part)
        if match:
            lo, hi = (_index(g, num_layers, spec) for g in match.groups())
            if lo > hi:
                raise AlignError(f"--layers {spec!r}: empty range {part!r}")
            layers.extend(range(lo, hi + 1))
        elif re.fullmatch(r"-?\d+", part):
            layers.append(_index(part, num_layers, spec))
        else:
            raise AlignError(
                f"--layers {spec!r}: expected 'all', an index (8, -1), a range (4-12) "
                "or a comma-separated list of these"
            )
    return sorted(set(layers))
