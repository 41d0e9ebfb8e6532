"""What a retrieval task is: its data, the sets it encodes, and the outcomes of one layer.

A task object knows everything that differs between Tatoeba-style retrieval and BUCC-style
mining, so that ``retrieve``, ``compare`` and the transplant sweep never branch on a task's
name: how to find and read a language's files (with their sizes and warnings), which sentence
sets to encode, which rows form translation pairs for the alignment probes, the per-sentence
outcomes of one layer (:meth:`RetrievalTask.layer_outcomes`, the one scoring function),
the scores ``retrieve`` reports from them, the per-example rows, the main metric and the paired
statistic each retrieval metric takes.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from align.conventions import Convention
from align.errors import AlignError
from align.retrieval.bucc import F1Counts, MiningMode
from align.vectors import FLAT, IndexSpec, normalize, recall_at_k

log = logging.getLogger(__name__)

Statistic = Literal["mcnemar", "f1_bootstrap"]
MIN_RELIABLE_N = 100  # below this many sentences a score's 95% interval spans about +-0.1


@dataclass(frozen=True)
class TaskParams:
    """What scoring one layer needs besides the embeddings."""

    margin_k: int = 4
    mining: MiningMode = "max"
    device: str = "cpu"
    index: IndexSpec = FLAT  # exact search, or an approximate FAISS index (IVF, HNSW)
    recall_sample: int = 1000  # queries an approximate search's recall is measured on
    min_recall: float = 0.95  # below this the run warns
    transforms: bool = False  # also score after the cross-fitted maps (BUCC: f1_procrustes)
    map_folds: int = 5  # their cross-fitting folds
    seed: int = 0  # their fold assignment


@dataclass(frozen=True)
class Parallel:
    """Translation pairs inside the encoded sets: ``src_set[src_rows[i]]`` translates
    ``tgt_set[tgt_rows[i]]`` (rows None: every row, in order). ``unit_of[i]``: the resampling
    unit of pair i (the source sentence), None when pairs are the units; ``n_units`` of them."""

    src_set: str
    tgt_set: str
    src_rows: np.ndarray | None
    tgt_rows: np.ndarray | None
    unit_of: np.ndarray | None
    n_units: int

    def pairs(self, emb: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return self.side(emb, 0), self.side(emb, 1)

    def side(self, emb: dict[str, np.ndarray], side: int) -> np.ndarray:
        """The source (0) or English (1) sentence of every pair (``emb`` needs only that set)."""
        rows = self.src_rows if side == 0 else self.tgt_rows
        layer = emb[self.set_of(side)]
        return layer if rows is None else layer[rows]

    def set_of(self, side: int) -> str:
        return self.src_set if side == 0 else self.tgt_set


@dataclass
class TaskOutcomes:
    """One model, one language, one layer: what the task measured."""

    per_sentence: dict[str, np.ndarray] = field(default_factory=dict)  # binary outcomes
    scores: dict[str, float] = field(default_factory=dict)  # what ``retrieve`` reports
    f1: F1Counts | None = None  # BUCC test counts per source sentence, at the dev threshold
    threshold: float | None = None
    f1_after: dict[str, F1Counts] = field(default_factory=dict)  # f1_procrustes: its counts
    detail: Any = None  # predictions or candidates, for the per-example rows


def search_recall(
    queries: np.ndarray, keys: np.ndarray, ids: np.ndarray, params: TaskParams, what: str
) -> float:
    """recall@k of an approximate search against exact search (sampled queries); warns when it
    falls below ``params.min_recall``."""
    recall = recall_at_k(
        normalize(queries), normalize(keys), ids, params.recall_sample, params.index.seed
    )
    if recall < params.min_recall:
        log.warning(
            "%s: the %s index found %.3f of the exact nearest neighbours (below --min-recall "
            "%.2f): its scores understate the model; raise --nprobe / --ef-search",
            what,
            params.index.kind,
            recall,
            params.min_recall,
        )
    return recall


class RetrievalTask(ABC):
    """One retrieval task; subclasses fill in the data layout and the scoring of a layer."""

    name: ClassVar[str]
    title: ClassVar[str]  # how tables and figures name the benchmark
    help: ClassVar[str]
    lang_codes: ClassVar[Literal["iso639-3", "iso639-1"]]
    main_metric: ClassVar[str]  # the metric compare attributes and the figures plot
    headline: ClassVar[tuple[str, ...]]  # retrieve's headline metric, first one present
    statistics: ClassVar[dict[str, Statistic]]  # paired test of each compared metric
    demo_langs: ClassVar[str]
    unit: ClassVar[str]  # what a set's reliability is counted in ("pairs", "gold pairs")
    transplant_metrics: ClassVar[tuple[str, ...]] = ()  # empty: no transplant sweep
    pairwise: ClassVar[bool] = False  # scores pairs of languages together (pair_outcomes)
    # why this task cannot come from the hub by name (None: it can)
    hub_refusal: ClassVar[str | None] = None
    # how named code bases score the task (--preset): preset name -> convention
    conventions: ClassVar[dict[str, Convention]] = {}

    # -------------------------------------------------------------------- data
    @abstractmethod
    def available_langs(self, data_dir: Path) -> set[str]: ...

    @abstractmethod
    def read(self, data_dir: Path, lang: str) -> Any:
        """One language's data, validated (errors name the file and line)."""

    @abstractmethod
    def sizes(self, data: Any) -> dict[str, int]: ...

    @abstractmethod
    def reliable_n(self, sizes: dict[str, int]) -> int:
        """The count a score's reliability depends on (in ``unit``)."""

    @abstractmethod
    def build_demo(self, out_dir: Path, langs: list[str], n: int, seed: int) -> None:
        """The Bible demo set in this task's layout (``langs``: two-letter codes)."""

    def demo_languages(self, langs: list[str]) -> list[str]:
        """The languages of the demo set built for ``langs`` (a multi-way set adds English)."""
        return langs

    def check_set(self, root: Path, data: dict[str, Any]) -> None:
        """Refuse, once every language is read, what no single file shows (multi-way: files of
        different lengths)."""
        return None

    def describe_layout(self, data_dir: Path, data: dict[str, Any]) -> dict[str, Any]:
        """Facts about the files found, recorded with the results (e.g. BUCC's naming)."""
        return {}

    def check(self, data: dict[str, Any], params: TaskParams, paired: bool = False) -> None:
        """Refuse, before any encoding, data the scoring cannot use (``paired``: compare)."""
        sets = [
            (lang, name, n)
            for lang, d in data.items()
            for name, n in self.searched_sizes(d).items()
            if n > 0
        ]
        lang, name, smallest = min(sets, key=lambda s: s[2])
        if params.margin_k > smallest:
            raise AlignError(
                f"margin_k {params.margin_k}: larger than the smallest set searched ({lang} "
                f"{name}: {smallest} sentences); use at most {smallest}",
                param="margin_k",
            )

    def searched_sizes(self, data: Any) -> dict[str, int]:
        """The sizes of the sentence sets a neighbour search runs over (not gold counts)."""
        return self.sizes(data)

    def warn_small(self, data: dict[str, Any]) -> None:
        for lang, d in data.items():
            n = self.reliable_n(self.sizes(d))
            if 0 < n < MIN_RELIABLE_N:
                log.warning(
                    "%s: only %d %s: a score on so few means little (a 95%% interval spans about "
                    "±%.2f); use at least %d",
                    lang,
                    n,
                    self.unit,
                    min(1.0, 1 / np.sqrt(n)),
                    MIN_RELIABLE_N,
                )

    # ------------------------------------------------------------------- sets
    @abstractmethod
    def sets(self, data: Any) -> dict[str, list[str]]:
        """The named sentence sets to encode for one language."""

    @abstractmethod
    def parallel(self, data: Any) -> Parallel:
        """The translation pairs the alignment probes and CKA are measured on."""

    @abstractmethod
    def parallel_file(self, data_dir: Path, lang: str, data: Any) -> Path:
        """The file the translation pairs come from (named in errors about them)."""

    def check_pairs(self, data_dir: Path, data: dict[str, Any], minimum: int, why: str) -> None:
        """Refuse, before any encoding, a language with fewer than ``minimum`` pairs."""
        for lang, d in data.items():
            n = len(self.parallel_texts(d)[0])
            if n < minimum:
                raise AlignError(
                    f"{self.parallel_file(data_dir, lang, d)}: {lang} has {n} translation "
                    f"pair(s); {why} needs at least {minimum}"
                )

    def parallel_texts(self, data: Any) -> tuple[list[str], list[str]]:
        par, texts = self.parallel(data), self.sets(data)
        src, tgt = texts[par.src_set], texts[par.tgt_set]
        if par.src_rows is None:
            return list(src), list(tgt)
        return [src[i] for i in par.src_rows], [tgt[i] for i in par.tgt_rows]

    # ---------------------------------------------------------------- scoring
    @abstractmethod
    def layer_outcomes(
        self,
        emb: dict[str, np.ndarray],
        data: Any,
        params: TaskParams,
        metrics: tuple[str, ...] | None = None,
    ) -> TaskOutcomes:
        """The outcomes of one layer (``emb``: each set's ``[n, d]`` embeddings)."""

    @abstractmethod
    def examples(self, lang: str, layer: int, out: TaskOutcomes, data: Any) -> Iterator[dict]:
        """Per-example rows of one layer, for the JSONL beside the results."""
