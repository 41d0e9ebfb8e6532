"""``align cka``: cross-lingual CKA per layer, or the layer x layer matrix of two checkpoints."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from align import metrics
from align.commands.base import RunResult, option
from align.commands.encoding import (
    EncodeRunConfig,
    PairTaskConfig,
    check_same_models,
    prepare,
)
from align.commands.output import finish, model_info, slug
from align.commands.prepared import Prepared
from align.compare.outcomes import alignment_values
from align.errors import AlignError
from align.probes.matrix import matrix_measures, matrix_records, measure_matrix_records
from align.progress import step
from align.results import score_record
from align.retrieval import tasks
from align.store import LayerStore

log = logging.getLogger(__name__)

HELP = "cross-lingual CKA per layer, or a layer x layer matrix of two models (--ckpt-b)"


@dataclass
class CkaConfig(PairTaskConfig, EncodeRunConfig):
    ckpt_b: str | None = option(
        None, "second model: the layer x layer CKA matrix against --ckpt on all sentences"
    )
    sigma_frac: float = option(
        0.5, "RBF bandwidth as a fraction of the median pairwise distance", above=0
    )
    rbf_max_n: int = option(2000, "RBF CKA forms n x n Grams: a seeded subsample above this")
    knn_k: int = option(10, "k of CKNNA (each sentence's nearest neighbours)", low=2)
    matrix_measures: str = option(
        "cka_linear",
        "comma-separated measures of the layer x layer matrix (--ckpt-b): cka_linear (with its "
        "debiased estimator) and any of "
        + ", ".join(m for m in matrix_measures() if m != "cka_linear"),
    )

    def validate(self) -> None:
        super().validate()
        known = matrix_measures()
        for name in self.measures_of_matrix():
            if name not in known:
                raise AlignError(
                    f"--matrix-measures {name!r}: not a layer x layer measure (known: "
                    f"{', '.join(known)})"
                )
        if self.ckpt_b is None and self.matrix_measures != "cka_linear":
            raise AlignError("--matrix-measures: a layer x layer matrix needs --ckpt-b")
        self.check_pairs_flag()
        if self.sigma_frac <= 0:
            raise AlignError(f"--sigma-frac {self.sigma_frac}: must be > 0")
        if self.rbf_max_n < 2:
            raise AlignError(f"--rbf-max-n {self.rbf_max_n}: must be at least 2")

    def measures_of_matrix(self) -> list[str]:
        return [m.strip() for m in self.matrix_measures.split(",") if m.strip()]

    def probe_params(self, device: str) -> metrics.ProbeParams:
        return metrics.ProbeParams(
            seed=self.seed,
            sigma_frac=self.sigma_frac,
            rbf_max_n=self.rbf_max_n,
            knn_k=self.knn_k,
            device=device,
        )


Config = CkaConfig


def crosslingual_scores(prep: Prepared, cfg: CkaConfig) -> list[dict[str, Any]]:
    """Every measure the registry lists for ``cka``, per language and layer (xx vs English)."""
    params = cfg.probe_params(prep.cfg.device)
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


def pair_scores(prep: Prepared, cfg: CkaConfig, command: str = "cka") -> list[dict[str, Any]]:
    """Every measure the registry lists for ``command``, per unordered pair of languages of a
    multi-way set and layer (``lang`` and ``lang_b``: the pair, in the set's order)."""
    from align.retrieval.pairs import unordered

    params = cfg.probe_params(prep.cfg.device)
    chosen = unordered(prep.task.pairs(prep.langs, cfg.pairs))  # type: ignore[attr-defined]
    scores = []
    what = f"{command}: {len(chosen)} pairs of {len(prep.langs)} languages"
    for layer, emb in prep.each_layer(what):
        for a, b in chosen:
            values = alignment_values(emb[a], emb[b], params, command=command)
            scores += [score_record(layer, a, m, v, b) for m, v in values.items()]
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
    prep: Prepared, a: LayerStore, b: LayerStore, n_sentences: int, cfg: CkaConfig | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Layer x layer matrices between ckpt and ckpt_b on every sentence of the data: linear CKA,
    and the other ``--matrix-measures``."""
    other = prep.embedder(1).encoder
    layers_b = [layer for layer in prep.layers if layer <= other.num_layers]
    chosen = cfg.measures_of_matrix() if cfg is not None else ["cka_linear"]
    scores = []
    if "cka_linear" in chosen:
        scores += matrix_records(prep.layers, layers_b, a.layer, b.layer)
    if rest := [m for m in chosen if m != "cka_linear"]:
        assert cfg is not None
        params = cfg.probe_params(prep.cfg.device)
        scores += measure_matrix_records(
            rest, prep.layers, layers_b, a.layer, b.layer, params, prep.cfg.progress
        )
    return scores, {"b": model_info(other), "n_sentences": n_sentences}


def run(cfg: CkaConfig) -> RunResult:
    from align.report import plots
    from align.report.tables import format_layer_table, format_matrix, format_pair_table

    task = tasks.get(cfg.task)
    if cfg.ckpt_b is None:
        with prepare(cfg, task) as prep:
            task.check_pairs(prep.dataset.root, prep.data, 4, "CKA (the debiased estimator)")
            if task.pairwise:
                task.pairs(prep.langs, cfg.pairs)  # type: ignore[attr-defined]
            for lang in prep.langs:
                prep.encode(0, lang)  # every set first (under a launcher: the ranks' shares)
            if (done := prep.encoded()) is not None:
                return done
            if task.pairwise:
                scores = pair_scores(prep, cfg)
                stem = f"cka-{task.name}-{slug(prep.refs[0].name)}"
                return finish(
                    prep, "cka", "cka", stem, scores, None, None, None,
                    lambda result: format_pair_table(result, "cka_linear"),
                )  # fmt: skip
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
        scores, extra = matrix_scores(prep, a, b, len(texts), cfg)
        stem = f"cka-matrix-{slug(prep.refs[0].name)}-vs-{slug(extra['b']['name'])}"

        shown = cfg.measures_of_matrix()

        def plot_matrix(path: Path) -> Path:
            """The first measure's heatmap at ``<stem>.png``; each other's at
            ``<stem>-<measure>.png``."""
            for other in shown[1:]:
                plots.plot_cka_matrix(path, path.with_name(f"{path.stem}-{other}.png"), other)
            return plots.plot_cka_matrix(path, path.with_suffix(".png"), shown[0])

        def text_matrix(result: dict) -> str:
            return "\n\n".join(format_matrix(result, m) for m in shown)

        return finish(
            prep, "cka", "cka_matrix", stem, scores, None, plot_matrix, extra, text_matrix
        )
