"""Retrieval after a transform (issue 27), on synthetic embeddings with a known answer: English
random, the other language built from it by a known change, plus the same noise each time."""

from __future__ import annotations

import numpy as np
import pytest

from align.probes import transforms as tf
from align.probes.alignment import centered_correct
from align.vectors import top1

N, D, NOISE = 2000, 32, 1.0


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(7)
    en = rng.standard_normal((N, D))
    noise = NOISE * rng.standard_normal((N, D))
    rotation, _ = np.linalg.qr(rng.standard_normal((D, D)))
    stretch = np.exp(rng.standard_normal(D))  # per-direction scales from about 0.1 to 10
    return {
        "en": en,
        "reference": float(top1(en + noise, en).correct.mean()),  # en + the same noise
        "offset": en + noise + 6.0,
        "stretched": (en + noise) * stretch + 2.0,
        "rotated": (en + noise) @ rotation + 3.0,
        "unrelated": rng.standard_normal((N, D)),
    }


def _scores(xx: np.ndarray, en: np.ndarray) -> dict[str, float]:
    return {
        "raw": float(top1(xx, en).correct.mean()),
        "centred": float(centered_correct(xx, en).mean()),
        "whitened": float(tf.whitened_correct(xx, en).mean()),
        "procrustes": float(tf.mapped_correct(xx, en, "procrustes")[0].mean()),
        "linear": float(tf.mapped_correct(xx, en, "linear")[0].mean()),
    }


def test_each_change_is_undone_by_its_transform_and_not_by_weaker_ones(world) -> None:
    ref, en = world["reference"], world["en"]
    assert 0.5 < ref < 0.99  # the noise leaves room on both sides
    offset = _scores(world["offset"], en)
    assert offset["raw"] < 0.2 and offset["centred"] == pytest.approx(ref, abs=0.02)
    stretched = _scores(world["stretched"], en)
    assert stretched["whitened"] > stretched["centred"] + 0.1
    assert stretched["whitened"] == pytest.approx(ref, abs=0.05)  # shrinkage leaves a little
    assert stretched["linear"] == pytest.approx(ref, abs=0.05)
    rotated = _scores(world["rotated"], en)
    assert rotated["centred"] < 0.05 and rotated["whitened"] < 0.05
    assert rotated["procrustes"] == pytest.approx(ref, abs=0.02)
    assert rotated["linear"] == pytest.approx(ref, abs=0.03)


def test_unrelated_sentences_stay_near_chance_under_every_transform(world) -> None:
    for name, value in _scores(world["unrelated"], world["en"]).items():
        assert value < 10 / N, (name, value)  # chance is 1 / N


def test_cross_fitting_is_what_keeps_a_map_honest_with_fewer_sentences_than_dimensions() -> None:
    """200 unrelated pairs in 384 dimensions: a map fit on the very pairs it scores pairs them
    all (1.0); the cross-fitted map, fit on the other folds, stays near chance."""
    import torch

    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((200, 384)), rng.standard_normal((200, 384))
    xc, yc = torch.tensor(x - x.mean(0)), torch.tensor(y - y.mean(0))
    in_sample = tf._correct((xc @ tf._polar(xc.T @ yc)).numpy(), yc.numpy(), np.arange(200))
    assert in_sample.mean() == 1.0
    for kind in ("procrustes", "linear"):
        crossed, fit = tf.mapped_correct(x, y, kind, folds=5, seed=0)
        assert crossed.mean() < 0.05, kind
        assert fit.folds == 5 and fit.seed == 0


def test_folds_are_seeded_balanced_and_recorded() -> None:
    a, b = tf.fold_of(103, 5, 1), tf.fold_of(103, 5, 1)
    assert np.array_equal(a, b) and not np.array_equal(a, tf.fold_of(103, 5, 2))
    assert sorted(np.bincount(a)) == [20, 20, 21, 21, 21]
    x = np.random.default_rng(0).standard_normal((50, 8))
    _, fit = tf.mapped_correct(x, x + 0.1, "linear", folds=4, seed=9)
    assert fit.kind == "linear" and len(fit.ridge) == 4 and all(r > 0 for r in fit.ridge)


def test_bad_settings_are_refused() -> None:
    from align.errors import AlignError

    x = np.random.default_rng(0).standard_normal((20, 4))
    with pytest.raises(AlignError, match="map_folds 1"):
        tf.mapped_correct(x, x, folds=1)
    with pytest.raises(AlignError, match="shrinkage 0"):
        tf.whitened_correct(x, x, shrinkage=0)
    with pytest.raises(AlignError, match="no variance"):
        tf.whiten(np.ones((10, 4)))


def _bucc_split(rng, name: str, n_gold: int, n_extra: int, change) -> tuple:
    """A BUCC split: ``n_gold`` English sentences with translations (English plus noise), and
    ``n_extra`` unpaired sentences on each side; every source sentence then ``change``d (a
    language's change moves all its sentences) and the source side shuffled."""
    from align.data.xtreme import BuccSplit

    en = rng.standard_normal((n_gold + n_extra, D))
    other = rng.standard_normal((n_extra, D))
    xx = change(np.concatenate([en[:n_gold] + 0.3 * rng.standard_normal((n_gold, D)), other]))
    order = rng.permutation(len(xx))
    src_rows = np.empty(len(xx), np.int64)
    src_rows[order] = np.arange(len(xx))
    src = {f"{name}-xx-{i}": "x" for i in range(len(xx))}
    tgt = {f"{name}-en-{i}": "e" for i in range(len(en))}
    gold = [(f"{name}-xx-{src_rows[i]}", f"{name}-en-{i}") for i in range(n_gold)]
    split = BuccSplit("xx", name, src, tgt, gold)
    return split, xx[order], en


def test_bucc_f1_procrustes_recovers_a_rotation_that_raw_mining_misses() -> None:
    """A source language that is English rotated and shifted: raw mining finds nothing, mining
    after the map fit on dev's gold pairs finds about what English with the same noise finds."""
    from align.data.xtreme import gold_indices
    from align.retrieval.tasks import TaskParams, get
    from align.retrieval.tasks.bucc import BuccData

    rng = np.random.default_rng(11)
    rotation, _ = np.linalg.qr(rng.standard_normal((D, D)))
    results = {}
    for label, change in (("rotated", lambda e: e @ rotation + 3.0), ("same", lambda e: e)):
        splits, emb = {}, {}
        for name in ("dev", "test"):
            split, xx, en = _bucc_split(rng, name, 300, 300, change)
            splits[name] = split
            emb[f"{name}.src"], emb[f"{name}.tgt"] = xx, en
        data = BuccData(splits, {s: gold_indices(v) for s, v in splits.items()}, "xtreme")
        found = get("bucc").layer_outcomes(emb, data, TaskParams(transforms=True))
        results[label] = found.scores
        counts = found.f1_after["f1_procrustes"]
        assert counts.f1() == pytest.approx(found.scores["f1_procrustes"])
    assert results["rotated"]["f1"] < 0.1
    assert results["rotated"]["f1_procrustes"] > 0.9
    assert results["rotated"]["f1_procrustes"] == pytest.approx(results["same"]["f1"], abs=0.05)
    assert "f1_procrustes" not in get("bucc").layer_outcomes(emb, data, TaskParams()).scores
