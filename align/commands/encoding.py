"""What every encoding command shares: its flags, its checks, and the set-up of its data and models.

``prepare`` checks every argument, path and data file and describes every model from its files
(depth, positions, encoding defaults) before any weights are loaded, so bad input fails in one
line before work is done. It also settles the encoding options once for all models: a checkpoint
inherits its base model's prefix and pooling, and two models whose defaults differ are refused
unless the user sets that option explicitly. It returns a ``Prepared`` run
(:mod:`align.commands.prepared`); ``finish`` (:mod:`align.commands.output`) writes its results.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from align._io import OutputLock, check_cache_dir, check_output_dir
from align._memory import fix_mmap_threshold
from align.commands.base import option
from align.commands.prepared import Prepared
from align.conventions import Preset
from align.distributed import Distributed
from align.encode import POOLINGS, EncodeOptions, Pooling, default_batch_tokens
from align.errors import AlignError
from align.layers import parse_layers
from align.models.loading import (
    DType,
    ModelRef,
    describe_model,
    distinct_names,
    is_default_model,
    resolve_device,
    resolve_dtype,
)
from align.options import check_fields, check_seed, require_at_least
from align.retrieval import datasets
from align.retrieval.tasks import RetrievalTask
from align.vectors import INDEX_KINDS, IndexKind, IndexSpec

log = logging.getLogger(__name__)
KIND_WORDS = {
    "encoder": "an encoder",
    "decoder": "a decoder-only model",
    "encoder-decoder": "an encoder-decoder (its encoder is used)",
}

ENCODING_OPTIONS = ("prefix", "pooling")  # the options a model has defaults for
_DEFAULT_MAX_LENGTH = 128


@dataclass
class EncodeRunConfig:
    """Flags shared by every command that encodes parallel data (retrieve, cka, probe, ...)."""

    ckpt: str | None = option(
        None,
        "the model: a checkpoint folder written by align train, any local Hugging Face model "
        "folder, or a hub id such as xlm-roberta-large (fetched: network); default: the "
        "offline multilingual-e5-small",
        metavar="SPEC",
    )
    data_dir: Path | None = option(
        None, "XTREME-layout data directory (default: the Bible demo set, built offline)"
    )
    data: Literal["xtreme"] | None = option(
        None,
        "a data set by name instead of --data-dir: xtreme (Tatoeba from the hub google/xtreme, "
        "fetched into the cache on first use: network and the datasets extra)",
    )
    langs: str | None = option(
        None, "comma list, deu,fra or de,fr (default: the demo languages / all in --data-dir)"
    )
    layers: str = option("all", "all | 8 | 4-12 | -1 | 0,6,12 (0 = embedding layer)")
    pooling: Pooling | None = option(
        None,
        "mean | cls | max | last | weighted-mean (default: the model's own; mean for E5, XLM-R "
        "and encoder-decoders' encoders, last for decoder-only models)",
    )
    prompt: str | None = option(
        None,
        "a template holding {text}, encoded in place of each sentence (e.g. PromptEOL's "
        '\'This sentence : "{text}" means in one word:"\'); recorded, and part of the cache key',
    )
    exclude_special: bool = option(False, "leave <s>, </s> out of mean/max pooling")
    batch_size: int = option(32, "sentences per forward pass (when batching by sentences)")
    batch_tokens: int | None = option(
        None,
        "padded tokens per forward pass: length-sorted sentences as many as fit (0: "
        "--batch-size sentences); default 0 on the CPU, 32768 on CUDA (less on a small GPU)",
    )
    max_length: int | None = option(
        None,
        f"tokens per sentence, longer ones are truncated (default {_DEFAULT_MAX_LENGTH}; with "
        "--preset, the convention's)",
    )
    device: str = option("auto", "auto | cpu | cuda | cuda:N")
    dtype: DType = option("auto", "auto = float32 on CPU, bf16 on CUDA")
    prefix: str | None = option(
        None, "prepended to every sentence (default: the model's own, 'query: ' for E5)"
    )
    demo_n: int = option(1000, "sentences per language in the Bible demo set")
    seed: int = option(0, "seed of every sampled choice (demo verses, subsamples, bootstrap)")
    preset: Preset | None = option(
        None,
        "score as a code base does (layer, pooling, special tokens, max length, direction, "
        "BUCC threshold split): xtreme or jiant; recorded in the result",
    )
    out: Path = option(Path("results"), "output directory")
    use_cache: bool = option(True, "do not read or write the embedding cache", flag="--no-cache")
    plot: bool = option(True, "do not draw figures", flag="--no-plot")
    progress: bool = option(True, "progress bars (the CLI shows them on a terminal)", cli=False)

    def validate(self) -> None:
        """Argument checks that need no file or model; raise a one-line :class:`AlignError`."""
        check_fields(self)
        require_at_least(
            ("--batch-size", self.batch_size, 1),
            ("--batch-tokens", 0 if self.batch_tokens is None else self.batch_tokens, 0),
            (
                "--max-length",
                _DEFAULT_MAX_LENGTH if self.max_length is None else self.max_length,
                2,
            ),
            ("--demo-n", self.demo_n, 1),
        )
        check_seed(self.seed)
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise AlignError(f"--pooling {self.pooling!r}: expected one of {', '.join(POOLINGS)}")
        if self.prompt is not None and "{text}" not in self.prompt:
            raise AlignError(
                f"--prompt {self.prompt!r}: must hold {{text}}, where the sentence goes"
            )
        check_output_dir(self.out)


@dataclass
class SearchConfig:
    """Flags of the nearest-neighbour search (retrieve, compare)."""

    index: IndexKind = option("flat", "flat: exact; ivf / hnsw: approximate FAISS indexes")
    nlist: int = option(0, "IVF cells (0: 4 x sqrt(keys))")
    nprobe: int = option(16, "IVF cells searched per query")
    hnsw_m: int = option(32, "HNSW links per node")
    ef_search: int = option(128, "HNSW candidates per query")
    recall_sample: int = option(1000, "queries the recall of an approximate index is measured on")
    min_recall: float = option(
        0.95, "warn when an approximate index's recall@k falls below", low=0, high=1
    )

    def check_search(self) -> None:
        require_at_least(
            ("--nlist", self.nlist, 0),
            ("--nprobe", self.nprobe, 1),
            ("--hnsw-m", self.hnsw_m, 2),
            ("--ef-search", self.ef_search, 1),
            ("--recall-sample", self.recall_sample, 1),
        )
        if self.index not in INDEX_KINDS:
            raise AlignError(f"--index {self.index!r}: expected one of {', '.join(INDEX_KINDS)}")
        if not 0 <= self.min_recall <= 1:
            raise AlignError(f"--min-recall {self.min_recall}: must lie in [0, 1]")

    def index_spec(self, seed: int) -> IndexSpec:
        return IndexSpec(
            self.index, self.nlist, self.nprobe, self.hnsw_m, self.ef_search, seed=seed
        )


@dataclass
class PairTaskConfig:
    """The task flags of the commands that measure one model's alignment (cka, probe): each
    language against English, or every pair of a multi-way set."""

    task: str = option(
        "tatoeba",
        "tatoeba: each language against English; parallel: every pair of a multi-way set",
        choices=("tatoeba", "parallel"),
    )
    pairs: str = option(
        "all",
        "parallel task: the pairs measured, each once (a directed measure, xx2en, reads "
        "lang -> lang_b): all, english, or a-b,c-d",
    )

    def check_pairs_flag(self) -> None:
        if self.pairs != "all" and self.task != "parallel":
            raise AlignError(f"--pairs {self.pairs}: only the parallel task measures pairs")


@dataclass
class MapConfig:
    """Flags of the cross-fitted maps retrieval is scored after (retrieve: BUCC's f1_procrustes;
    probe, compare: every transform)."""

    map_folds: int = option(
        5,
        "cross-fitting folds of the maps xx -> en: each sentence is scored by a map fit without it",
        low=2,
    )
    transforms: bool = option(
        True,
        "skip retrieval after the transforms (whitening, cross-fitted maps; BUCC: f1_procrustes) "
        "and compare's decomposition",
        flag="--no-transforms",
    )


@dataclass
class GeometryConfig(MapConfig):
    """Flags of the transforms retrieval is scored after (probe, compare)."""

    whiten_shrinkage: float = option(
        0.05, "covariance shrinkage toward tr(S)/d * I before whitening", above=0, high=1
    )

    def geometry(self) -> dict[str, Any]:
        return {
            "map_folds": self.map_folds,
            "whiten_shrinkage": self.whiten_shrinkage,
            "geometry": self.transforms,
        }


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_encoding(
    cfg: EncodeRunConfig, refs: list[ModelRef], device: str = "cpu", dtype: str = "float32"
) -> EncodeOptions:
    """One set of encoding options for every model; differing model defaults are refused.

    An option the user set applies to all models. An option left to the models must agree
    across them: a comparison under different prefixes measures the prefix, not the models.
    """
    chosen: dict[str, str] = {}
    for name in ENCODING_OPTIONS:
        explicit = getattr(cfg, name)
        if explicit is not None:
            chosen[name] = explicit
            continue
        values = {getattr(ref.encoding, name) for ref in refs}
        if len(values) > 1:
            detail = "; ".join(
                f"{ref.name} expects {getattr(ref.encoding, name)!r} ({ref.encoding_source})"
                for ref in refs
            )
            raise AlignError(
                f"--{name}: the models' encoding defaults differ ({detail}); a comparison would "
                f"measure the {name}, not the models: pass --{name} explicitly for all of them"
            )
        chosen[name] = values.pop()
    if chosen["pooling"] == "cls" and cfg.exclude_special:
        raise AlignError(
            "--exclude-special: has no effect with --pooling cls (the pooled vector is <s> itself)"
        )
    if chosen["pooling"] == "last" and cfg.exclude_special:
        raise AlignError(
            "--exclude-special: contradicts --pooling last (the last real token is the one "
            "that has read the whole sentence, special or not)"
        )
    decoders = [ref.name for ref in refs if ref.kind == "decoder"]
    if chosen["pooling"] == "cls" and decoders:
        raise AlignError(
            f"--pooling cls: {decoders[0]} is a decoder-only model; under its causal mask the "
            "first token has read only itself (use last or weighted-mean)"
        )
    batch_tokens = cfg.batch_tokens
    if batch_tokens is None:
        largest = max(refs, key=lambda ref: ref.num_layers * ref.hidden_size)
        batch_tokens = default_batch_tokens(device, largest.num_layers, largest.hidden_size, dtype)
    if 0 < batch_tokens < cfg.max_length:
        raise AlignError(
            f"--batch-tokens {batch_tokens}: below --max-length {cfg.max_length}; a batch must "
            "hold the longest sentence"
        )
    return EncodeOptions(
        chosen["pooling"],  # type: ignore[arg-type]
        cfg.max_length,
        cfg.batch_size,
        chosen["prefix"],
        cfg.exclude_special,
        batch_tokens,
        cfg.prompt or "",
    )


def apply_preset(cfg: EncodeRunConfig, task: RetrievalTask, refs: list[ModelRef]):
    """``cfg`` with the settings of ``--preset`` (a flag set to something else is refused) and
    what the result records of the convention; ``(cfg, None)`` without a preset."""
    if cfg.preset is None:
        given = _DEFAULT_MAX_LENGTH if cfg.max_length is None else cfg.max_length
        return replace(cfg, max_length=given), None
    convention = task.conventions.get(cfg.preset)
    if convention is None:
        raise AlignError(f"--preset {cfg.preset}: no {cfg.preset} convention for {task.name}")
    other = next((ref for ref in refs if ref.kind != "encoder"), None)
    if other is not None:
        raise AlignError(
            f"--preset {cfg.preset}: its layer and pooling were written for encoders (XLM-R, "
            f"mBERT); {other.name} is {KIND_WORDS[other.kind]}: it names no layer for it"
        )
    layer = convention.layer(refs[0].num_layers)
    if convention.max_length is None:  # the convention leaves it to the user
        max_length = _DEFAULT_MAX_LENGTH if cfg.max_length is None else cfg.max_length
        wanted_lengths: tuple = (None, cfg.max_length)
    else:  # the convention's, as far as every model's positions go
        max_length = min(convention.max_length, *(ref.max_positions for ref in refs))
        wanted_lengths = (None, convention.max_length, max_length)
    conflicts = [
        ("--layers", cfg.layers, ("all", str(layer)), str(layer)),
        ("--pooling", cfg.pooling, (None, convention.pooling), convention.pooling),
        (
            "--exclude-special",
            cfg.exclude_special,
            (False, convention.exclude_special),
            convention.exclude_special,
        ),
        ("--max-length", cfg.max_length, wanted_lengths, max_length),
    ]
    for flag, given, allowed, wanted in conflicts:
        if given not in allowed:
            raise AlignError(
                f"{flag} {given}: --preset {cfg.preset} sets it to {wanted} (the "
                f"{convention.label}); drop one of the two"
            )
    cfg = replace(
        cfg,
        layers=str(layer),
        pooling=convention.pooling,
        exclude_special=convention.exclude_special,
        max_length=max_length,
    )
    return cfg, convention.record(layer, max_length)


def check_room(refs: list[ModelRef], options: EncodeOptions) -> None:
    """Refuse a ``--max-length`` that leaves no token of any sentence: <s>, </s> and the
    prefix would fill every input, and every embedding would be the same vector. Tokenizers
    are read only where it could happen (a prefix of c characters is at most c + 2 tokens)."""
    if options.max_length >= len(options.prefix) + 8:
        return
    from transformers import AutoTokenizer

    from align.models.loading import quiet_transformers

    quiet_transformers()
    for ref in refs:
        tok = AutoTokenizer.from_pretrained(ref.path)
        taken = len(tok("", add_special_tokens=True)["input_ids"])
        if options.prefix:
            taken += len(tok(options.prefix, add_special_tokens=False)["input_ids"])
        if options.max_length <= taken:
            raise AlignError(
                f"--max-length {options.max_length}: leaves no token of any sentence for "
                f"{ref.name}: its special tokens and the prefix {options.prefix!r} take {taken}"
            )


def check_same_models(refs: list[ModelRef], params: list[str], specs: list[str | None]) -> None:
    """No model given twice (by path, or by weights under another path)."""
    from align.models.loading import model_fingerprint

    seen: dict[str, str] = {}
    for ref, param, spec in zip(refs, params, specs, strict=True):
        flag = "--" + param.replace("_", "-")
        for key in (f"path {ref.path.resolve()}", f"weights {model_fingerprint(ref.path)}"):
            if key in seen:
                raise AlignError(
                    f"{flag} {spec}: the same model as {seen[key]} (same {key.split()[0]}); "
                    "give each model once",
                    param=param,
                )
            seen[key] = f"{flag} {spec}"


def check_tokenizers(refs: list[ModelRef], params: list[str], allow: bool) -> None:
    """Models put side by side split text alike, unless the user asks otherwise."""
    base = refs[0]
    for ref, param in zip(refs[1:], params[1:], strict=True):
        if ref.tokenizer_hash != base.tokenizer_hash and not allow:
            raise AlignError(
                f"{param} {ref.path}: its tokenizer differs from {base.name}'s (sha256 "
                f"{ref.tokenizer_hash[:12]} vs {base.tokenizer_hash[:12]}): each sentence would "
                "be split differently in the two models; pass --allow-tokenizer-mismatch to "
                "compare them anyway",
                param=param,
            )


def check_models(cfg: EncodeRunConfig, refs: list[ModelRef]) -> list[int]:
    """Layers resolved against the first model; --max-length against every model's positions."""
    for ref in refs:
        if cfg.max_length > ref.max_positions:
            raise AlignError(
                f"--max-length {cfg.max_length}: {ref.name} takes at most {ref.max_positions} "
                "tokens per sentence"
            )
    return parse_layers(cfg.layers, refs[0].num_layers)


