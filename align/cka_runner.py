"""``align cka``: cross-lingual CKA per layer, or the layer x layer matrix of two checkpoints."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from align.encode import encode_layers
from align.models.loading import load_encoder
from align.probes import cka
from align.results import score_record
from align.runs import EncodeRunConfig, Prepared, finish, model_info, prepare, slug

log = logging.getLogger(__name__)


@dataclass
class CkaConfig(EncodeRunConfig):
    ckpt_b: str | None = None  # given: layer x layer matrix between ckpt and ckpt_b
    sigma_frac: float = 0.5  # RBF bandwidth, fraction of the median pairwise distance
    rbf_max_n: int = 2000  # RBF CKA uses n x n Grams: a seeded subsample above this size


@dataclass
class CkaRun:
    result: dict[str, Any]
    result_path: Path
    plot_path: Path | None


def _subsample(n: int, limit: int, seed: int) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def crosslingual_scores(prep: Prepared, cfg: CkaConfig) -> list[dict[str, Any]]:
    scores = []
    for lang in prep.langs:
        pairs = prep.data[lang]
        src, tgt = prep.embed(pairs.src), prep.embed(pairs.tgt)
        rbf_rows = _subsample(src.shape[1], cfg.rbf_max_n, cfg.seed)
        log.info("cka %s: %d layers, n=%d", lang, len(prep.layers), src.shape[1])
        for layer in prep.layers:
            x, y = src[layer], tgt[layer]
            values = {
                "cka_linear": cka.linear(x, y),
                "cka_linear_debiased": cka.linear(x, y, debiased=True),
                "cka_rbf": cka.rbf(x[rbf_rows], y[rbf_rows], sigma_frac=cfg.sigma_frac),
            }
            scores += [score_record(layer, lang, m, v) for m, v in values.items()]
    return scores


def matrix_scores(prep: Prepared, cfg: CkaConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Layer x layer linear CKA between ckpt and ckpt_b on every sentence of the data."""
    texts = list(
        dict.fromkeys(t for lang in prep.langs for t in prep.data[lang].src + prep.data[lang].tgt)
    )
    a = prep.embed(texts)
    start = time.perf_counter()
    other = load_encoder(cfg.ckpt_b, prep.encoder.device, prep.encoder.dtype)
    prep.load_s += time.perf_counter() - start
    b = encode_layers(other, texts, prep.embed.options, prep.embed.cache, prep.embed.progress)
    layers_b = [layer for layer in prep.layers if layer <= other.num_layers]
    scores = []
    for metric, debiased in (("cka_linear", False), ("cka_linear_debiased", True)):
        m = cka.matrix(a[prep.layers], b[layers_b], debiased=debiased)
        for i, la in enumerate(prep.layers):
            for j, lb in enumerate(layers_b):
                scores.append(score_record(la, "all", metric, m[i, j]) | {"layer_b": lb})
    return scores, {"b": model_info(other), "n_sentences": len(texts)}


def run_cka(cfg: CkaConfig) -> CkaRun:
    prep = prepare(cfg, "tatoeba")
    from align.report import plots

    if cfg.ckpt_b is None:
        scores, extra = crosslingual_scores(prep, cfg), None
        stem, kind = f"cka-{slug(prep.encoder.name)}", "cka"

        def plot(path: Path) -> Path:
            return plots.plot_layer_curves(path, path.with_suffix(".png"), metric="cka_linear")
    else:
        scores, extra = matrix_scores(prep, cfg)
        stem = f"cka-matrix-{slug(prep.encoder.name)}-vs-{slug(extra['b']['name'])}"
        kind = "cka_matrix"

        def plot(path: Path) -> Path:
            return plots.plot_cka_matrix(path, path.with_suffix(".png"))

    result, path, plot_path = finish(prep, "cka", kind, stem, scores, None, plot, extra)
    return CkaRun(result, path, plot_path)
