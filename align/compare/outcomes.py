"""What one model does on one language's sentences, kept per sentence where a metric allows.

A metric that is a mean over sentences (retrieval accuracy, pair cosine, mutual kNN, ...) keeps
its per-sentence values so that two models' changes can be bootstrapped and tested pairwise; an
aggregate (CKA, top-PC share, language ID) keeps one value per layer. BUCC keeps, per source
sentence, the pairs it selects at the dev threshold and the gold ones among them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from align.compare.stats import F1Counts
from align.probes import alignment, cka
from align.retrieval import bucc as bucc_lib
from align.retrieval.tatoeba import xsim_errors
from align.vectors import top1

PerLayer = dict[int, np.ndarray]


@dataclass
class Outcomes:
    """One model on one language: per-sentence values and aggregates, by metric and layer."""

    per_sentence: dict[str, PerLayer] = field(default_factory=dict)
    aggregate: dict[str, dict[int, float]] = field(default_factory=dict)
    f1: dict[int, F1Counts] = field(default_factory=dict)  # BUCC test, at the dev threshold
    thresholds: dict[int, float] = field(default_factory=dict)

    def put(self, metric: str, layer: int, values: np.ndarray) -> None:
        self.per_sentence.setdefault(metric, {})[layer] = np.asarray(values, np.float64)

    def put_aggregate(self, metric: str, layer: int, value: float) -> None:
        self.aggregate.setdefault(metric, {})[layer] = float(value)


def tatoeba_retrieval(
    src: np.ndarray, tgt: np.ndarray, layers: list[int], margin_k: int, device: str = "cpu"
) -> Outcomes:
    """Per sentence and layer: retrieved its translation (both directions), xSIM error."""
    out = Outcomes()
    for layer in layers:
        out.put("acc_xx2en", layer, top1(src[layer], tgt[layer], device).correct)
        out.put("acc_en2xx", layer, top1(tgt[layer], src[layer], device).correct)
        out.put("xsim_error", layer, xsim_errors(src[layer], tgt[layer], margin_k, device))
    return out


def alignment_outcomes(
    src: np.ndarray, tgt: np.ndarray, layers: list[int], knn_k: int, seed: int
) -> Outcomes:
    """The alignment probes of ``align probe`` and ``align cka`` (linear), kept per sentence."""
    out = Outcomes()
    for layer in layers:
        x, y = src[layer], tgt[layer]
        pair, rand = alignment.pair_cosines(x, y), alignment.random_cosines(x, y, seed)
        out.put("pair_cos", layer, pair)
        out.put("random_cos", layer, rand)
        out.put("cos_gap", layer, pair - rand)
        out.put(f"mknn@{knn_k}", layer, alignment.mutual_knn_overlaps(x, y, knn_k))
        xx2en, en2xx = alignment.centered_top1(x, y)
        out.put("acc_centered_xx2en", layer, xx2en.correct)
        out.put("acc_centered_en2xx", layer, en2xx.correct)
        out.put("iso_avg_cos", layer, alignment.self_cosines(x, seed))
        out.put_aggregate("cka_linear", layer, cka.linear(x, y))
        out.put_aggregate("cka_linear_debiased", layer, cka.linear(x, y, debiased=True))
        out.put_aggregate("iso_top_pc_share", layer, alignment.isotropy(x, seed).top_pc_share)
    return out


def langid_outcomes(
    by_lang: dict[str, np.ndarray], layers: list[int], test_fraction: float, seed: int
) -> Outcomes:
    """Held-out language-ID accuracy per layer (language ``all``)."""
    out = Outcomes()
    for layer in layers:
        embeddings = {lang: emb[layer] for lang, emb in by_lang.items()}
        out.put_aggregate(
            "langid_acc", layer, alignment.langid_accuracy(embeddings, test_fraction, seed)
        )
    return out


def f1_counts(
    cands: bucc_lib.Candidates, gold: set[tuple[int, int]], threshold: float, n_src: int
) -> F1Counts:
    """Per source sentence: selected pairs at ``threshold``, gold among them, gold pairs."""
    keep = cands.score >= threshold
    src, tgt = cands.src[keep], cands.tgt[keep]
    hit = np.array([(s, t) in gold for s, t in zip(src.tolist(), tgt.tolist(), strict=True)], bool)
    selected = np.bincount(src, minlength=n_src).astype(np.float64)
    true_positive = np.bincount(src[hit], minlength=n_src).astype(np.float64)
    gold_count = np.bincount([s for s, _ in gold], minlength=n_src).astype(np.float64)
    return F1Counts(selected, true_positive, gold_count)


def bucc_retrieval(
    dev: tuple[np.ndarray, np.ndarray, set[tuple[int, int]]],
    test: tuple[np.ndarray, np.ndarray, set[tuple[int, int]]],
    layers: list[int],
    mining: bucc_lib.MiningMode,
    margin_k: int,
    device: str = "cpu",
) -> Outcomes:
    """Per layer: the dev-chosen threshold, and the test F1 counts per source sentence."""
    (dev_x, dev_y, dev_gold), (test_x, test_y, test_gold) = dev, test
    out = Outcomes()
    for layer in layers:
        dev_cands = bucc_lib.mine(dev_x[layer], dev_y[layer], mining, margin_k, device)
        threshold = bucc_lib.best_threshold(dev_cands, dev_gold).threshold
        cands = bucc_lib.mine(test_x[layer], test_y[layer], mining, margin_k, device)
        out.thresholds[layer] = threshold
        out.f1[layer] = f1_counts(cands, test_gold, threshold, test_x.shape[1])
    return out
