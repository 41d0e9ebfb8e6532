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
from typing import Any, Literal

import numpy as np

from align.commands import cka as cka_cmd
from align.commands.base import RunResult, option
from align.commands.encoding import EncodeRunConfig, Prepared, finish, model_info, prepare, slug
from align.commands.probe import ENGLISH
from align.commands.retrieve import check_bucc_gold, check_margin_k, gold_indices
from align.compare import attribution, deltas, outcomes, summary, transplant
from align.compare.stats import Correction
from align.errors import AlignError
from align.options import require_at_least
from align.results import RETRIEVAL_METRIC
from align.retrieval import bucc as bucc_lib
from align.sampling import subsample

log = logging.getLogger(__name__)

HELP = "why retrieval changed: paired statistics, alignment changes, attribution (base vs tuned)"
CORRELATED = (
    "cos_gap",
    "pair_cos",
    "mknn@{k}",
    "acc_centered_xx2en",
    "iso_avg_cos",
    "cka_linear",
    "cka_linear_debiased",
    "iso_top_pc_share",
)


@dataclass
class CompareConfig(EncodeRunConfig):
    ckpt: list[str] = option(
        [],
        "a tuned model to compare with --base (repeatable)",
        append=True,
        parse=str,
        metavar="SPEC",
    )
    base: str | None = option(
        None, "the model the checkpoints started from (default: offline multilingual-e5-small)"
    )
    task: Literal["tatoeba", "bucc"] = option("tatoeba", "retrieval task of the comparison")
    mining: bucc_lib.MiningMode = option("max", "BUCC candidate mode")
    margin_k: int = option(4, "neighbourhood size of the ratio margin (xSIM, BUCC)")
    knn_k: int = option(10, "k of the mutual kNN overlap")
    n_boot: int = option(1000, "bootstrap resamples for every interval of a change")
    n_boot_spearman: int = option(200, "bootstrap resamples for the Spearman intervals")
    confidence: float = option(0.95, "confidence level of every interval")
    correction: Correction = option("holm", "p-value adjustment: holm or bh (Benjamini-Hochberg)")
    alpha: float = option(0.05, "significance level of the summary (adjusted p-values)")
    probes: bool = option(True, "skip the alignment metrics and attribution", flag="--no-probes")
    cka_matrix: bool = option(True, "skip the layer x layer CKA matrix", flag="--no-cka-matrix")
    transplant: bool = option(False, "causal attribution by block transplant (re-encodes)")
    transplant_max_n: int = option(200, "sentences per language in the transplant sweep")
    langid_test_fraction: float = option(0.5, "held-out share of the language-ID probe")

    def validate(self) -> None:
        super().validate()
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
        if self.correction not in ("holm", "bh"):
            raise AlignError(f"--correction {self.correction!r}: expected holm or bh")
        if self.transplant and self.task != "tatoeba":
            raise AlignError("--transplant: supported for --task tatoeba (parallel sentences)")


Config = CompareConfig


# ----------------------------------------------------------------------------- encoding
def _encode(prep: Prepared, index: int) -> dict[str, Any]:
    """Model ``index``'s embeddings of every set: tatoeba (src, tgt); BUCC per split."""
    embed = prep.embedder(index)
    out: dict[str, Any] = {}
    for lang in prep.langs:
        data = prep.data[lang]
        if prep.task == "tatoeba":
            out[lang] = (embed(data.src), embed(data.tgt))
        else:
            out[lang] = {
                split: (
                    embed(list(data[split].src.values())),
                    embed(list(data[split].tgt.values())),
                    gold_indices(data[split]),
                )
                for split in ("dev", "test")
            }
    return out


