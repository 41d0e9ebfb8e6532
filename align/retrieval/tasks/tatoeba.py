"""Tatoeba-style retrieval: line i of ``tatoeba.{lang}-eng.{lang}`` translates line i of
``tatoeba.{lang}-eng.eng``; top-1 accuracy by cosine in both directions and the xSIM error."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from align.conventions import JIANT_SOURCE, XTREME_SOURCE, Convention
from align.data import xtreme
from align.retrieval.tasks.base import (
    Parallel,
    RetrievalTask,
    Statistic,
    TaskOutcomes,
    TaskParams,
    search_recall,
)
from align.retrieval.tatoeba import xsim_errors
from align.vectors import top1

_DIRECTIONS = {"acc_xx2en": ("src", "tgt"), "acc_en2xx": ("tgt", "src")}
log = logging.getLogger(__name__)


def duplicate_pairs(data: xtreme.ParallelSet) -> list[tuple[int, int]]:
    """(first line, repeating line), 0-based, of every pair whose two sentences both appear
    together on an earlier line."""
    first: dict[tuple[str, str], int] = {}
    repeats = []
    for i, pair in enumerate(zip(data.src, data.tgt, strict=True)):
        if pair in first:
            repeats.append((first[pair], i))
        else:
            first[pair] = i
    return repeats


class Tatoeba(RetrievalTask):
    name = "tatoeba"
    title = "Tatoeba"
    help = "top-1 accuracy of translation retrieval (xx->en, en->xx) and xSIM"
    lang_codes = "iso639-3"
    main_metric = "acc_xx2en"
    headline = ("acc_xx2en",)
    statistics: ClassVar[dict[str, Statistic]] = {
        "acc_xx2en": "mcnemar",
        "acc_en2xx": "mcnemar",
        "xsim_error": "mcnemar",
    }
    demo_langs = "de,fr,es,ru,ar,vi"
    unit = "pairs"
    transplant_metrics = ("acc_xx2en", "acc_en2xx")
    conventions: ClassVar[dict[str, Convention]] = {
        "xtreme": Convention(
            preset="xtreme",
            label="XTREME convention",
            metric="acc_en2xx",
            direction="en->xx",
            layers={24: 14, 12: 8},
            pooling="mean",
            exclude_special=False,
            max_length=512,
            threshold=None,
            source=f"{XTREME_SOURCE} scripts/run_tatoeba.sh (LAYER=13 with NLAYER=24 for "
            "xlm-roberta-large, LAYER=7 with NLAYER=12 otherwise, MAXL=512); "
            "third_party/evaluate_retrieval.py (layer k of all_layer_outputs[-num_layers:] is "
            "hidden_states[k + 1]; mean over the attention mask, <s> and </s> included unless "
            "--pool_skip_special_token; similarity_search(x=xx, y=en): English queries)",
        ),
        "jiant": Convention(
            preset="jiant",
            label="jiant convention",
            metric="acc_en2xx",
            direction="en->xx",
            layers={24: 14},
            pooling="mean",
            exclude_special=False,
            max_length=None,
            threshold=None,
            source=f"{JIANT_SOURCE} jiant/scripts/benchmarks/xtreme/xtreme_runconfig_writer.py "
            "(retrieval_layer 14, pooler_type mean for tatoeba and bucc2018); "
            "jiant/tasks/evaluate/core.py (TatoebaEvaluationScheme: similarity_search(x=other "
            "language, y=English), as XTREME)",
        ),
    }

    def available_langs(self, data_dir: Path) -> set[str]:
        return xtreme.tatoeba_langs(data_dir)

    def read(self, data_dir: Path, lang: str) -> xtreme.ParallelSet:
        data = xtreme.read_tatoeba(data_dir, lang)
        repeats = duplicate_pairs(data)
        if repeats:
            (first, second), *_ = repeats
            log.warning(
                "%s: %d pair(s) appear more than once (lines %d and %d, ...): a repeated pair's "
                "query meets its twin as often as its own line, and by line index it is counted "
                "wrong in both directions",
                lang,
                len(repeats),
                first + 1,
                second + 1,
            )
        return data

    def describe_layout(self, data_dir: Path, data: dict[str, Any]) -> dict[str, Any]:
        counts = {lang: len(duplicate_pairs(d)) for lang, d in data.items()}
        return {"duplicate_pairs": {lang: n for lang, n in counts.items() if n}}

    def sizes(self, data: xtreme.ParallelSet) -> dict[str, int]:
        return {"pairs": len(data.src)}

    def reliable_n(self, sizes: dict[str, int]) -> int:
        return sizes["pairs"]

    def build_demo(self, out_dir: Path, langs: list[str], n: int, seed: int) -> None:
        from align.data import bible

        bible.build_tatoeba_demo(out_dir, langs, n=n, seed=seed)

    def sets(self, data: xtreme.ParallelSet) -> dict[str, list[str]]:
        return {"src": data.src, "tgt": data.tgt}

    def parallel_file(self, data_dir: Path, lang: str, data: Any) -> Path:
        return xtreme.tatoeba_paths(data_dir, lang)[0]

    def parallel(self, data: xtreme.ParallelSet) -> Parallel:
        return Parallel("src", "tgt", None, None, None, len(data.src))

    def layer_outcomes(
        self,
        emb: dict[str, np.ndarray],
        data: Any,
        params: TaskParams,
        metrics: tuple[str, ...] | None = None,
    ) -> TaskOutcomes:
        out = TaskOutcomes(detail={})
        wanted = metrics or (*_DIRECTIONS, "xsim_error")
        for metric, (q, k) in _DIRECTIONS.items():
            if metric in wanted:
                res = top1(emb[q], emb[k], params.device, params.index)
                out.per_sentence[metric] = res.correct
                out.scores[metric] = res.accuracy
                out.detail[metric] = res
        if not params.index.exact and "acc_xx2en" in out.detail:
            ids = out.detail["acc_xx2en"].predictions[:, None]
            out.scores["knn_recall"] = search_recall(emb["src"], emb["tgt"], ids, params, "xx->en")
        if "xsim_error" in wanted:
            errors = xsim_errors(
                emb["src"], emb["tgt"], params.margin_k, params.device, params.index
            )
            out.per_sentence["xsim_error"] = errors
            out.scores["xsim_error"] = float(np.mean(errors))
        return out

    def examples(self, lang: str, layer: int, out: TaskOutcomes, data: Any) -> Iterator[dict]:
        for metric, res in out.detail.items():
            direction = metric.removeprefix("acc_")
            for i, (p, s) in enumerate(zip(res.predictions, res.scores, strict=True)):
                yield {
                    "lang": lang,
                    "layer": layer,
                    "direction": direction,
                    "index": i,
                    "pred": int(p),
                    "correct": bool(p == i),
                    "score": round(float(s), 6),
                }
