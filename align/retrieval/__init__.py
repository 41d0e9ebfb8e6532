"""Sentence retrieval: FAISS kNN, ratio margin, Tatoeba accuracy, BUCC mining, xSIM."""

from align.retrieval.bucc import MINING_MODES, Candidates, best_threshold, mine, score_at
from align.retrieval.margin import margin_knn
from align.retrieval.tatoeba import retrieve_top1, tatoeba_accuracy, xsim_error, xsim_errors
from align.vectors import knn, normalize

__all__ = [
    "MINING_MODES",
    "Candidates",
    "best_threshold",
    "knn",
    "margin_knn",
    "mine",
    "normalize",
    "retrieve_top1",
    "score_at",
    "tatoeba_accuracy",
    "xsim_error",
    "xsim_errors",
]
