"""Tatoeba-style retrieval: ``src[i]`` and ``tgt[i]`` are translations; top-1 by cosine."""

from __future__ import annotations

import numpy as np

from align.retrieval.margin import margin_knn
from align.vectors import FLAT, IndexSpec, Top1, check_pair, normalize, top1


def retrieve_top1(src: np.ndarray, tgt: np.ndarray, device: str = "cpu") -> Top1:
    """Nearest ``tgt`` row (cosine) of every ``src`` row; accuracy = share where it is row i."""
    return top1(src, tgt, device)


def tatoeba_accuracy(src: np.ndarray, tgt: np.ndarray, device: str = "cpu") -> float:
    """Top-1 accuracy of src -> tgt retrieval (XTREME reports xx -> en)."""
    return top1(src, tgt, device).accuracy


def xsim_errors(
    src: np.ndarray, tgt: np.ndarray, k: int = 4, device: str = "cpu", index: IndexSpec = FLAT
) -> np.ndarray:
    """Per query: True where ratio-margin retrieval (Artetxe & Schwenk 2019) misses row i."""
    check_pair(src, tgt)
    x, y = normalize(src, "src"), normalize(tgt, "tgt")
    _, best = margin_knn(x, y, k, device=device, index=index)
    return best != np.arange(len(x))


def xsim_error(src: np.ndarray, tgt: np.ndarray, k: int = 4, device: str = "cpu") -> float:
    """xSIM: error rate of src -> tgt retrieval by ratio margin (Artetxe & Schwenk 2019)."""
    return float(np.mean(xsim_errors(src, tgt, k, device)))
