"""``align compare``: why retrieval changed between a base model and its tuned checkpoints.

Every model is encoded once, with identical encoding options, on the same sentences. For each
checkpoint: the change in every retrieval metric per language and layer (paired bootstrap CI,
exact McNemar or paired-bootstrap test, p-values adjusted over the comparison), the change in
every alignment metric, the layer x layer CKA matrix against the base, Spearman correlations
between the changes (bootstrap CIs), the share of each change that survives centring, and, with
``--transplant``, causal attribution by block transplant. A plain-language summary closes it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from align import metrics
from align.commands.base import RunResult, option
from align.commands.encoding import (
    EncodeRunConfig,
    GeometryConfig,
    SearchConfig,
    check_tokenizers,
    prepare,
)
from align.commands.output import finish, model_info, slug
from align.commands.prepared import Prepared
from align.compare import crosstask, decomposition, deltas, pipeline, summary, transplant
from align.compare.stats import Correction
from align.errors import AlignError
from align.metrics import ProbeParams
from align.models.loading import model_fingerprint
from align.options import require_at_least
from align.retrieval import bucc as bucc_lib
from align.retrieval import tasks
from align.timing import recording, stage

log = logging.getLogger(__name__)

HELP = "why retrieval changed: paired statistics, alignment changes, attribution (base vs tuned)"


@dataclass
class CompareConfig(SearchConfig, GeometryConfig, EncodeRunConfig):
    ckpt: list[str] = option(
        [],
        "a tuned model to compare with --base, repeatable: a checkpoint folder written by "
        "align train, any local Hugging Face model folder, or a hub id (fetched: network)",
        append=True,
        parse=str,
        metavar="SPEC",
    )
    base: str | None = option(
        None,
        "the model the checkpoints started from, given as --ckpt is (default: the offline "
        "multilingual-e5-small)",
        metavar="SPEC",
    )
    task: str = option("tatoeba", "retrieval task of the comparison", choices=tuple(tasks.names()))
    mining: bucc_lib.MiningMode = option("max", "BUCC candidate mode")
    margin_k: int = option(4, "neighbourhood size of the ratio margin (xSIM, BUCC)")
    knn_k: int = option(10, "k of the mutual kNN overlap")
    n_boot: int = option(1000, "bootstrap resamples for every interval of a change")
    n_boot_spearman: int = option(200, "bootstrap resamples for the Spearman intervals")
    pairs: str = option(
        "all",
        "parallel task: the ordered pairs compared: all, english (every language with English, "
        "both ways), or a-b,c-d (each both ways)",
    )
    confidence: float = option(0.95, "confidence level of every interval", above=0, below=1)
    correction: Correction = option("holm", "p-value adjustment: holm or bh (Benjamini-Hochberg)")
    alpha: float = option(
        0.05, "significance level of the summary (adjusted p-values)", above=0, below=1
    )
    probes: bool = option(True, "skip the alignment metrics and attribution", flag="--no-probes")
    cka_matrix: bool = option(True, "skip the layer x layer CKA matrix", flag="--no-cka-matrix")
    transplant: bool = option(False, "causal attribution by block transplant (re-encodes)")
    transplant_max_n: int = option(200, "sentences per language in the transplant sweep")
    allow_tokenizer_mismatch: bool = option(
        False, "compare models although their tokenizers differ (each splits text its own way)"
    )
    langid_test_fraction: float = option(
        0.5, "held-out share of the language-ID probe", above=0, below=1
    )

    def validate(self) -> None:
        super().validate()
        self.check_search()
        if not self.ckpt:
            raise AlignError("--ckpt: give at least one tuned model to compare with --base")
        checks = (
            ("--margin-k", self.margin_k, 1),
            ("--knn-k", self.knn_k, 1),
            ("--n-boot", self.n_boot, 100),
            ("--n-boot-spearman", self.n_boot_spearman, 20),
            ("--transplant-max-n", self.transplant_max_n, 10),
        )
        require_at_least(*checks)
        for flag, value in (("--confidence", self.confidence), ("--alpha", self.alpha)):
            if not 0 < value < 1:
                raise AlignError(f"{flag} {value}: must lie in (0, 1)")
        if not 0 < self.langid_test_fraction < 1:
            raise AlignError(
                f"--langid-test-fraction {self.langid_test_fraction}: must lie in (0, 1)"
            )
        if self.correction not in ("holm", "bh"):
            raise AlignError(f"--correction {self.correction!r}: expected holm or bh")
        task = tasks.get(self.task)
        if self.transplant and not task.transplant_metrics:
            supported = [t for t in tasks.names() if tasks.get(t).transplant_metrics]
            raise AlignError(
                f"--transplant: not supported for --task {self.task} (supported: "
                f"{', '.join(supported)}: parallel sentences)"
            )


Config = CompareConfig


def _check_models(prep: Prepared, cfg: CompareConfig) -> None:
    """From the models' files, before any weights load: one depth, no checkpoint twice, and
    (transplant) blocks that can be swapped."""
    base = prep.refs[0]
    for spec, ref in zip(cfg.ckpt, prep.refs[1:], strict=True):
        if ref.num_layers != base.num_layers:
            raise AlignError(
                f"--ckpt {spec}: {ref.num_layers} layers, the base {base.name} has "
                f"{base.num_layers}; a layer-by-layer comparison needs models of one depth"
            )
    seen: dict[str, str] = {}
    for spec, ref in zip(cfg.ckpt, prep.refs[1:], strict=True):
        for key in (f"path {ref.path.resolve()}", f"weights {model_fingerprint(ref.path)}"):
            if key in seen:
                raise AlignError(
                    f"--ckpt {spec}: the same checkpoint as --ckpt {seen[key]} (same "
                    f"{key.split()[0]}); give each checkpoint once"
                )
            seen[key] = spec
    check_tokenizers(prep.refs, ["base"] + ["ckpt"] * len(cfg.ckpt), cfg.allow_tokenizer_mismatch)
    if cfg.transplant:
        for ref in prep.refs[1:]:
            transplant.check_same_architecture(base, ref)


def _check_data(prep: Prepared, cfg: CompareConfig) -> None:
    if prep.task.pairwise:
        prep.task.pairs(prep.langs, cfg.pairs)  # type: ignore[attr-defined]
        if cfg.transplant:
            raise AlignError("--transplant: not for the parallel task (it sweeps xx-en pairs)")
    elif cfg.pairs != "all":
        raise AlignError(f"--pairs {cfg.pairs}: only the parallel task compares pairs")
    prep.task.check_pairs(prep.dataset.root, prep.data, 4, "align compare (debiased CKA)")
    params = prep.task_params(cfg.margin_k, cfg.mining, cfg.probes and cfg.transforms)
    prep.task.check(prep.data, params, paired=True)
    if cfg.probes:
        smallest = min(len(prep.task.parallel_texts(d)[0]) for d in prep.data.values())
        if cfg.knn_k >= smallest:
            raise AlignError(f"--knn-k {cfg.knn_k}: must be below the smallest set ({smallest})")


def _settings(prep: Prepared, cfg: CompareConfig) -> pipeline.CompareSettings:
    probe = None
    if cfg.probes:
        probe = ProbeParams(
            seed=cfg.seed,
            knn_k=cfg.knn_k,
            langid_test_fraction=cfg.langid_test_fraction,
            device=prep.cfg.device,
            **cfg.geometry(),  # type: ignore[arg-type]
        )
    stats_cfg = deltas.StatsConfig(cfg.n_boot, cfg.confidence, cfg.correction, cfg.seed)
    return pipeline.CompareSettings(
        prep.task,
        prep.task_params(cfg.margin_k, cfg.mining, cfg.probes and cfg.transforms),
        probe,
        stats_cfg,
        cfg.n_boot_spearman,
        prep.convention,
    )


def _extra_records(prep: Prepared, cfg: CompareConfig, sets: list) -> list[dict[str, Any]]:
    """The layer x layer CKA matrix and the transplant sweep of every checkpoint."""
    records: list[dict[str, Any]] = []
    for index in range(1, len(prep.refs)):
        if cfg.cka_matrix:
            with stage("cka_matrix"):
                records += pipeline.cka_matrix(
                    prep.task, prep.data, prep.layers, sets[0], sets[index]
                )
        if cfg.transplant:
            with stage("transplant_sweep"):
                records += _transplant(prep, cfg, index)
    return records


def _transplant(prep: Prepared, cfg: CompareConfig, index: int) -> list[dict[str, Any]]:
    return pipeline.transplant_sweep(
        prep.task,
        prep.data,
        prep.layers,
        prep.loaded(0),
        prep.loaded(index),
        prep.options,
        prep.task_params(cfg.margin_k, cfg.mining),
        cfg.transplant_max_n,
        cfg.seed,
        prep.scratch,
        prep.cfg.progress,
    )


def _run_pairs(prep: Prepared, cfg: CompareConfig, sets: list) -> RunResult:
    """A multi-way set: every ordered pair's change, English-centricity, per-language change
    (:mod:`align.compare.pairs`); the alignment probes, CKA matrix and transplant are not run."""
    from align.compare import pairs as pair_compare
    from align.report.tables import format_pair_table

    task = prep.task
    chosen = task.pairs(prep.langs, cfg.pairs)  # type: ignore[attr-defined]
    stats_cfg = deltas.StatsConfig(cfg.n_boot, cfg.confidence, cfg.correction, cfg.seed)
    with recording() as stages:
        records, said = pair_compare.compare_pairs(
            task,
            prep.langs,
            prep.layers,
            sets[0],
            sets[1:],
            chosen,
            prep.task_params(cfg.margin_k, cfg.mining),
            stats_cfg,
            cfg.n_boot,
            prep.cfg.progress,
        )
    prep.timings.update(stages)
    compared = [model_info(prep.embedder(i).encoder) for i in range(1, len(prep.refs))]
    prep.timings["models_compared"] = len(compared)
    names = "-".join(slug(info["name"]) for info in compared)
    stem = f"compare-{task.name}-{slug(prep.encoder.name)}-vs-{names}"
    findings = pair_compare.findings(records, said, cfg.alpha, cfg.correction)

    def text(result: dict[str, Any]) -> str:
        lines = [format_pair_table(result, metrics.delta("acc_a2b"))]
        return "\n".join(lines + [line for f in findings.values() for line in f["text"]])

    fields = {"compared": compared, "summary": findings, "pairs": [list(p) for p in chosen]}
    return finish(prep, "compare", task.name, stem, records, None, None, None, text, fields)


def run(cfg: CompareConfig) -> RunResult:
    from align.report.tables import format_delta_table

    task = tasks.get(cfg.task)
    params = ["base"] + ["ckpt"] * len(cfg.ckpt)
    with prepare(cfg, task, [cfg.base, *cfg.ckpt], params) as prep:
        prep.keep_models = cfg.transplant  # the sweep runs the models themselves
        _check_data(prep, cfg)
        _check_models(prep, cfg)
        sets = [prep.model_sets(index) for index in range(len(prep.refs))]
        if (done := prep.encoded()) is not None:
            return done  # a launcher's other rank: its shares are encoded
        for index in range(1, len(prep.refs)):
            if prep.embedder(index).encoder.fingerprint == prep.encoder.fingerprint:
                log.warning(
                    "%s has the same weights as the base: every change will be 0", sets[index].name
                )
        if task.pairwise:
            return _run_pairs(prep, cfg, sets)
        settings = _settings(prep, cfg)
        cross_task: dict[str, Any] = {}
        decomposed: dict[str, Any] = {}
        with recording() as stages:
            records = pipeline.compare_models(
                prep.data,
                prep.layers,
                sets[0],
                sets[1:],
                settings,
                prep.cfg.progress,
                cross_task,
                decomposed,
            )
            records += _extra_records(prep, cfg, sets)
        prep.timings.update(stages)
        compared = [model_info(prep.embedder(i).encoder) for i in range(1, len(prep.refs))]
        retrieval = settings.retrieval
        findings = summary.summarize(records, retrieval, cfg.alpha, correction=cfg.correction)
        for model, parts in decomposed.items():
            if said := decomposition.sentence(parts):
                findings[model]["geometry"] = said
                findings[model]["text"].append(f"  geometry: {said}")
        prep.timings["models_compared"] = len(compared)
        names = "-".join(slug(info["name"]) for info in compared)
        stem = f"compare-{task.name}-{slug(prep.encoder.name)}-vs-{names}"

        def text(result: dict[str, Any]) -> str:
            lines = [format_delta_table(result, retrieval, cfg.alpha)]
            if prep.convention is not None:
                lines.insert(0, prep.convention["text"])
            for model in findings.values():
                lines += model["text"]
            lines.append(crosstask.text([result], cfg.alpha))
            return "\n".join(lines)

        fields = {"compared": compared, "summary": findings, "cross_task": cross_task}
        fields["decomposition"] = decomposed
        return finish(prep, "compare", task.name, stem, records, None, None, None, text, fields)
