"""The layer x layer linear-CKA matrix of two models as score records, one pair of layers in
memory at a time (each layer loaded when its row or column is reached)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from align.probes import cka
from align.results import score_record


class LazyLayers(Sequence):
    """Layers ``layers`` of a model, each loaded by ``load(layer)`` on access (not kept)."""

    def __init__(self, load: Callable[[int], np.ndarray], layers: list[int]) -> None:
        self._load, self._layers = load, list(layers)

    def __len__(self) -> int:
        return len(self._layers)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return LazyLayers(self._load, self._layers[i])
        return self._load(self._layers[i])


def matrix_records(
    layers_a: list[int],
    layers_b: list[int],
    load_a: Callable[[int], np.ndarray],
    load_b: Callable[[int], np.ndarray],
    lang: str = "all",
) -> list[dict[str, Any]]:
    """Layer x layer linear CKA (biased and debiased) records, ``layer`` of A, ``layer_b`` of B."""
    import torch

    scores = []
    a, b = LazyLayers(load_a, layers_a), LazyLayers(load_b, layers_b)
    # cka.matrix's product dtypes; both estimators from one pass over the pairs of layers
    both = cka.matrices(a, b, {False: torch.float32, True: torch.float64})
    for metric, debiased in (("cka_linear", False), ("cka_linear_debiased", True)):
        m = both[debiased]
        for i, la in enumerate(layers_a):
            for j, lb in enumerate(layers_b):
                scores.append(score_record(la, lang, metric, m[i, j]) | {"layer_b": lb})
    return scores
