"""Tatoeba-style retrieval: ``src[i]`` and ``tgt[i]`` are translations; top-1 by cosine."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from align.errors import AlignError
from align.retrieval.knn import knn, normalize
from align.retrieval.margin import margin_knn


@dataclass
class DirectionResult:
    accuracy: float
    predictions: np.ndarray  # index of the retrieved target for each query
    scores: np.ndarray  # cosine (or margin) of that target


def check_pair(src: np.ndarray, tgt: np.ndarray) -> None:
    if src.ndim != 2 or tgt.ndim != 2 or src.shape != tgt.shape:
        raise AlignError(
            "parallel embeddings must be two [n, d] arrays of one shape, "
            f"got {src.shape} and {tgt.shape}"
        )


def retrieve_top1(src: np.ndarray, tgt: np.ndarray, device: str = "cpu") -> DirectionResult:
    """Nearest ``tgt`` row (cosine) of every ``src`` row; accuracy = share where it is row i."""
    check_pair(src, tgt)
    sims, ids = knn(src, tgt, 1, device=device)
    pred = ids[:, 0]
    return DirectionResult(float(np.mean(pred == np.arange(len(src)))), pred, sims[:, 0])


def tatoeba_accuracy(src: np.ndarray, tgt: np.ndarray, device: str = "cpu") -> float:
    """Top-1 accuracy of src -> tgt retrieval (XTREME reports xx -> en)."""
    return retrieve_top1(src, tgt, device).accuracy


def xsim_error(src: np.ndarray, tgt: np.ndarray, k: int = 4, device: str = "cpu") -> float:
    """xSIM: error rate of src -> tgt retrieval by ratio margin (Artetxe & Schwenk 2019)."""
    check_pair(src, tgt)
    x, y = normalize(src, "src"), normalize(tgt, "tgt")
    _, best = margin_knn(x, y, k, device=device)
    return float(np.mean(best != np.arange(len(x))))
