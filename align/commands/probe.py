"""``align probe``: the per-layer alignment measures beside CKA (see ``align.probes.alignment``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from align.commands.base import RunResult, option
from align.commands.encoding import EncodeRunConfig, finish, prepare, slug
from align.errors import AlignError
from align.probes import alignment
from align.results import score_record

log = logging.getLogger(__name__)

HELP = "per-layer alignment measures: cosine gap, mutual kNN, centring, isotropy, language ID"
ENGLISH = "eng"
TABLE_METRICS = ("cos_gap", "mknn@{k}", "acc_centered_xx2en", "langid_acc")


@dataclass
class ProbeConfig(EncodeRunConfig):
    knn_k: int = option(10, "k of the mutual kNN overlap")
    outlier_factor: float = option(
        5.0, "outlier dimension: mean |value| above this many times the median dimension's"
    )
    langid_test_fraction: float = option(0.5, "held-out share of the language-ID probe")

    def validate(self) -> None:
        super().validate()
        if self.knn_k < 1:
            raise AlignError(f"--knn-k {self.knn_k}: must be at least 1")
        if self.outlier_factor <= 1:
            raise AlignError(f"--outlier-factor {self.outlier_factor}: must be > 1")
        if not 0 < self.langid_test_fraction < 1:
            raise AlignError(
                f"--langid-test-fraction {self.langid_test_fraction}: must lie in (0, 1)"
            )


Config = ProbeConfig


def isotropy_records(
    layer: int, lang: str, emb: np.ndarray, seed: int, outlier_factor: float
) -> tuple[list, dict]:
    iso = alignment.isotropy(emb, seed, outlier_factor)
    values = {
        "iso_avg_cos": iso.avg_cos,
        "iso_top_pc_share": iso.top_pc_share,
        "iso_n_outlier_dims": len(iso.outlier_dims),
        "iso_max_dim_ratio": iso.max_dim_ratio,
    }
    example = {"lang": lang, "layer": layer, "outlier_dims": iso.outlier_dims}
    return [score_record(layer, lang, m, v) for m, v in values.items()], example


def layer_records(
    layer: int, embedded: dict[str, tuple[np.ndarray, np.ndarray]], cfg: ProbeConfig
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every probe at one layer: per language, English's isotropy, and the language-ID probe."""
    scores: list[dict[str, Any]] = []
    examples: list[dict[str, Any]] = []
    for lang, (src, tgt) in embedded.items():
        x, y = src[layer], tgt[layer]
        values = alignment.cosine_gap(x, y, cfg.seed) | alignment.centered_accuracy(x, y)
        values[f"mknn@{cfg.knn_k}"] = alignment.mutual_knn(x, y, cfg.knn_k)
        scores += [score_record(layer, lang, m, v) for m, v in values.items()]
        iso_scores, iso_example = isotropy_records(layer, lang, x, cfg.seed, cfg.outlier_factor)
        scores += iso_scores
        examples.append(iso_example)
    english = next(iter(embedded.values()))[1][layer]
    iso_scores, iso_example = isotropy_records(
        layer, ENGLISH, english, cfg.seed, cfg.outlier_factor
    )
    by_lang = {lang: src[layer] for lang, (src, _) in embedded.items()} | {ENGLISH: english}
    acc = alignment.langid_accuracy(by_lang, cfg.langid_test_fraction, cfg.seed)
    scores += [*iso_scores, score_record(layer, "all", "langid_acc", acc)]
    return scores, [*examples, iso_example]


def run(cfg: ProbeConfig) -> RunResult:
    from align.report.tables import format_layer_table

    prep = prepare(cfg, "tatoeba")
    smallest = min(prep.data_info["sizes"][lang]["pairs"] for lang in prep.langs)
    if cfg.knn_k >= smallest:
        raise AlignError(f"--knn-k {cfg.knn_k}: must be below the smallest set ({smallest})")
    embedded = {
        lang: (prep.embed(prep.data[lang].src), prep.embed(prep.data[lang].tgt))
        for lang in prep.langs
    }
    scores: list[dict[str, Any]] = []
    examples: list[dict[str, Any]] = []
    for layer in prep.layers:
        log.info("probe layer %d", layer)
        layer_scores, layer_examples = layer_records(layer, embedded, cfg)
        scores += layer_scores
        examples += layer_examples

    def plot(path: Path) -> Path:
        from align.report.plots import plot_probe_panels

        return plot_probe_panels(path, path.with_suffix(".png"))

    def text(result: dict) -> str:
        metrics = [m.format(k=cfg.knn_k) for m in TABLE_METRICS]
        return "\n".join(format_layer_table(result, m) for m in metrics)

    stem = f"probe-{slug(prep.encoder.name)}"
    return finish(prep, "probe", "probe", stem, scores, examples, plot, text=text)
