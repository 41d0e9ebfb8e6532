"""Layer x layer matrices of two models as score records, one pair of layers in memory at a
time (each layer loaded when its row or column is reached): linear CKA (its own fast path,
with the debiased estimator), and any other aggregate measure the registry computes for
``align cka`` (SVCCA, PWCCA, CKNNA, RSA, Procrustes distances, RBF CKA)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from align import metrics
from align.metrics import ProbeParams
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


def measure_matrix_records(
    names: list[str],
    layers_a: list[int],
    layers_b: list[int],
    load_a: Callable[[int], np.ndarray],
    load_b: Callable[[int], np.ndarray],
    params: ProbeParams,
    progress: bool = True,
    lang: str = "all",
) -> list[dict[str, Any]]:
    """Layer x layer records of registered ``cka`` measures other than linear CKA (SVCCA,
    PWCCA, CKNNA, RSA, Procrustes distances, RBF CKA: :func:`matrix_measures`), each pair of
    layers computed on every sentence, one layer of A and one of B in memory at a time."""
    from align.progress import step

    chosen = [metrics.get(name) for name in names]
    scores = []
    what = f"layer x layer {', '.join(names)}: {len(layers_a)} x {len(layers_b)} layers"
    with step(what, len(layers_a) * len(layers_b), "pair", progress) as update:
        for la in layers_a:
            a = load_a(la)
            for lb in layers_b:
                b = load_b(lb)
                for metric in chosen:
                    value = float(metric.compute.fn(a, b, params))  # type: ignore[union-attr]
                    scores.append(score_record(la, lang, metric.name, value) | {"layer_b": lb})
                update(1)
    return scores


def matrix_measures() -> list[str]:
    """The measures a layer x layer matrix can hold: linear CKA (its own fast path, with the
    debiased estimator) and every aggregate the registry computes for ``cka`` on two arrays."""
    return [
        m.name
        for m in metrics.measures("cka")
        if m.compute is not None and m.compute.scope == "pair" and not m.per_sentence
        and m.name != "cka_linear_debiased"
    ]  # fmt: skip
