"""``align cka``: cross-lingual CKA per layer, or the layer x layer matrix of two checkpoints."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from align import metrics
from align.commands.base import RunResult, option
from align.commands.encoding import EncodeRunConfig, check_same_models, prepare
from align.commands.output import finish, model_info, slug
from align.commands.prepared import Prepared
from align.compare.outcomes import alignment_values
from align.errors import AlignError
from align.probes.matrix import matrix_records
from align.progress import step
from align.results import score_record
from align.retrieval import tasks
from align.store import LayerStore

log = logging.getLogger(__name__)

HELP = "cross-lingual CKA per layer, or a layer x layer matrix of two models (--ckpt-b)"


@dataclass
class CkaConfig(EncodeRunConfig):
    ckpt_b: str | None = option(
        None, "second model: the layer x layer CKA matrix against --ckpt on all sentences"
    )
    sigma_frac: float = option(
        0.5, "RBF bandwidth as a fraction of the median pairwise distance", above=0
    )
    rbf_max_n: int = option(2000, "RBF CKA forms n x n Grams: a seeded subsample above this")
    knn_k: int = option(10, "k of CKNNA (each sentence's nearest neighbours)", low=2)

    def validate(self) -> None:
        super().validate()
        if self.sigma_frac <= 0:
            raise AlignError(f"--sigma-frac {self.sigma_frac}: must be > 0")
        if self.rbf_max_n < 2:
            raise AlignError(f"--rbf-max-n {self.rbf_max_n}: must be at least 2")


Config = CkaConfig


def crosslingual_scores(prep: Prepared, cfg: CkaConfig) -> list[dict[str, Any]]:
    """Every measure the registry lists for ``cka``, per language and layer (xx vs English)."""
    params = metrics.ProbeParams(
        seed=cfg.seed,
        sigma_frac=cfg.sigma_frac,
        rbf_max_n=cfg.rbf_max_n,
        knn_k=cfg.knn_k,
        device=prep.cfg.device,
    )
    scores = []
    for lang in prep.langs:
        stores = prep.encode(0, lang)  # encoded before (run), so read from the run's stores
        par = prep.task.parallel(prep.data[lang])
        what = f"cka {lang}: {len(prep.layers)} layers, {par.n_units} pairs"
        with step(what, len(prep.layers), "layer", prep.cfg.progress) as update:
            for layer in prep.layers:
                x, y = par.pairs({name: s.layer(layer) for name, s in stores.items()})
                values = alignment_values(x, y, params, command="cka")
                scores += [score_record(layer, lang, m, v) for m, v in values.items()]
                update(1)
    return scores


def all_sentences(prep: Prepared) -> list[str]:
    """Every distinct sentence of the run (both sides, all languages), in a stable order."""
    return list(
        dict.fromkeys(
            t
            for lang in prep.langs
            for side in prep.task.parallel_texts(prep.data[lang])
            for t in side
        )
    )


def matrix_scores(
    prep: Prepared, a: LayerStore, b: LayerStore, n_sentences: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Layer x layer linear CKA between ckpt and ckpt_b on every sentence of the data."""
    other = prep.embedder(1).encoder
    layers_b = [layer for layer in prep.layers if layer <= other.num_layers]
    scores = matrix_records(prep.layers, layers_b, a.layer, b.layer)
    return scores, {"b": model_info(other), "n_sentences": n_sentences}


def run(cfg: CkaConfig) -> RunResult:
    from align.report import plots
    from align.report.tables import format_layer_table, format_matrix

    task = tasks.get("tatoeba")
    if cfg.ckpt_b is None:
        with prepare(cfg, task) as prep:
            task.check_pairs(prep.dataset.root, prep.data, 4, "CKA (the debiased estimator)")
            for lang in prep.langs:
                prep.encode(0, lang)  # every set first (under a launcher: the ranks' shares)
            if (done := prep.encoded()) is not None:
                return done
            scores = crosslingual_scores(prep, cfg)

            def plot(path: Path) -> Path:
                return plots.plot_layer_curves(path, path.with_suffix(".png"), metric="cka_linear")

            def text(result: dict) -> str:
                return format_layer_table(result, "cka_linear")

            stem = f"cka-{slug(prep.refs[0].name)}"
            return finish(prep, "cka", "cka", stem, scores, None, plot, None, text)
    with prepare(cfg, task, [cfg.ckpt, cfg.ckpt_b], ["ckpt", "ckpt_b"]) as prep:
        check_same_models(prep.refs, ["ckpt", "ckpt_b"], [cfg.ckpt, cfg.ckpt_b])
        task.check_pairs(prep.dataset.root, prep.data, 4, "the debiased CKA matrix")
        texts = all_sentences(prep)
        a, b = prep.embedder(0)(texts, "all"), prep.embedder(1)(texts, "all")
        if (done := prep.encoded()) is not None:
            return done
        scores, extra = matrix_scores(prep, a, b, len(texts))
        stem = f"cka-matrix-{slug(prep.refs[0].name)}-vs-{slug(extra['b']['name'])}"

        def plot_matrix(path: Path) -> Path:
            return plots.plot_cka_matrix(path, path.with_suffix(".png"))

        def text_matrix(result: dict) -> str:
            return format_matrix(result, "cka_linear")

        return finish(
            prep, "cka", "cka_matrix", stem, scores, None, plot_matrix, extra, text_matrix
        )
