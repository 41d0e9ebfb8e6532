"""``align probe``: the per-layer alignment measures beside CKA (those the metric registry
lists for ``probe``: cosine gap, mutual kNN, centring, isotropy, language ID, ...)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from align import metrics
from align._io import JsonlWriter
from align.commands.base import RunResult, option
from align.commands.encoding import EncodeRunConfig, GeometryConfig, PairTaskConfig, prepare
from align.commands.output import examples_path, finish, slug
from align.compare.outcomes import alignment_values, languages_outcomes
from align.data.langs import ENGLISH
from align.errors import AlignError
from align.probes import alignment
from align.progress import step
from align.results import score_record
from align.retrieval import tasks

log = logging.getLogger(__name__)

HELP = "per-layer alignment measures: cosine gap, mutual kNN, centring, isotropy, language ID"
TABLE_METRICS = ("cos_gap", "mknn@{k}", "acc_centered_xx2en", "langid_acc")


@dataclass
class ProbeConfig(PairTaskConfig, GeometryConfig, EncodeRunConfig):
    knn_k: int = option(10, "k of the mutual kNN overlap")
    outlier_factor: float = option(
        5.0,
        "outlier dimension: mean |value| above this many times the median dimension's",
        above=0,
    )
    langid_test_fraction: float = option(
        0.5, "held-out share of the language-ID probe", above=0, below=1
    )

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
        self.check_pairs_flag()

    def probe_params(self, device: str = "cpu") -> metrics.ProbeParams:
        return metrics.ProbeParams(
            seed=self.seed,
            knn_k=self.knn_k,
            outlier_factor=self.outlier_factor,
            langid_test_fraction=self.langid_test_fraction,
            device=device,
            **self.geometry(),  # type: ignore[arg-type]
        )


Config = ProbeConfig


def _records(layer: int, lang: str, values: dict[str, Any]) -> list[dict[str, Any]]:
    """Scores of one language at one layer; a per-sentence measure reports its mean."""
    return [
        score_record(layer, lang, m, float(np.mean(v)) if np.ndim(v) else v)
        for m, v in values.items()
    ]


def layer_records(
    layer: int, pairs: dict[str, tuple[np.ndarray, np.ndarray]], params: metrics.ProbeParams
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every probe measure at one layer: per language, English's single-language measures,
    and the measures over all languages (language ID)."""
    scores: list[dict[str, Any]] = []
    examples: list[dict[str, Any]] = []
    english = next(iter(pairs.values()))[1]
    sides = [(lang, x, y) for lang, (x, y) in pairs.items()] + [(ENGLISH, english, None)]
    for lang, x, y in sides:
        scopes = ("pair", "single") if y is not None else ("single",)
        scores += _records(layer, lang, alignment_values(x, y, params, "probe", scopes))
        dims = alignment.outlier_dims(x, params.outlier_factor)
        examples.append({"lang": lang, "layer": layer, "outlier_dims": dims})
    by_lang = {lang: x for lang, (x, _) in pairs.items()} | {ENGLISH: english}
    scores += _records(layer, "all", languages_outcomes(by_lang, params, command="probe"))
    return scores, examples


def multiway_records(
    layer: int,
    emb: dict[str, np.ndarray],
    pairs: list[tuple[str, str]],
    params: metrics.ProbeParams,
) -> list[dict[str, Any]]:
    """Every probe measure at one layer of a multi-way set: per pair (``lang``, ``lang_b``),
    per language (single-language measures), over all languages (language ID)."""
    scores: list[dict[str, Any]] = []
    for a, b in pairs:
        values = alignment_values(emb[a], emb[b], params, "probe", ("pair",))
        scores += [r | {"lang_b": b} for r in _records(layer, a, values)]
    for lang, x in emb.items():
        scores += _records(layer, lang, alignment_values(x, None, params, "probe", ("single",)))
    scores += _records(layer, "all", languages_outcomes(emb, params, command="probe"))
    return scores


def _run_multiway(cfg: ProbeConfig, prep) -> RunResult:
    from align.report.tables import format_pair_table
    from align.retrieval.pairs import unordered

    chosen = unordered(prep.task.pairs(prep.langs, cfg.pairs))
    params = cfg.probe_params(prep.cfg.device)
    scores: list[dict[str, Any]] = []
    what = f"probe: {len(chosen)} pairs of {len(prep.langs)} languages"
    for layer, emb in prep.each_layer(what):
        scores += multiway_records(layer, emb, chosen, params)
    stem = f"probe-{prep.task.name}-{slug(prep.refs[0].name)}"
    return finish(
        prep, "probe", "probe", stem, scores, None, None,
        text=lambda result: format_pair_table(result, "cos_gap"),
    )  # fmt: skip


def run(cfg: ProbeConfig) -> RunResult:
    from align.report.tables import format_layer_table

    task = tasks.get(cfg.task)
    if task.pairwise:
        with prepare(cfg, task) as prep:
            task.check_pairs(prep.dataset.root, prep.data, 4, "align probe")
            task.pairs(prep.langs, cfg.pairs)  # type: ignore[attr-defined]
            smallest = min(len(d) for d in prep.data.values())
            if cfg.knn_k >= smallest:
                raise AlignError(f"--knn-k {cfg.knn_k}: must be below the set's size ({smallest})")
            for lang in prep.langs:
                prep.encode(0, lang)
            if (done := prep.encoded()) is not None:
                return done
            return _run_multiway(cfg, prep)
    with prepare(cfg, task) as prep:
        task.check_pairs(prep.dataset.root, prep.data, 4, "align probe")
        smallest = min(prep.data_info["sizes"][lang]["pairs"] for lang in prep.langs)
        if cfg.knn_k >= smallest:
            raise AlignError(f"--knn-k {cfg.knn_k}: must be below the smallest set ({smallest})")
        sets = prep.model_sets(0)
        if (done := prep.encoded()) is not None:
            return done
        params = cfg.probe_params(prep.cfg.device)
        stem = f"probe-{slug(prep.refs[0].name)}"
        scores: list[dict[str, Any]] = []
        with JsonlWriter(examples_path(prep.cfg, stem)) as examples:
            what = f"probe: {len(prep.layers)} layers x {len(prep.langs)} languages"
            with step(what, len(prep.layers), "layer", prep.cfg.progress) as update:
                for layer in prep.layers:
                    pairs = {
                        lang: task.parallel(prep.data[lang]).pairs(sets.layer(lang, layer))
                        for lang in prep.langs
                    }
                    layer_scores, layer_examples = layer_records(layer, pairs, params)
                    scores += layer_scores
                    examples.write(layer_examples)
                    update(1)

            def plot(path: Path) -> Path:
                from align.report.plots import plot_probe_panels

                return plot_probe_panels(path, path.with_suffix(".png"))

            def text(result: dict) -> str:
                shown = [m.format(k=cfg.knn_k) for m in TABLE_METRICS]
                return "\n".join(format_layer_table(result, m) for m in shown)

            return finish(prep, "probe", "probe", stem, scores, examples, plot, text=text)
