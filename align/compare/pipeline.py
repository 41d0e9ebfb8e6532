"""``align compare``'s work, one layer at a time: outcomes, changes, attribution, CKA, transplant.

Every model's sentence sets are already encoded on disk (:class:`~align.store.ModelSets`). For
each layer and language the base's layer is loaded once and each checkpoint's in turn; their
outcomes (the task's scoring function plus the registry's alignment measures), the paired
changes, each model's own scores and the attribution's bootstrap replicates are computed, and
the embeddings let go. Only records and replicate changes (``n_boot`` numbers per point) are
kept. The layer x layer CKA matrix holds two layers at a time; the transplant sweep writes its
variants to scratch stores and scores them with the task's own function.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from align import metrics
from align.compare import attribution, crosstask, deltas, transplant
from align.compare.decomposition import Decomposition
from align.compare.outcomes import languages_outcomes, layer_outcomes
from align.compare.stats import Difference, ResampleWeights
from align.data.langs import ENGLISH
from align.encode import EncodeOptions
from align.models.loading import LoadedEncoder
from align.probes.matrix import matrix_records
from align.progress import step
from align.retrieval.tasks import RetrievalTask, TaskParams
from align.sampling import subsample
from align.store import ModelSets, ScratchSpace
from align.timing import stage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompareSettings:
    task: RetrievalTask
    params: TaskParams
    probe: metrics.ProbeParams | None  # None: no alignment measures or attribution
    stats: deltas.StatsConfig
    n_boot_spearman: int = 200
    convention: dict[str, Any] | None = None  # --preset: its layer and metric

    @property
    def retrieval(self) -> str:
        """The retrieval metric the comparison attributes and summarizes: the convention's
        (``--preset``), else the task's main metric."""
        return self.convention["metric"] if self.convention else self.task.main_metric


def attributed_metrics(params: metrics.ProbeParams) -> list[str]:
    """The alignment measures whose change attribution correlates with the retrieval change."""
    return [
        m.record_name(params)
        for m in metrics.measures("compare", params)
        if m.family == "alignment" and m.attributed
    ]


class _Comparison:
    """The running state of one base-vs-checkpoints comparison."""

    def __init__(self, data: dict[str, Any], base: ModelSets, tuned: list[ModelSets], s):
        self.data, self.base, self.tuned, self.s = data, base, tuned, s
        self.levels = {m.name: deltas.Levels(m.name, s.stats) for m in [base, *tuned]}
        self.changes_records: dict[str, list[dict[str, Any]]] = {m.name: [] for m in tuned}
        self.parallel = {lang: s.task.parallel(d) for lang, d in data.items()}
        self.pooled = crosstask.Pooled(s.retrieval)
        self.decomposition = Decomposition()
        self.changes = {
            m.name: {
                lang: attribution.LanguageChanges(lang, par.n_units)
                for lang, par in self.parallel.items()
            }
            for m in tuned
        }
        self.weights = (
            ResampleWeights(
                {lang: par.n_units for lang, par in self.parallel.items()},
                s.n_boot_spearman,
                s.stats.seed,
            )
            if s.probe is not None
            else None
        )

    def _outcomes(self, sets: ModelSets, lang: str, layer: int):
        with stage("read_layers"):
            emb = sets.layer(lang, layer)
        with stage("outcomes"):
            out = layer_outcomes(self.s.task, emb, self.data[lang], self.s.params, self.s.probe)
            return out, self.parallel[lang].pairs(emb)

    def layer(self, lang: str, layer: int) -> None:
        s = self.s
        base_out, base_pairs = self._outcomes(self.base, lang, layer)
        with stage("intervals"):
            self.levels[self.base.name].add(lang, layer, base_out)
        for model in self.tuned:
            out, pairs = self._outcomes(model, lang, layer)
            self.pooled.add(model.name, layer, base_out, out)
            self.decomposition.add(model.name, layer, base_out, out)
            with stage("intervals"):
                self.levels[model.name].add(lang, layer, out)
                self.changes_records[model.name] += deltas.layer_deltas(
                    model.name, lang, layer, base_out, out, s.task, s.stats
                )
            if self.weights is not None:
                attribution.add_layer(
                    self.changes[model.name][lang],
                    layer,
                    base_out,
                    out,
                    functools.partial(self.weights.batches, lang),
                    (base_pairs, pairs),
                    self.parallel[lang].unit_of,
                    s.params.device,
                )

    def languages(self, layer: int) -> None:
        """Measures over every language at once (language ID), each model in turn: every
        language's source sentences and the first language's English ones, one layer."""
        assert self.s.probe is not None
        with stage("language_probes"):
            self._languages(layer)

    def _languages(self, layer: int) -> None:
        assert self.s.probe is not None
        values = {}
        for model in [self.base, *self.tuned]:
            by_lang = {
                lang: par.side(model.layer(lang, layer, (par.src_set,)), 0)
                for lang, par in self.parallel.items()
            }
            first, par = next(iter(self.parallel.items()))
            by_lang[ENGLISH] = par.side(model.layer(first, layer, (par.tgt_set,)), 1)
            values[model.name] = languages_outcomes(by_lang, self.s.probe)
            del by_lang
        base = values[self.base.name]
        for model in self.tuned:
            for metric, a in base.items():
                b = values[model.name][metric]
                diff = Difference(a, b, b - a, None, None)
                self.changes_records[model.name].append(
                    deltas.delta_record(model.name, layer, "all", metric, diff)
                )

    def cross_task(self, layers: list[int]) -> dict[str, dict[str, Any]]:
        """Each checkpoint's change on this task at one layer (:mod:`align.compare.crosstask`)."""
        models = [m.name for m in self.tuned]
        with stage("cross_task"):
            return crosstask.entries(
                self.pooled, models, layers, self.s.task.name, self.s.convention, self.s.stats
            )

    def records(self) -> list[dict[str, Any]]:
        s = self.s
        records = self.levels[self.base.name].finish()
        for model in self.tuned:
            recs = self.levels[model.name].finish() + self.changes_records[model.name]
            deltas.adjust_family([r for r in recs if "p_value" in r], s.stats.correction)
            if s.probe is not None:
                changes = list(self.changes[model.name].values())
                with stage("spearman"):
                    recs += attribution.spearman_records(
                        model.name,
                        changes,
                        s.retrieval,
                        attributed_metrics(s.probe),
                        s.stats.confidence,
                    )
                recs += attribution.share_records(model.name, changes, s.stats.confidence)
            records += recs
        return records


