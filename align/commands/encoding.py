"""What every encoding command shares: its flags, checks, data and model set-up, result writing.

``prepare`` checks every argument, path and data file and describes every model from its files
(depth, positions, encoding defaults) before any weights are loaded, so bad input fails in one
line before work is done. It also settles the encoding options once for all models: a checkpoint
inherits its base model's prefix and pooling, and two models whose defaults differ are refused
unless the user sets that option explicitly. ``finish`` writes the one results schema
(JSON + JSONL) and the figure.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from align._io import JsonlWriter, OutputLock, check_cache_dir, check_output_dir
from align.commands.base import RunResult, option
from align.distributed import SINGLE, Distributed
from align.encode import POOLINGS, EncodeOptions, Pooling, encode_to_store
from align.errors import AlignError
from align.layers import parse_layers
from align.models.loading import (
    DType,
    EncoderHandle,
    LoadedEncoder,
    ModelRef,
    describe_model,
    distinct_names,
    is_default_model,
    resolve_device,
    resolve_dtype,
)
from align.options import check_seed, require_at_least
from align.results import build_result, jsonable, save_result
from align.retrieval import datasets
from align.retrieval.datasets import Dataset
from align.retrieval.tasks import RetrievalTask, TaskParams
from align.store import EmbeddingCache, LayerStore, ModelSets, ScratchSpace
from align.vectors import INDEX_KINDS, IndexKind, IndexSpec

log = logging.getLogger(__name__)

ENCODING_OPTIONS = ("prefix", "pooling")  # the options a model has defaults for


@dataclass
class EncodeRunConfig:
    """Flags shared by every command that encodes parallel data (retrieve, cka, probe, ...)."""

    ckpt: str | None = option(
        None, "model: HF id, local or checkpoint dir (default: offline multilingual-e5-small)"
    )
    data_dir: Path | None = option(
        None, "XTREME-layout data directory (default: the Bible demo set, built offline)"
    )
    langs: str | None = option(
        None, "comma list, deu,fra or de,fr (default: the demo languages / all in --data-dir)"
    )
    layers: str = option("all", "all | 8 | 4-12 | -1 | 0,6,12 (0 = embedding layer)")
    pooling: Pooling | None = option(
        None, "mean | cls | max (default: the model's own; mean for E5 and XLM-R)"
    )
    exclude_special: bool = option(False, "leave <s>, </s> out of mean/max pooling")
    batch_size: int = option(32, "sentences per forward pass")
    max_length: int = option(128, "tokens per sentence (longer ones are truncated)")
    device: str = option("auto", "auto | cpu | cuda | cuda:N")
    dtype: DType = option("auto", "auto = float32 on CPU, bf16 on CUDA")
    prefix: str | None = option(
        None, "prepended to every sentence (default: the model's own, 'query: ' for E5)"
    )
    demo_n: int = option(1000, "sentences per language in the Bible demo set")
    seed: int = option(0, "seed of every sampled choice (demo verses, subsamples, bootstrap)")
    out: Path = option(Path("results"), "output directory")
    use_cache: bool = option(True, "do not read or write the embedding cache", flag="--no-cache")
    plot: bool = option(True, "do not draw figures", flag="--no-plot")
    progress: bool = option(True, "progress bars (the CLI shows them on a terminal)", cli=False)

    def validate(self) -> None:
        """Argument checks that need no file or model; raise a one-line :class:`AlignError`."""
        require_at_least(
            ("--batch-size", self.batch_size, 1),
            ("--max-length", self.max_length, 2),
            ("--demo-n", self.demo_n, 1),
        )
        check_seed(self.seed)
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise AlignError(f"--pooling {self.pooling!r}: expected one of {', '.join(POOLINGS)}")
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
    min_recall: float = option(0.95, "warn when an approximate index's recall@k falls below")

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


class Embedder:
    """One model's encoding with the run's options, into the cache or the run's scratch space;
    counts encoding time. ``encoder`` is a handle: the weights load on the first cache miss."""

    def __init__(
        self,
        encoder: EncoderHandle,
        options: EncodeOptions,
        cache: EmbeddingCache | None,
        scratch: ScratchSpace,
        progress: bool,
        dist: Distributed = SINGLE,
    ):
        self.encoder, self.options, self.cache = encoder, options, cache
        self.scratch, self.progress, self.dist = scratch, progress, dist
        self.seconds = 0.0

    def __call__(self, texts: list[str], what: str = "set") -> LayerStore:
        start = time.perf_counter() - self.encoder.load_s  # loading is not encoding
        out = encode_to_store(
            self.encoder,
            texts,
            self.options,
            self.cache,
            self.scratch,
            self.progress and self.dist.is_main,
            what,
            self.dist,
        )
        self.seconds += time.perf_counter() - self.encoder.load_s - start
        return out


@dataclass
class Prepared:
    """A run whose inputs are checked: data read, models described (loaded on first use)."""

    cfg: Any  # the resolved config (device, dtype, prefix, pooling, data_dir filled in)
    task: RetrievalTask
    dataset: Dataset
    refs: list[ModelRef]
    layers: list[int]
    options: EncodeOptions
    started: dt.datetime
    t0: float
    timings: dict[str, float] = field(default_factory=dict)
    keep_models: bool = False  # keep weights loaded after encoding (the transplant sweep)
    scratch: ScratchSpace = field(default_factory=ScratchSpace, repr=False)
    lock: OutputLock | None = field(default=None, repr=False)
    dist: Distributed = field(default_factory=Distributed, repr=False)
    _embedders: dict[int, Embedder] = field(default_factory=dict, repr=False)
    _stores: dict[tuple[int, str], dict[str, LayerStore]] = field(default_factory=dict, repr=False)

    @property
    def langs(self) -> list[str]:
        return self.dataset.langs

    @property
    def data(self) -> dict[str, Any]:
        return self.dataset.data

    @property
    def data_info(self) -> dict[str, Any]:
        return self.dataset.info()

    def embedder(self, index: int = 0) -> Embedder:
        """The embedder of model ``index`` (its weights load on the first cache miss)."""
        if index not in self._embedders:
            handle = EncoderHandle(self.refs[index], self.cfg.device, self.cfg.dtype)
            cache = EmbeddingCache() if self.cfg.use_cache else None
            self._embedders[index] = Embedder(
                handle, self.options, cache, self.scratch, self.cfg.progress, self.dist
            )
        return self._embedders[index]

    def loaded(self, index: int) -> LoadedEncoder:
        """Model ``index`` in memory (for work on the model itself: the transplant sweep)."""
        return self.embedder(index).encoder.load()

    @property
    def load_s(self) -> float:
        return sum(e.encoder.load_s for e in self._embedders.values())

    def release_models(self) -> None:
        """Let every model's weights go, unless the run keeps them (``keep_models``)."""
        if not self.keep_models:
            for embedder in self._embedders.values():
                embedder.encoder.release()

    def encode(self, index: int, lang: str) -> dict[str, LayerStore]:
        """Every sentence set of ``lang`` encoded by model ``index`` (stores on disk; encoded
        once per run, whether or not the cache is used)."""
        key = (index, lang)
        if key not in self._stores:
            embed = self.embedder(index)
            self._stores[key] = {
                name: embed(texts, f"{lang}.{name}")
                for name, texts in self.task.sets(self.data[lang]).items()
            }
        return self._stores[key]

    def model_sets(self, index: int) -> ModelSets:
        """Model ``index``'s stores of every language (its weights are let go after them,
        unless the run keeps them)."""
        stores = {lang: self.encode(index, lang) for lang in self.langs}
        if not self.keep_models:
            self.embedder(index).encoder.release()
        return ModelSets(self.embedder(index).encoder.name, stores)

    @property
    def encoder(self) -> EncoderHandle:
        return self.embedder(0).encoder

    @property
    def encode_s(self) -> float:
        return sum(e.seconds for e in self._embedders.values())

    @property
    def search_device(self) -> str:
        return "cuda" if str(self.cfg.device).startswith("cuda") else "cpu"

    def task_params(self, margin_k: int = 4, mining: str = "max") -> TaskParams:
        cfg = self.cfg
        if not isinstance(cfg, SearchConfig):
            return TaskParams(margin_k, mining, self.search_device)  # type: ignore[arg-type]
        return TaskParams(
            margin_k,
            mining,  # type: ignore[arg-type]
            self.search_device,
            cfg.index_spec(cfg.seed),
            cfg.recall_sample,
            cfg.min_recall,
        )

    def encoded(self) -> RunResult | None:
        """Call once every set is encoded: under a launcher, ranks other than 0 are done then
        (their result says what they encoded; they write nothing); rank 0 goes on (None)."""
        self.dist.collect()
        self.release_models()
        if self.dist.is_main:
            return None
        info = {"rank": self.dist.rank, "encoded": self.dist.encoded}
        return RunResult(info, None, text=f"rank {self.dist.rank}: encoded {self.dist.encoded}")

    def close(self) -> None:
        self.scratch.close()
        if self.lock is not None:
            self.lock.release()

    def __enter__(self) -> Prepared:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_encoding(cfg: EncodeRunConfig, refs: list[ModelRef]) -> EncodeOptions:
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
    return EncodeOptions(
        chosen["pooling"],  # type: ignore[arg-type]
        cfg.max_length,
        cfg.batch_size,
        chosen["prefix"],
        cfg.exclude_special,
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
    params = params or ["ckpt"] * len(specs or [cfg.ckpt])
    cfg.validate()
    specs = specs if specs is not None else [cfg.ckpt]
    if cfg.use_cache or cfg.data_dir is None or any(is_default_model(s) for s in specs):
        check_cache_dir()  # the cache, the demo data and the default model live there
    seed_everything(cfg.seed)
    dataset = datasets.read(task, cfg.data_dir, cfg.langs, cfg.demo_n, cfg.seed)
    refs = [describe_model(spec, param) for spec, param in zip(specs, params, strict=True)]
    refs = [replace(ref, name=name) for ref, name in zip(refs, distinct_names(refs), strict=True)]
    layers = check_models(cfg, refs)
    options = resolve_encoding(cfg, refs)
    dist = Distributed.from_env(resolve_device(cfg.device))
    device = dist.device(resolve_device(cfg.device))
    resolved = replace(
        cfg,
        prefix=options.prefix,
        pooling=options.pooling,
        device=device,
        dtype=resolve_dtype(cfg.dtype, device),
        data_dir=dataset.root,
    )
    prep = Prepared(resolved, task, dataset, refs, layers, options, started, t0, dist=dist)
    if dist.is_main:  # the other ranks of a launcher write nothing into --out
        prep.lock = OutputLock(cfg.out).acquire()
    return prep


def model_info(encoder: EncoderHandle | LoadedEncoder) -> dict[str, Any]:
    info = {
        "name": encoder.name,
        "path": str(encoder.path),
        "fingerprint": encoder.fingerprint,
        "num_layers": encoder.num_layers,
        "hidden_size": encoder.hidden_size,
    }
    if encoder.ref is not None:
        info["encoding_defaults"] = {
            "prefix": encoder.ref.encoding.prefix,
            "pooling": encoder.ref.encoding.pooling,
            "source": encoder.ref.encoding_source,
        }
    return info


def slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def finish(
    prep: Prepared,
    command: str,
    kind: str,
    stem: str,
    scores: list[dict[str, Any]],
    examples: JsonlWriter | None,
    plot: Callable[[Path], Path | None] | None,
    extra_model: dict[str, Any] | None = None,
    text: Callable[[dict[str, Any]], str] | None = None,
    fields: dict[str, Any] | None = None,
) -> RunResult:
    """Write ``{cfg.out}/{stem}.json`` (+ JSONL) in the results schema and, if asked, the figure."""
    elapsed = time.perf_counter() - prep.t0
    timings = {
        "load_model_s": prep.load_s,
        "encode_s": prep.encode_s,
        "score_s": elapsed - prep.load_s - prep.encode_s,
        **prep.timings,
    }
    model = model_info(prep.encoder) | (extra_model or {})
    config = jsonable(prep.cfg) | {"streaming": True, "distributed": prep.dist.summary()}
    result = build_result(
        command=command,
        task=kind,
        model=model,
        checkpoint=prep.cfg.ckpt,
        languages=prep.langs,
        layers=prep.layers,
        config=config,
        data=prep.data_info,
        seed=prep.cfg.seed,
        started=prep.started,
        elapsed_s=elapsed,
        timings=timings,
        scores=scores,
    ) | (fields or {})
    path = save_result(result, Path(prep.cfg.out) / f"{stem}.json", examples)
    if examples is not None:
        result["examples"] = examples.target.name
    figures = []
    if plot and prep.cfg.plot and (figure := plot(path)) is not None:
        figures.append(figure)
    return RunResult(result, path, figures, text(result) if text else "")


def examples_path(cfg: EncodeRunConfig, stem: str) -> Path:
    return Path(cfg.out) / f"{stem}.examples.jsonl"
