"""BUCC bitext mining: ratio-margin candidates (fwd, bwd, max, intersect), threshold, P/R/F1.

The threshold is chosen on the dev split (the F1-maximising cut between two adjacent candidate
scores) and applied unchanged to test. The test-oracle F1 (threshold tuned on test itself) is an
upper bound, reported separately and never as the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from align.errors import AlignError
from align.retrieval.margin import candidate_scores, neighbourhood_means
from align.vectors import FLAT, IndexSpec, normalize

MiningMode = Literal["fwd", "bwd", "max", "intersect"]
MINING_MODES: tuple[MiningMode, ...] = ("fwd", "bwd", "max", "intersect")


@dataclass
class Candidates:
    """Mined pairs (indices into src / tgt), sorted by descending margin score."""

    src: np.ndarray
    tgt: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.score)


@dataclass(frozen=True)
class F1Counts:
    """Per source sentence: selected candidate pairs, the gold ones among them, gold pairs.

    F1 = 2 TP / (selected + gold) over any (weighted) subset of source sentences: the unit a
    paired bootstrap of BUCC F1 resamples.
    """

    selected: np.ndarray
    true_positive: np.ndarray
    gold: np.ndarray

    def f1(self, weights: np.ndarray | None = None) -> float:
        w = np.ones_like(self.gold, dtype=np.float64) if weights is None else weights
        total = w @ self.selected + w @ self.gold
        return float(2 * (w @ self.true_positive) / total) if total else 0.0


@dataclass
class PRF:
    precision: float
    recall: float
    f1: float
    threshold: float
    n_selected: int


def _sorted(src: np.ndarray, tgt: np.ndarray, score: np.ndarray) -> Candidates:
    order = np.argsort(-score, kind="stable")
    return Candidates(src[order].astype(np.int64), tgt[order].astype(np.int64), score[order])


def _check(x: np.ndarray, y: np.ndarray, mode: str) -> None:
    if mode not in MINING_MODES:
        raise AlignError(f"mode {mode!r}: expected one of {', '.join(MINING_MODES)}")
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise AlignError(f"dimension mismatch: {x.shape} vs {y.shape}")


def mine(
    x: np.ndarray,
    y: np.ndarray,
    mode: MiningMode = "max",
    k: int = 4,
    device: str = "cpu",
    precision: str = "float32",
) -> Candidates:
    """Candidate pairs between x (non-English) and y (English) by ratio margin.

    The k nearest neighbours both ways come from one pass over the similarity matrix
    (:func:`align.retrieval.onepass.bidirectional_knn`); the margins from their similarities.
    """
    from align.retrieval.onepass import bidirectional_knn, margin_candidates

    _check(x, y, mode)
    x, y = normalize(x, "src"), normalize(y, "tgt")
    forward, backward = bidirectional_knn(x, y, k, device, precision)
    fwd, bwd = margin_candidates(forward, backward)
    return _candidates(mode, forward.ids, fwd, backward.ids, bwd)


def mine_two_search(
    x: np.ndarray,
    y: np.ndarray,
    mode: MiningMode = "max",
    k: int = 4,
    device: str = "cpu",
    index: IndexSpec = FLAT,
) -> Candidates:
    """The same mining from two FAISS searches (x in y, y in x), as LASER, XTREME and stopes do:
    the reference the one-pass path is checked and benchmarked against."""
    _check(x, y, mode)
    x, y = normalize(x, "src"), normalize(y, "tgt")
    return mine_from_neighbours(x, y, mode, neighbourhood_means(x, y, k, device, index))


def mine_from_neighbours(x: np.ndarray, y: np.ndarray, mode: MiningMode, neighbours) -> Candidates:
    """Margin mining from the searches :func:`~align.retrieval.margin.neighbourhood_means` made
    on L2-normalised ``x`` and ``y`` (kept by a caller that also measures their recall)."""
    _check(x, y, mode)
    (x2y_sim, x2y_ids, x_means), (y2x_sim, y2x_ids, y_means) = neighbours
    x2y_ids = _by_similarity_then_index(x2y_sim, x2y_ids)
    y2x_ids = _by_similarity_then_index(y2x_sim, y2x_ids)
    fwd = candidate_scores(x, y, x2y_ids, x_means, y_means)
    bwd = candidate_scores(y, x, y2x_ids, y_means, x_means)
    return _candidates(mode, x2y_ids, fwd, y2x_ids, bwd)


def _by_similarity_then_index(sims: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Each row's neighbours ordered by similarity descending, then index ascending."""
    order = np.lexsort((ids, -sims), axis=1)
    return np.take_along_axis(ids, order, 1)


