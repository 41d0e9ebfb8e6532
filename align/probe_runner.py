"""``align probe``: the per-layer alignment measures beside CKA (see ``align.probes.alignment``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from align.probes import alignment
from align.results import score_record
from align.runs import EncodeRunConfig, finish, prepare, slug

log = logging.getLogger(__name__)

ENGLISH = "eng"


@dataclass
class ProbeConfig(EncodeRunConfig):
    knn_k: int = 10  # mutual kNN neighbourhood
    outlier_factor: float = 5.0  # outlier dimension: mean |value| > factor x the median dimension's
    langid_test_fraction: float = 0.5


@dataclass
class ProbeRun:
    result: dict[str, Any]
    result_path: Path
    plot_path: Path | None


def _isotropy_records(
    layer: int, lang: str, emb: np.ndarray, cfg: ProbeConfig
) -> tuple[list, dict]:
    iso = alignment.isotropy(emb, cfg.seed, cfg.outlier_factor)
    values = {
        "iso_avg_cos": iso.avg_cos,
        "iso_top_pc_share": iso.top_pc_share,
        "iso_n_outlier_dims": len(iso.outlier_dims),
        "iso_max_dim_ratio": iso.max_dim_ratio,
    }
    example = {"lang": lang, "layer": layer, "outlier_dims": iso.outlier_dims}
    return [score_record(layer, lang, m, v) for m, v in values.items()], example


def run_probe(cfg: ProbeConfig) -> ProbeRun:
    prep = prepare(cfg, "tatoeba")
    embedded = {
        lang: (prep.embed(prep.data[lang].src), prep.embed(prep.data[lang].tgt))
        for lang in prep.langs
    }
    english = embedded[prep.langs[0]][1]
    scores: list[dict[str, Any]] = []
    examples: list[dict[str, Any]] = []
    for layer in prep.layers:
        log.info("probe layer %d", layer)
        for lang, (src, tgt) in embedded.items():
            x, y = src[layer], tgt[layer]
            values = alignment.cosine_gap(x, y, cfg.seed) | alignment.centered_accuracy(x, y)
            values[f"mknn@{cfg.knn_k}"] = alignment.mutual_knn(x, y, cfg.knn_k)
            scores += [score_record(layer, lang, m, v) for m, v in values.items()]
            iso_scores, iso_example = _isotropy_records(layer, lang, x, cfg)
            scores += iso_scores
            examples.append(iso_example)
        iso_scores, iso_example = _isotropy_records(layer, ENGLISH, english[layer], cfg)
        scores += iso_scores
        examples.append(iso_example)
        by_lang = {lang: src[layer] for lang, (src, _) in embedded.items()} | {
            ENGLISH: english[layer]
        }
        acc = alignment.langid_accuracy(by_lang, cfg.langid_test_fraction, cfg.seed)
        scores.append(score_record(layer, "all", "langid_acc", acc))

    def plot(path: Path) -> Path:
        from align.report.plots import plot_probe_panels

        return plot_probe_panels(path, path.with_suffix(".png"))

    stem = f"probe-{slug(prep.encoder.name)}"
    result, path, plot_path = finish(prep, "probe", "probe", stem, scores, examples, plot)
    return ProbeRun(result, path, plot_path)
