"""``align retrieve``: per-layer Tatoeba accuracy / BUCC F1 of one encoder on one dataset."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from align.commands.base import RunResult, option
from align.commands.encoding import Embedder, EncodeRunConfig, Prepared, finish, prepare, slug
from align.data import xtreme
from align.errors import AlignError
from align.results import primary_metric, score_record
from align.retrieval import bucc as bucc_lib
from align.retrieval.tatoeba import retrieve_top1, xsim_error

log = logging.getLogger(__name__)

HELP = "per-layer Tatoeba accuracy / BUCC F1 of an encoder"
RetrievalTask = Literal["tatoeba", "bucc"]


@dataclass
class RetrieveConfig(EncodeRunConfig):
    """Everything ``align retrieve`` needs; saved, resolved, in every result."""

    task: RetrievalTask = option("tatoeba", "tatoeba: top-1 accuracy; bucc: bitext-mining F1")
    mining: bucc_lib.MiningMode = option("max", "BUCC candidate mode")
    margin_k: int = option(4, "neighbourhood size of the ratio margin (xSIM, BUCC)")

    def validate(self) -> None:
        super().validate()
        if self.task not in ("tatoeba", "bucc"):
            raise AlignError(f"--task {self.task!r}: expected tatoeba or bucc")
        if self.mining not in bucc_lib.MINING_MODES:
            raise AlignError(
                f"--mining {self.mining!r}: expected one of {', '.join(bucc_lib.MINING_MODES)}"
            )
        if self.margin_k < 1:
            raise AlignError(f"--margin-k {self.margin_k}: must be at least 1")


Config = RetrieveConfig


def smallest_set(prep: Prepared) -> int:
    """The fewest sentences any side of any set holds (the largest usable neighbourhood)."""
    sizes = [n for lang in prep.langs for n in prep.data_info["sizes"][lang].values()]
    return min(n for n in sizes if n > 0)


def check_margin_k(prep: Prepared, margin_k: int) -> None:
    limit = smallest_set(prep)
    if margin_k > limit:
        raise AlignError(
            f"--margin-k {margin_k}: larger than the smallest set ({limit} sentences); "
            f"use at most {limit}"
        )


def score_tatoeba(
    lang: str,
    pairs: xtreme.ParallelSet,
    embed: Embedder,
    layers: list[int],
    cfg: RetrieveConfig,
    device: str,
) -> tuple[list[dict], list[dict]]:
    src, tgt = embed(pairs.src), embed(pairs.tgt)
    scores, examples = [], []
    for layer in layers:
        for metric, (q, k) in {"acc_xx2en": (src, tgt), "acc_en2xx": (tgt, src)}.items():
            res = retrieve_top1(q[layer], k[layer], device)
            scores.append(score_record(layer, lang, metric, res.accuracy))
            direction = metric.removeprefix("acc_")
            examples += [
                {
                    "lang": lang,
                    "layer": layer,
                    "direction": direction,
                    "index": i,
                    "pred": int(p),
                    "correct": bool(p == i),
                    "score": round(float(s), 6),
                }
                for i, (p, s) in enumerate(zip(res.predictions, res.scores, strict=True))
            ]
        err = xsim_error(src[layer], tgt[layer], cfg.margin_k, device)
        scores.append(score_record(layer, lang, "xsim_error", err))
    return scores, examples


def gold_indices(split: xtreme.BuccSplit) -> set[tuple[int, int]]:
    src_pos = {sid: i for i, sid in enumerate(split.src)}
    tgt_pos = {sid: i for i, sid in enumerate(split.tgt)}
    return {(src_pos[s], tgt_pos[t]) for s, t in split.gold or []}


def score_bucc(
    lang: str,
    splits: dict[str, xtreme.BuccSplit],
    embed: Embedder,
    layers: list[int],
    cfg: RetrieveConfig,
    device: str,
) -> tuple[list[dict], list[dict]]:
    dev, test = splits["dev"], splits["test"]
    dev_x, dev_y = embed(list(dev.src.values())), embed(list(dev.tgt.values()))
    test_x, test_y = embed(list(test.src.values())), embed(list(test.tgt.values()))
    dev_gold, test_gold = gold_indices(dev), gold_indices(test)
    test_src_ids, test_tgt_ids = list(test.src), list(test.tgt)
    scores, examples = [], []
    for layer in layers:
        dev_cands = bucc_lib.mine(dev_x[layer], dev_y[layer], cfg.mining, cfg.margin_k, device)
        chosen = bucc_lib.best_threshold(dev_cands, dev_gold)
        cands = bucc_lib.mine(test_x[layer], test_y[layer], cfg.mining, cfg.margin_k, device)
        records = {"threshold": chosen.threshold, "f1_dev": chosen.f1}
        if test_gold:
            at = bucc_lib.score_at(cands, test_gold, chosen.threshold)
            oracle = bucc_lib.best_threshold(cands, test_gold)
            records |= {
                "f1": at.f1,
                "precision": at.precision,
                "recall": at.recall,
                "f1_oracle": oracle.f1,
            }
        scores += [score_record(layer, lang, m, v) for m, v in records.items()]
        keep = cands.score >= chosen.threshold
        examples += [
            {
                "lang": lang,
                "layer": layer,
                "split": "test",
                "src_id": test_src_ids[s],
                "tgt_id": test_tgt_ids[t],
                "score": round(float(v), 6),
                "gold": (int(s), int(t)) in test_gold if test_gold else None,
            }
            for s, t, v in zip(cands.src[keep], cands.tgt[keep], cands.score[keep], strict=True)
        ]
    return scores, examples


def check_bucc_gold(prep: Prepared) -> None:
    """The dev split must have gold (it picks the threshold); a blind test split is allowed."""
    for lang in prep.langs:
        if not prep.data[lang]["dev"].gold:
            layout = prep.data_info["bucc_layout"][lang]
            gold = xtreme.bucc_paths(prep.data_dir, lang, "dev", layout)["gold"]
            raise AlignError(f"BUCC {lang}: {gold} is missing; the dev gold picks the threshold")
        if not prep.data[lang]["test"].gold:
            log.warning(
                "BUCC %s: no test gold file; only the dev threshold and dev F1 are reported", lang
            )


def run(cfg: RetrieveConfig) -> RunResult:
    """Check inputs, encode every layer once, score each layer, write JSON + JSONL + plot."""
    from align.report.tables import format_layer_table

    prep = prepare(cfg, cfg.task)
    check_margin_k(prep, cfg.margin_k)
    if cfg.task == "bucc":
        check_bucc_gold(prep)
    scorer = score_tatoeba if cfg.task == "tatoeba" else score_bucc
    scores: list[dict[str, Any]] = []
    examples: list[dict[str, Any]] = []
    for lang in prep.langs:
        log.info("%s %s: encoding and scoring %d layers", cfg.task, lang, len(prep.layers))
        lang_scores, lang_examples = scorer(
            lang, prep.data[lang], prep.embed, prep.layers, prep.cfg, prep.search_device
        )
        scores += lang_scores
        examples += lang_examples

    def plot(path: Path) -> Path:
        from align.report.plots import plot_layer_curves

        return plot_layer_curves(path, path.with_suffix(".png"))

    stem = f"retrieve-{cfg.task}-{slug(prep.encoder.name)}"
    return finish(
        prep,
        "retrieve",
        cfg.task,
        stem,
        scores,
        examples,
        plot,
        text=lambda result: format_layer_table(result, primary_metric(result)),
    )
