"""``align retrieve``: per-layer retrieval scores of one encoder on one task's data."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from align import published
from align._io import JsonlWriter
from align.commands.base import RunResult, option
from align.commands.encoding import EncodeRunConfig, MapConfig, SearchConfig, prepare
from align.commands.output import examples_path, finish, slug
from align.commands.prepared import Prepared
from align.errors import AlignError
from align.progress import step
from align.results import primary_metric, score_record
from align.retrieval import bucc as bucc_lib
from align.retrieval import tasks

log = logging.getLogger(__name__)

HELP = "per-layer Tatoeba accuracy / BUCC F1 of an encoder"


@dataclass
class RetrieveConfig(SearchConfig, MapConfig, EncodeRunConfig):
    """Everything ``align retrieve`` needs; saved, resolved, in every result."""

    task: str = option(
        "tatoeba",
        "retrieval task: " + "; ".join(f"{t}: {tasks.get(t).help}" for t in tasks.names()),
        choices=tuple(tasks.names()),
    )
    mining: bucc_lib.MiningMode = option("max", "BUCC candidate mode")
    margin_k: int = option(4, "neighbourhood size of the ratio margin (xSIM, BUCC)")
    pairs: str = option(
        "all",
        "parallel task: the ordered pairs scored: all, english (every language with English, "
        "both ways), or a-b,c-d (each both ways)",
    )

    def validate(self) -> None:
        super().validate()
        self.check_search()
        tasks.get(self.task)
        if self.mining not in bucc_lib.MINING_MODES:
            raise AlignError(
                f"--mining {self.mining!r}: expected one of {', '.join(bucc_lib.MINING_MODES)}"
            )
        if self.margin_k < 1:
            raise AlignError(f"--margin-k {self.margin_k}: must be at least 1")
        if self.pairs != "all" and not tasks.get(self.task).pairwise:
            raise AlignError(f"--pairs {self.pairs}: only the parallel task scores pairs")


Config = RetrieveConfig


def pair_scores(
    prep: Prepared, pairs: list[tuple[str, str]], params: tasks.TaskParams
) -> list[dict[str, Any]]:
    """Every ordered pair's accuracy and xSIM error at every layer, one layer of every language
    of the pairs in memory at a time."""
    scores: list[dict[str, Any]] = []
    langs = list(dict.fromkeys(lang for pair in pairs for lang in pair))
    what = f"{prep.task.name}: {len(pairs)} ordered pairs of {len(langs)} languages"
    for layer, emb in prep.each_layer(what, langs):
        found = prep.task.pair_outcomes(emb, pairs, params)  # type: ignore[attr-defined]
        for (a, b), out in found.items():
            scores.append(score_record(layer, a, "acc_a2b", out.acc.mean(), b))
            scores.append(score_record(layer, a, "xsim_error_a2b", out.xsim_error.mean(), b))
    return scores


def run(cfg: RetrieveConfig) -> RunResult:
    """Check inputs, encode each language once, score one layer at a time, write the results."""
    from align.report.tables import format_layer_table, format_pair_table

    task = tasks.get(cfg.task)
    table = published.load()  # read and checked whole before any model loads
    with prepare(cfg, task) as prep:
        params = prep.task_params(cfg.margin_k, cfg.mining, cfg.transforms)
        task.check(prep.data, params)
        stem = f"retrieve-{task.name}-{slug(prep.refs[0].name)}"
        pairs = task.pairs(prep.langs, cfg.pairs) if task.pairwise else []
        encoded = {lang: prep.encode(0, lang) for lang in prep.langs}
        if (done := prep.encoded()) is not None:
            return done  # a launcher's other rank: its share is encoded
        if task.pairwise:
            scores = pair_scores(prep, pairs, params)

            def heatmap(path: Path) -> Path:
                from align.report.pairs import pair_heatmap
                from align.results import load_result

                return pair_heatmap(load_result(path), path.with_suffix(".png"))

            return finish(
                prep,
                "retrieve",
                task.name,
                stem,
                scores,
                None,
                heatmap,
                text=lambda result: format_pair_table(result, "acc_a2b"),
            )
        scores: list[dict[str, Any]] = []
        with JsonlWriter(examples_path(prep.cfg, stem)) as examples:
            for lang in prep.langs:
                stores = encoded[lang]
                what = f"{task.name} {lang}: scoring {len(prep.layers)} layers"
                with step(what, len(prep.layers), "layer", prep.cfg.progress) as update:
                    for layer in prep.layers:
                        emb = {name: store.layer(layer) for name, store in stores.items()}
                        found = task.layer_outcomes(emb, prep.data[lang], params)
                        del emb
                        scores += [score_record(layer, lang, m, v) for m, v in found.scores.items()]
                        examples.write(task.examples(lang, layer, found, prep.data[lang]))
                        update(1)

            def plot(path: Path) -> Path:
                from align.report.plots import plot_layer_curves

                return plot_layer_curves(path, path.with_suffix(".png"))

            return finish(
                prep,
                "retrieve",
                task.name,
                stem,
                scores,
                examples,
                plot,
                text=lambda result: "\n".join(
                    [
                        format_layer_table(result, primary_metric(result)),
                        *published.comparisons(result, table),
                    ]
                ),
            )
