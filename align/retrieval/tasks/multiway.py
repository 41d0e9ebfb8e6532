"""Retrieval between every pair of languages of a multi-way set (FLORES+, the Bible): one
``{code}.txt`` per language, line i of each the same sentence, English one language among them.

Each language is one set, encoded once; a layer's pairs are scored together from the stacked
languages (:func:`align.retrieval.pairs.pair_outcomes`), not per language: ``retrieve`` and
``compare`` call :meth:`MultiWay.pair_outcomes` for the task (``pairwise``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from align.data import multiway
from align.errors import AlignError
from align.retrieval.pairs import PairOutcomes, ordered_pairs, pair_outcomes
from align.retrieval.tasks.base import (
    Parallel,
    RetrievalTask,
    Statistic,
    TaskOutcomes,
    TaskParams,
)

ENGLISH_CODES = ("eng", "eng_Latn", "en")
SET = "text"


def english_of(langs: list[str]) -> str | None:
    """The set's English code (``eng`` in Bible sets, ``eng_Latn`` in FLORES+), if any."""
    return next((lang for lang in langs if lang in ENGLISH_CODES), None)


class MultiWay(RetrievalTask):
    name = "parallel"
    title = "multi-way parallel set"
    help = "every language pair of a multi-way set ({code}.txt per language): top-1 and xSIM"
    lang_codes = "iso639-3"
    main_metric = "acc_a2b"
    headline = ("acc_a2b",)
    statistics: ClassVar[dict[str, Statistic]] = {
        "acc_a2b": "mcnemar",
        "xsim_error_a2b": "mcnemar",
    }
    demo_langs = "de,fr,es,ru,ar,vi"
    unit = "sentences"
    pairwise = True

    def available_langs(self, data_dir: Path) -> set[str]:
        return multiway.langs_in(data_dir)

    def demo_languages(self, langs: list[str]) -> list[str]:
        """The demo set holds English beside the languages asked for."""
        return [*langs, "eng"] if "eng" not in langs else langs

    def read(self, data_dir: Path, lang: str) -> list[str]:
        return multiway.read_language(data_dir, lang)

    def sizes(self, data: list[str]) -> dict[str, int]:
        return {"sentences": len(data)}

    def reliable_n(self, sizes: dict[str, int]) -> int:
        return sizes["sentences"]

    def build_demo(self, out_dir: Path, langs: list[str], n: int, seed: int) -> None:
        from align.data import bible

        bible.build_multiway_demo(out_dir, langs, n=n, seed=seed)

    def check_set(self, root: Path, data: dict[str, Any]) -> None:
        """Two languages at least, every file as long as the others, none a copy of another."""
        if len(data) < 2:
            raise AlignError(
                f"langs: the parallel task pairs languages; {len(data)} given", param="langs"
            )
        multiway.check_aligned(data, root)

    def sets(self, data: list[str]) -> dict[str, list[str]]:
        return {SET: data}

    def parallel_file(self, data_dir: Path, lang: str, data: Any) -> Path:
        return multiway.path_of(data_dir, lang)

    def parallel(self, data: list[str]) -> Parallel:
        return Parallel(SET, SET, None, None, None, len(data))

    def pairs(self, langs: list[str], spec: str) -> list[tuple[str, str]]:
        return ordered_pairs(langs, spec, english_of(langs))

    def pair_outcomes(
        self, layer: dict[str, np.ndarray], pairs: list[tuple[str, str]], params: TaskParams
    ) -> dict[tuple[str, str], PairOutcomes]:
        return pair_outcomes(layer, pairs, params.margin_k, params.device)

    def layer_outcomes(
        self,
        emb: dict[str, np.ndarray],
        data: Any,
        params: TaskParams,
        metrics: tuple[str, ...] | None = None,
    ) -> TaskOutcomes:
        raise AlignError("the parallel task scores pairs of languages (pair_outcomes)")

    def examples(self, lang: str, layer: int, out: TaskOutcomes, data: Any) -> Iterator[dict]:
        return iter(())