def prepare(
    cfg: EncodeRunConfig,
    task: RetrievalTask,
    specs: list[str | None] | None = None,
    params: list[str] | None = None,
) -> Prepared:
    """Check arguments, read the data, describe the models; no weights are loaded here.

    ``params``: the config field naming each model (for errors: ``ckpt``, ``ckpt_b``, ...).
    Ends by locking the output folder: one run writes into it at a time.
    """
    started, t0 = dt.datetime.now(dt.timezone.utc), time.perf_counter()
    fix_mmap_threshold()  # large blocks mapped and returned: the heap does not fragment
    params = params or ["ckpt"] * len(specs or [cfg.ckpt])
    cfg.validate()
    specs = specs if specs is not None else [cfg.ckpt]
    if cfg.use_cache or cfg.data_dir is None or any(is_default_model(s) for s in specs):
        check_cache_dir()  # the cache, the demo data and the default model live there
    seed_everything(cfg.seed)
    if cfg.data is not None and cfg.data_dir is not None:
        raise AlignError(f"--data {cfg.data}: give --data-dir or --data, not both")
    dataset = datasets.read(task, cfg.data_dir, cfg.langs, cfg.demo_n, cfg.seed, cfg.data)
    refs = [describe_model(spec, param) for spec, param in zip(specs, params, strict=True)]
    refs = [replace(ref, name=name) for ref, name in zip(refs, distinct_names(refs), strict=True)]
    for ref in refs:
        what = KIND_WORDS[ref.kind]
        pad = f"; pads with {ref.pad_token_added} (no pad token)" if ref.pad_token_added else ""
        log.info("%s: %s (%s, %d layers)%s", ref.name, what, ref.model_type, ref.num_layers, pad)
    cfg, convention = apply_preset(cfg, task, refs)
    layers = check_models(cfg, refs)
    dist = Distributed.from_env(resolve_device(cfg.device))
    device = dist.device(resolve_device(cfg.device))
    dtype = resolve_dtype(cfg.dtype, device)
    options = resolve_encoding(cfg, refs, device, dtype)
    check_room(refs, options)
    resolved = replace(
        cfg,
        prefix=options.prefix,
        pooling=options.pooling,
        batch_tokens=options.batch_tokens,
        device=device,
        dtype=dtype,
        data_dir=dataset.root,
    )
    prep = Prepared(resolved, task, dataset, refs, layers, options, started, t0, dist=dist)
    prep.convention = convention
    if dist.is_main:  # the other ranks of a launcher write nothing into --out
        prep.lock = OutputLock(cfg.out).acquire()
    return prep