def compare_models(
    data: dict[str, Any],
    layers: list[int],
    base: ModelSets,
    tuned: list[ModelSets],
    settings: CompareSettings,
    progress: bool = False,
    cross_task: dict[str, Any] | None = None,
    decomposition: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Each model's own scores, every change with its statistics, and the attribution;
    ``cross_task`` (a dict) receives each checkpoint's cross-task entry, ``decomposition`` its
    pooled change in xx->en accuracy before and after each transform, per layer."""
    run = _Comparison(data, base, tuned, settings)
    n = sum(p.n_units for p in run.parallel.values())
    what = (
        f"compare: scoring {len(layers)} layers x {len(data)} languages ({n} sentences), "
        f"{base.name} vs {', '.join(m.name for m in tuned)}"
    )
    if settings.probe is not None:
        what += f", {run.weights.n_boot if run.weights else 0} resamples for attribution"
    with step(what, len(layers), "layer", progress) as update:
        for layer in layers:
            for lang in data:
                run.layer(lang, layer)
            if settings.probe is not None:
                run.languages(layer)
            update(1)
    if cross_task is not None:
        cross_task.update(run.cross_task(layers))
    if decomposition is not None:
        decomposition.update(run.decomposition.finish(settings.stats.confidence))
    cells = len(layers) * len(data) * len(tuned)
    with step(f"compare: intervals and tests of every change ({cells} cells)", None, "", False):
        return run.records()


def cka_matrix(
    task: RetrievalTask,
    data: dict[str, Any],
    layers: list[int],
    base: ModelSets,
    tuned: ModelSets,
) -> list[dict[str, Any]]:
    """Layer x layer linear CKA, base rows vs tuned columns, on every distinct sentence of the
    run's translation pairs (in order of first occurrence)."""
    first: dict[str, tuple[str, int, int]] = {}  # sentence -> where it first occurs
    for lang, d in data.items():
        for side, texts in enumerate(task.parallel_texts(d)):
            for i, text in enumerate(texts):
                first.setdefault(text, (lang, side, i))
    # (lang, side) -> (positions in the matrix's rows, pair rows they take)
    taken: dict[tuple[str, int], tuple[list[int], list[int]]] = {}
    for position, (lang, side, i) in enumerate(first.values()):
        slot = taken.setdefault((lang, side), ([], []))
        slot[0].append(position)
        slot[1].append(i)
    n_rows = len(first)
    del first

    def assemble(model: ModelSets, layer: int) -> np.ndarray:
        """Every distinct sentence's row, one set of one language read at a time."""
        out: np.ndarray | None = None
        for (lang, side), (positions, pair_rows) in taken.items():
            par = task.parallel(data[lang])
            rows = par.side(model.layer(lang, layer, (par.set_of(side),)), side)[pair_rows]
            if out is None:
                out = np.empty((n_rows, rows.shape[1]), rows.dtype)
            out[positions] = rows
        assert out is not None
        return out

    what = f"compare: {len(layers)} x {len(layers)} layer CKA matrix on {n_rows} sentences"
    with step(what, None, "", False):
        records = matrix_records(
            layers,
            layers,
            lambda layer: assemble(base, layer),
            lambda layer: assemble(tuned, layer),
        )
    return [r | {"model": tuned.name} for r in records]


def transplant_sweep(
    task: RetrievalTask,
    data: dict[str, Any],
    layers: list[int],
    base: LoadedEncoder,
    tuned: LoadedEncoder,
    options: EncodeOptions,
    params: TaskParams,
    max_n: int,
    seed: int,
    scratch: ScratchSpace,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Graft and restore every block on a subsample of at most ``max_n`` pairs per language."""
    texts: dict[str, int] = {}
    rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for lang, d in data.items():
        src, tgt = task.parallel_texts(d)
        keep = subsample(len(src), max_n, seed)
        positions = [[texts.setdefault(side[i], len(texts)) for i in keep] for side in (src, tgt)]
        rows[lang] = (np.array(positions[0]), np.array(positions[1]))
    with stage("transplant_encode"):
        stores = transplant.sweep(base, tuned, list(texts), options, scratch, progress)
    with stage("transplant_score"):
        return transplant.transplant_records(
            tuned.name, stores, rows, layers, task, params, progress
        )
