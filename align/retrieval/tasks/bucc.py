"""BUCC-style bitext mining: ratio-margin candidates over a dev and a test split; the threshold
is chosen on dev and applied to test; F1 against the gold pairs (test-oracle F1 apart)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from align.conventions import JIANT_SOURCE, XTREME_SOURCE, Convention
from align.data import hub, xtreme
from align.errors import AlignError
from align.retrieval import bucc as mining
from align.retrieval.margin import neighbourhood_means
from align.retrieval.tasks.base import (
    Parallel,
    RetrievalTask,
    Statistic,
    TaskOutcomes,
    TaskParams,
    search_recall,
)
from align.vectors import normalize

log = logging.getLogger(__name__)


@dataclass
class BuccData:
    """One language's dev and test splits, their gold pairs as row indices, the file naming."""

    splits: dict[str, xtreme.BuccSplit]
    gold: dict[str, set[tuple[int, int]]]
    layout: str

    def split(self, name: str) -> xtreme.BuccSplit:
        return self.splits[name]


class Bucc(RetrievalTask):
    name = "bucc"
    title = "BUCC"
    help = "bitext-mining F1 (ratio margin; dev-chosen threshold applied to test)"
    lang_codes = "iso639-1"
    main_metric = "f1"
    headline = ("f1", "f1_dev")
    statistics: ClassVar[dict[str, Statistic]] = {"f1": "f1_bootstrap"}
    demo_langs = "de,fr,ru"
    unit = "gold pairs"

    def available_langs(self, data_dir: Path) -> set[str]:
        return xtreme.bucc_langs(data_dir)

    def read(self, data_dir: Path, lang: str) -> BuccData:
        layout = xtreme.bucc_layout(data_dir, lang)
        if layout != "xtreme":
            log.info("BUCC %s: BUCC 2018 release names found (sample = dev, training = test)", lang)
        splits = {s: xtreme.read_bucc(data_dir, lang, s, layout) for s in xtreme.BUCC_SPLITS}
        if not splits["dev"].gold:
            gold = xtreme.bucc_paths(data_dir, lang, "dev", layout)["gold"]
            raise AlignError(f"BUCC {lang}: {gold} is missing; the dev gold picks the threshold")
        if not splits["test"].gold:
            log.warning(
                "BUCC %s: no test gold file; only the dev threshold and dev F1 are reported", lang
            )
        gold = {s: xtreme.gold_indices(split) for s, split in splits.items()}
        return BuccData(splits, gold, layout)

    def sizes(self, data: BuccData) -> dict[str, int]:
        sizes = {
            f"{s}_{k}": len(getattr(data.splits[s], k))
            for s in xtreme.BUCC_SPLITS
            for k in ("src", "tgt")
        }
        return sizes | {f"{s}_gold": len(data.splits[s].gold or []) for s in xtreme.BUCC_SPLITS}

    hub_refusal = hub.BUCC_FROM_HUB
    conventions: ClassVar[dict[str, Convention]] = {
        "xtreme": Convention(
            preset="xtreme",
            label="XTREME convention",
            metric="f1_oracle",
            direction=None,
            layers={24: 8, 12: 8},
            pooling="cls",
            exclude_special=False,
            max_length=512,
            threshold="the test split (oracle: XTREME's driver tunes it on the split it scores)",
            source=f"{XTREME_SOURCE} scripts/run_bucc2018.sh (--pool_type cls --specific_layer 7 "
            "of the last NLAYER layers: hidden_states[8]; MAXL=512); "
            "third_party/evaluate_retrieval.py (bucc_eval with the scored split's gold)",
        ),
        "jiant": Convention(
            preset="jiant",
            label="jiant convention",
            metric="f1_oracle",
            direction=None,
            layers={24: 14},
            pooling="mean",
            exclude_special=False,
            max_length=None,
            threshold="the split it scores (oracle)",
            source=f"{JIANT_SOURCE} jiant/scripts/benchmarks/xtreme/xtreme_runconfig_writer.py "
            "(retrieval_layer 14, pooler_type mean); jiant/tasks/evaluate/core.py "
            "(Bucc2018EvaluationScheme: bucc_eval(..., threshold=None) on the evaluated split)",
        ),
    }

    def reliable_n(self, sizes: dict[str, int]) -> int:
        return sizes["test_gold"]

    def searched_sizes(self, data: BuccData) -> dict[str, int]:
        return {k: n for k, n in self.sizes(data).items() if not k.endswith("_gold")}

    def build_demo(self, out_dir: Path, langs: list[str], n: int, seed: int) -> None:
        from align.data import bible

        bible.build_bucc_demo(out_dir, langs, n=n, seed=seed)

    def describe_layout(self, data_dir: Path, data: dict[str, Any]) -> dict[str, Any]:
        return {"bucc_layout": {lang: d.layout for lang, d in data.items()}}

    def check(self, data: dict[str, Any], params: TaskParams, paired: bool = False) -> None:
        super().check(data, params, paired)
        if paired:
            for lang, d in data.items():
                if not d.splits["test"].gold:
                    raise AlignError(f"BUCC {lang}: comparing F1 needs the test split's gold pairs")
        for lang, d in data.items():
            if params.transforms and d.splits["test"].gold and not self.can_map(d, params):
                log.warning(
                    "BUCC %s: fewer dev gold sentences than --map-folds %d: no f1_procrustes",
                    lang,
                    params.map_folds,
                )

    def sets(self, data: BuccData) -> dict[str, list[str]]:
        return {
            f"{s}.{side}": list(getattr(data.splits[s], side).values())
            for s in xtreme.BUCC_SPLITS
            for side in ("src", "tgt")
        }

    def parallel_file(self, data_dir: Path, lang: str, data: BuccData) -> Path:
        return xtreme.bucc_paths(data_dir, lang, "test", data.layout)["gold"]

    def parallel(self, data: BuccData) -> Parallel:
        pairs = sorted(data.gold["test"])
        src_rows = np.array([s for s, _ in pairs], dtype=np.int64)
        tgt_rows = np.array([t for _, t in pairs], dtype=np.int64)
        return Parallel(
            "test.src", "test.tgt", src_rows, tgt_rows, src_rows, len(data.splits["test"].src)
        )

    def layer_outcomes(
        self,
        emb: dict[str, np.ndarray],
        data: BuccData,
        params: TaskParams,
        metrics: tuple[str, ...] | None = None,
    ) -> TaskOutcomes:
        dev, _ = self._mine(emb["dev.src"], emb["dev.tgt"], params)
        chosen = mining.best_threshold(dev, data.gold["dev"])
        cands, test_ids = self._mine(emb["test.src"], emb["test.tgt"], params)
        out = TaskOutcomes(threshold=chosen.threshold, detail=cands)
        out.scores = {"threshold": chosen.threshold, "f1_dev": chosen.f1}
        gold = data.gold["test"]
        if gold:
            at = mining.score_at(cands, gold, chosen.threshold)
            oracle = mining.best_threshold(cands, gold)
            out.scores |= {
                "f1": at.f1,
                "precision": at.precision,
                "recall": at.recall,
                "f1_oracle": oracle.f1,
            }
            out.f1 = mining.f1_counts(cands, gold, chosen.threshold, len(emb["test.src"]))
            if params.transforms and self.can_map(data, params):
                self._procrustes(emb, data, params, out)
        if test_ids is not None:
            out.scores["knn_recall"] = search_recall(
                emb["test.src"], emb["test.tgt"], test_ids, params, "test x->y"
            )
        return out

    @staticmethod
    def can_map(data: BuccData, params: TaskParams) -> bool:
        """Whether dev has a gold source sentence for each of ``params.map_folds`` folds."""
        return len({s for s, _ in data.gold["dev"]}) >= params.map_folds

    def _procrustes(
        self, emb: dict[str, np.ndarray], data: BuccData, params: TaskParams, out: TaskOutcomes
    ) -> None:
        """``f1_procrustes``: mining after an orthogonal map fit on dev's gold pairs (cross-fitted
        on dev, where the threshold is chosen), applied to test; its per-sentence counts."""
        from align.probes.transforms import procrustes_splits

        split = procrustes_splits(
            (emb["dev.src"], emb["dev.tgt"]),
            sorted(data.gold["dev"]),
            (emb["test.src"], emb["test.tgt"]),
            params.map_folds,
            params.seed,
            params.device,
        )
        dev, _ = self._mine(split.dev_src, split.dev_tgt, params)
        chosen = mining.best_threshold(dev, data.gold["dev"])
        cands, _ = self._mine(split.test_src, split.test_tgt, params)
        gold = data.gold["test"]
        out.scores["f1_procrustes"] = mining.score_at(cands, gold, chosen.threshold).f1
        counts = mining.f1_counts(cands, gold, chosen.threshold, len(emb["test.src"]))
        out.f1_after["f1_procrustes"] = counts

    @staticmethod
    def _mine(
        x: np.ndarray, y: np.ndarray, params: TaskParams
    ) -> tuple[mining.Candidates, np.ndarray | None]:
        """One-pass exact mining; or, with an approximate index, two searches with that index,
        whose x->y neighbours are also returned (their recall is measured, not searched again)."""
        if params.index.exact:
            return mining.mine(x, y, params.mining, params.margin_k, params.device), None
        x, y = normalize(x, "src"), normalize(y, "tgt")
        neighbours = neighbourhood_means(x, y, params.margin_k, params.device, params.index)
        return mining.mine_from_neighbours(x, y, params.mining, neighbours), neighbours[0][1]

    def examples(self, lang: str, layer: int, out: TaskOutcomes, data: BuccData) -> Iterator[dict]:
        cands, gold = out.detail, data.gold["test"]
        test = data.splits["test"]
        src_ids, tgt_ids = list(test.src), list(test.tgt)
        keep = cands.score >= out.threshold
        for s, t, v in zip(cands.src[keep], cands.tgt[keep], cands.score[keep], strict=True):
            yield {
                "lang": lang,
                "layer": layer,
                "split": "test",
                "src_id": src_ids[s],
                "tgt_id": tgt_ids[t],
                "score": round(float(v), 6),
                "gold": (int(s), int(t)) in gold if gold else None,
            }