def _parallel(prep: Prepared, emb: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Aligned (src, tgt) of one language, and each pair's source unit (BUCC: gold pairs)."""
    if prep.task == "tatoeba":
        return emb[0], emb[1], None
    x, y, gold = emb["test"]
    pairs = sorted(gold)
    src_rows = np.array([s for s, _ in pairs])
    return x[:, src_rows], y[:, [t for _, t in pairs]], src_rows


# ---------------------------------------------------------------------------- outcomes
def _outcomes(prep: Prepared, cfg: CompareConfig, encoded: dict[str, Any]) -> dict[str, Any]:
    """Per language: retrieval and (with probes) alignment outcomes; langid under ``all``."""
    device, layers = prep.search_device, prep.layers
    out: dict[str, Any] = {}
    for lang, emb in encoded.items():
        if prep.task == "tatoeba":
            res = outcomes.tatoeba_retrieval(emb[0], emb[1], layers, cfg.margin_k, device)
        else:
            res = outcomes.bucc_retrieval(
                emb["dev"], emb["test"], layers, cfg.mining, cfg.margin_k, device
            )
        if cfg.probes:
            src, tgt, _ = _parallel(prep, emb)
            probe = outcomes.alignment_outcomes(src, tgt, layers, cfg.knn_k, cfg.seed)
            res.per_sentence |= probe.per_sentence
            res.aggregate |= probe.aggregate
        out[lang] = res
    if cfg.probes:
        by_lang = {lang: _parallel(prep, emb)[0] for lang, emb in encoded.items()}
        by_lang[ENGLISH] = _parallel(prep, next(iter(encoded.values())))[1]
        out["all"] = outcomes.langid_outcomes(by_lang, layers, cfg.langid_test_fraction, cfg.seed)
    return out


def _units(prep: Prepared, lang: str) -> int:
    if prep.task == "tatoeba":
        return len(prep.data[lang].src)
    return len(prep.data[lang]["test"].src)


def _attribution(
    name: str,
    prep: Prepared,
    cfg: CompareConfig,
    base: dict[str, Any],
    tuned: dict[str, Any],
    encoded: tuple[dict[str, Any], dict[str, Any]],
) -> list[dict[str, Any]]:
    retrieval = RETRIEVAL_METRIC[prep.task]
    changes = []
    for lang in prep.langs:
        pairs = {
            "base": _parallel(prep, encoded[0][lang]),
            "tuned": _parallel(prep, encoded[1][lang]),
        }
        parallel = {
            key: {layer: (p[0][layer], p[1][layer]) for layer in prep.layers}
            for key, p in pairs.items()
        }
        unit_of = pairs["base"][2]
        changes.append(
            attribution.language_changes(
                lang, _units(prep, lang), base[lang], tuned[lang], parallel, unit_of
            )
        )
    others = [m.format(k=cfg.knn_k) for m in CORRELATED]
    records = attribution.spearman_records(
        name, changes, retrieval, others, cfg.n_boot_spearman, cfg.confidence, cfg.seed
    )
    return records + attribution.centring_records(name, changes)


def _matrix(prep: Prepared, encoded: tuple[dict, dict], name: str) -> list[dict[str, Any]]:
    """Layer x layer linear CKA, base rows vs tuned columns, on every sentence of the run."""
    first: dict[str, tuple[str, int, int]] = {}  # sentence -> where it first occurs
    for lang in prep.langs:
        for side, texts in enumerate(_texts(prep, lang)):
            for i, text in enumerate(texts):
                first.setdefault(text, (lang, side, i))
    stacks = []
    for enc in encoded:
        sides = {lang: _parallel(prep, enc[lang])[:2] for lang in prep.langs}
        columns = [sides[lang][side][:, i] for lang, side, i in first.values()]
        stacks.append(np.stack(columns, axis=1))
    records = cka_cmd.matrix_records(prep.layers, prep.layers, stacks[0], stacks[1])
    return [r | {"model": name} for r in records]


def _texts(prep: Prepared, lang: str) -> tuple[list[str], list[str]]:
    data = prep.data[lang]
    if prep.task == "tatoeba":
        return data.src, data.tgt
    test = data["test"]
    pairs = sorted(gold_indices(test))
    src, tgt = list(test.src.values()), list(test.tgt.values())
    return [src[s] for s, _ in pairs], [tgt[t] for _, t in pairs]


def _transplant(prep: Prepared, cfg: CompareConfig, index: int, name: str) -> list[dict]:
    texts: dict[str, int] = {}
    rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for lang in prep.langs:
        src, tgt = _texts(prep, lang)
        keep = subsample(len(src), cfg.transplant_max_n, cfg.seed)
        positions = [[texts.setdefault(side[i], len(texts)) for i in keep] for side in (src, tgt)]
        rows[lang] = (np.array(positions[0]), np.array(positions[1]))
    base, tuned = prep.embedder(0).encoder, prep.embedder(index).encoder
    log.info(
        "transplant sweep: %d blocks x 2 variants on %d sentences", base.num_layers, len(texts)
    )
    emb = transplant.sweep(base, tuned, list(texts), prep.options, prep.cfg.progress)
    return transplant.transplant_records(name, emb, rows, prep.layers, prep.search_device)


# --------------------------------------------------------------------------------- run
def _check_models(prep: Prepared, cfg: CompareConfig) -> None:
    if cfg.transplant:
        for ref in prep.refs[1:]:
            transplant.check_same_architecture(prep.refs[0], ref)


def _check_data(prep: Prepared, cfg: CompareConfig) -> None:
    check_margin_k(prep, cfg.margin_k)
    if prep.task == "bucc":
        check_bucc_gold(prep)
        for lang in prep.langs:
            if not prep.data[lang]["test"].gold:
                raise AlignError(f"BUCC {lang}: comparing F1 needs the test split's gold pairs")
    if cfg.probes:
        smallest = min(len(_texts(prep, lang)[0]) for lang in prep.langs)
        if cfg.knn_k >= smallest:
            raise AlignError(f"--knn-k {cfg.knn_k}: must be below the smallest set ({smallest})")


def _compare_one(
    prep: Prepared,
    cfg: CompareConfig,
    index: int,
    base: tuple[dict, dict],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    encoder = prep.embedder(index).encoder
    name = encoder.name
    if encoder.fingerprint == prep.embedder(0).encoder.fingerprint:
        log.warning("%s has the same weights as the base: every change will be 0", name)
    encoded = _encode(prep, index)
    tuned = _outcomes(prep, cfg, encoded)
    stats_cfg = deltas.StatsConfig(cfg.n_boot, cfg.confidence, cfg.correction, cfg.seed)
    records = deltas.level_records(name, tuned, stats_cfg)
    for lang in tuned:
        log.info("compare %s: %s", name, lang)
        records += deltas.compare_language(name, lang, base[1][lang], tuned[lang], stats_cfg)
    deltas.adjust_family([r for r in records if "p_value" in r], cfg.correction)
    if cfg.probes:
        records += _attribution(name, prep, cfg, base[1], tuned, (base[0], encoded))
    if cfg.cka_matrix:
        records += _matrix(prep, (base[0], encoded), name)
    if cfg.transplant:
        records += _transplant(prep, cfg, index, name)
    return records, model_info(encoder)


def run(cfg: CompareConfig) -> RunResult:
    from align.report.tables import format_delta_table

    prep = prepare(cfg, cfg.task, [cfg.base, *cfg.ckpt])
    _check_data(prep, cfg)
    _check_models(prep, cfg)
    base_encoded = _encode(prep, 0)
    base = (base_encoded, _outcomes(prep, cfg, base_encoded))
    stats_cfg = deltas.StatsConfig(cfg.n_boot, cfg.confidence, cfg.correction, cfg.seed)
    records = deltas.level_records(prep.encoder.name, base[1], stats_cfg)
    compared = []
    for index in range(1, len(prep.refs)):
        model_records, info = _compare_one(prep, cfg, index, base)
        records += model_records
        compared.append(info)
    retrieval = RETRIEVAL_METRIC[cfg.task]
    findings = summary.summarize(records, retrieval, cfg.alpha)
    prep.timings["models_compared"] = len(compared)
    names = "-".join(slug(info["name"]) for info in compared)
    stem = f"compare-{cfg.task}-{slug(prep.encoder.name)}-vs-{names}"

    def text(result: dict[str, Any]) -> str:
        lines = [format_delta_table(result, retrieval, cfg.alpha)]
        for model in findings.values():
            lines += model["text"]
        return "\n".join(lines)

    fields = {"compared": compared, "summary": findings}
    return finish(prep, "compare", cfg.task, stem, records, None, None, None, text, fields)
