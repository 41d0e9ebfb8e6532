"""Alignment probes: CKA and the per-layer measures that explain retrieval."""

from align.probes import alignment, cka

__all__ = ["alignment", "cka"]
