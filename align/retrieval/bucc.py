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
from align.vectors import normalize

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


def mine(
    x: np.ndarray, y: np.ndarray, mode: MiningMode = "max", k: int = 4, device: str = "cpu"
) -> Candidates:
    """Candidate pairs between x (non-English) and y (English) by ratio margin."""
    if mode not in MINING_MODES:
        raise AlignError(f"mode {mode!r}: expected one of {', '.join(MINING_MODES)}")
    if x.shape[1] != y.shape[1]:
        raise AlignError(f"dimension mismatch: {x.shape} vs {y.shape}")
    x, y = normalize(x, "src"), normalize(y, "tgt")
    (_, x2y_ids, x_means), (_, y2x_ids, y_means) = neighbourhood_means(x, y, k, device)
    fwd = candidate_scores(x, y, x2y_ids, x_means, y_means)
    bwd = candidate_scores(y, x, y2x_ids, y_means, x_means)
    xs, ys = np.arange(len(x)), np.arange(len(y))
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
    seen_src, seen_tgt, keep = set(), set(), []
    for i, (s, t) in enumerate(zip(both.src.tolist(), both.tgt.tolist(), strict=True)):
        if s not in seen_src and t not in seen_tgt:
            seen_src.add(s)
            seen_tgt.add(t)
            keep.append(i)
    return Candidates(both.src[keep], both.tgt[keep], both.score[keep])


def _is_gold(cands: Candidates, gold: set[tuple[int, int]]) -> np.ndarray:
    return np.array(
        [(s, t) in gold for s, t in zip(cands.src.tolist(), cands.tgt.tolist(), strict=True)], bool
    )


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
    hit = np.array([(s, t) in gold for s, t in zip(src.tolist(), tgt.tolist(), strict=True)], bool)
    selected = np.bincount(src, minlength=n_src).astype(np.float64)
    true_positive = np.bincount(src[hit], minlength=n_src).astype(np.float64)
    gold_count = np.bincount([s for s, _ in gold], minlength=n_src).astype(np.float64)
    return F1Counts(selected, true_positive, gold_count)