def _candidates(
    mode: str, x2y_ids: np.ndarray, fwd: np.ndarray, y2x_ids: np.ndarray, bwd: np.ndarray
) -> Candidates:
    """Each side's best neighbour by margin (the first of equal margins), combined by ``mode``;
    ``max`` keeps, best first, each pair whose source and target no kept pair has taken."""
    from align.retrieval.onepass import greedy_one_to_one

    xs, ys = np.arange(len(x2y_ids)), np.arange(len(y2x_ids))
    fwd_best, fwd_score = x2y_ids[xs, fwd.argmax(1)], fwd.max(1)
    bwd_best, bwd_score = y2x_ids[ys, bwd.argmax(1)], bwd.max(1)
    if mode == "fwd":
        return _sorted(xs, fwd_best, fwd_score)
    if mode == "bwd":
        return _sorted(bwd_best, ys, bwd_score)
    if mode == "intersect":
        mutual = bwd_best[fwd_best] == xs
        return _sorted(xs[mutual], fwd_best[mutual], fwd_score[mutual])
    both = _sorted(
        np.concatenate([xs, bwd_best]),
        np.concatenate([fwd_best, ys]),
        np.concatenate([fwd_score, bwd_score]),
    )
    keep = greedy_one_to_one(both.src, both.tgt)
    return Candidates(both.src[keep], both.tgt[keep], both.score[keep])


def _is_gold(cands: Candidates, gold: set[tuple[int, int]]) -> np.ndarray:
    """Per candidate: is (src, tgt) a gold pair (vectorised over pair keys)."""
    return _pairs_in(cands.src, cands.tgt, gold)


def _pairs_in(src: np.ndarray, tgt: np.ndarray, gold: set[tuple[int, int]]) -> np.ndarray:
    if not gold or len(src) == 0:
        return np.zeros(len(src), bool)
    pairs = np.array(sorted(gold), dtype=np.int64)
    width = int(max(pairs[:, 1].max(), tgt.max())) + 1
    return np.isin(src.astype(np.int64) * width + tgt, pairs[:, 0] * width + pairs[:, 1])


def _prf(tp: int, n_selected: int, n_gold: int, threshold: float) -> PRF:
    p = tp / n_selected if n_selected else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return PRF(p, r, f, threshold, n_selected)


def score_at(cands: Candidates, gold: set[tuple[int, int]], threshold: float) -> PRF:
    """P/R/F1 of the candidates whose score is >= ``threshold``."""
    if not gold:
        raise AlignError("BUCC evaluation needs at least one gold pair")
    selected = cands.score >= threshold
    tp = int(_is_gold(cands, gold)[selected].sum())
    return _prf(tp, int(selected.sum()), len(gold), threshold)


def best_threshold(cands: Candidates, gold: set[tuple[int, int]]) -> PRF:
    """The F1-maximising threshold: midway between the last kept and the first dropped score."""
    if not gold:
        raise AlignError("BUCC evaluation needs at least one gold pair")
    if len(cands) == 0:
        return _prf(0, 0, len(gold), float("inf"))
    tp = np.cumsum(_is_gold(cands, gold))
    n_sel = np.arange(1, len(cands) + 1)
    f1 = 2 * tp / (n_sel + len(gold))  # = 2PR/(P+R) with P = tp/n_sel, R = tp/n_gold
    i = int(np.argmax(f1))
    nxt = cands.score[i + 1] if i + 1 < len(cands) else cands.score[i] - 1.0
    threshold = float((cands.score[i] + nxt) / 2)
    return _prf(int(tp[i]), i + 1, len(gold), threshold)


def f1_counts(
    cands: Candidates, gold: set[tuple[int, int]], threshold: float, n_src: int
) -> F1Counts:
    """Per source sentence: selected pairs at ``threshold``, gold among them, gold pairs."""
    keep = cands.score >= threshold
    src, tgt = cands.src[keep], cands.tgt[keep]
    hit = _pairs_in(src, tgt, gold)
    selected = np.bincount(src, minlength=n_src).astype(np.float64)
    true_positive = np.bincount(src[hit], minlength=n_src).astype(np.float64)
    gold_count = np.bincount([s for s, _ in gold], minlength=n_src).astype(np.float64)
    return F1Counts(selected, true_positive, gold_count)
