"""``align cka``: cross-lingual CKA per layer, or the layer x layer matrix of two checkpoints."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from align.commands.base import RunResult, option
from align.commands.encoding import EncodeRunConfig, Prepared, finish, model_info, prepare, slug
from align.errors import AlignError
from align.probes import cka
from align.results import score_record
from align.sampling import subsample

log = logging.getLogger(__name__)

HELP = "cross-lingual CKA per layer, or a layer x layer matrix of two models (--ckpt-b)"


@dataclass
class CkaConfig(EncodeRunConfig):
    ckpt_b: str | None = option(
        None, "second model: the layer x layer CKA matrix against --ckpt on all sentences"
    )
    sigma_frac: float = option(0.5, "RBF bandwidth as a fraction of the median pairwise distance")
    rbf_max_n: int = option(2000, "RBF CKA forms n x n Grams: a seeded subsample above this")

    def validate(self) -> None:
        super().validate()
        if self.sigma_frac <= 0:
            raise AlignError(f"--sigma-frac {self.sigma_frac}: must be > 0")
        if self.rbf_max_n < 2:
            raise AlignError(f"--rbf-max-n {self.rbf_max_n}: must be at least 2")


Config = CkaConfig


def crosslingual_scores(prep: Prepared, cfg: CkaConfig) -> list[dict[str, Any]]:
    scores = []
    for lang in prep.langs:
        pairs = prep.data[lang]
        src, tgt = prep.embed(pairs.src), prep.embed(pairs.tgt)
        rbf_rows = subsample(src.shape[1], cfg.rbf_max_n, cfg.seed)
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


def all_sentences(prep: Prepared) -> list[str]:
    """Every distinct sentence of the run (both sides, all languages), in a stable order."""
    return list(
        dict.fromkeys(t for lang in prep.langs for t in prep.data[lang].src + prep.data[lang].tgt)
    )


def matrix_records(
    layers_a: list[int], layers_b: list[int], a: np.ndarray, b: np.ndarray, lang: str = "all"
) -> list[dict[str, Any]]:
    """Layer x layer linear CKA (biased and debiased) records, ``layer`` of A, ``layer_b`` of B."""
    scores = []
    for metric, debiased in (("cka_linear", False), ("cka_linear_debiased", True)):
        m = cka.matrix(a[layers_a], b[layers_b], debiased=debiased)
        for i, la in enumerate(layers_a):
            for j, lb in enumerate(layers_b):
                scores.append(score_record(la, lang, metric, m[i, j]) | {"layer_b": lb})
    return scores


def matrix_scores(prep: Prepared) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Layer x layer linear CKA between ckpt and ckpt_b on every sentence of the data."""
    texts = all_sentences(prep)
    a, b = prep.embedder(0)(texts), prep.embedder(1)(texts)
    other = prep.embedder(1).encoder
    layers_b = [layer for layer in prep.layers if layer <= other.num_layers]
    scores = matrix_records(prep.layers, layers_b, a, b)
    return scores, {"b": model_info(other), "n_sentences": len(texts)}


def run(cfg: CkaConfig) -> RunResult:
    from align.report import plots
    from align.report.tables import format_layer_table, format_matrix

    if cfg.ckpt_b is None:
        prep = prepare(cfg, "tatoeba")
        scores, extra = crosslingual_scores(prep, cfg), None
        stem, kind = f"cka-{slug(prep.encoder.name)}", "cka"

        def plot(path: Path) -> Path:
            return plots.plot_layer_curves(path, path.with_suffix(".png"), metric="cka_linear")

        def text(result: dict) -> str:
            return format_layer_table(result, "cka_linear")
    else:
        prep = prepare(cfg, "tatoeba", [cfg.ckpt, cfg.ckpt_b])
        scores, extra = matrix_scores(prep)
        stem = f"cka-matrix-{slug(prep.encoder.name)}-vs-{slug(extra['b']['name'])}"
        kind = "cka_matrix"

        def plot(path: Path) -> Path:
            return plots.plot_cka_matrix(path, path.with_suffix(".png"))

        def text(result: dict) -> str:
            return format_matrix(result, "cka_linear")

    return finish(prep, "cka", kind, stem, scores, None, plot, extra, text)
