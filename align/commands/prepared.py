"""A checked run: its data, its models (described, weights loaded on the first cache miss and
let go after encoding), its embedding stores and its timings. Made by
:func:`align.commands.encoding.prepare`."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from align._io import OutputLock
from align.commands.base import RunResult
from align.distributed import SINGLE, Distributed
from align.encode import EncodeOptions, encode_to_store
from align.models.handle import EncoderHandle
from align.models.loading import LoadedEncoder, ModelRef
from align.retrieval.datasets import Dataset
from align.retrieval.tasks import RetrievalTask, TaskParams
from align.store import EmbeddingCache, LayerStore, ModelSets, ScratchSpace


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
        self.truncated: dict[str, int] = {}  # set -> sentences cut at --max-length

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
        if cut := int(out.meta.get("truncated", 0)):
            self.truncated[what] = cut
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
    convention: dict[str, Any] | None = None  # --preset: the convention the run follows
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

    def each_layer(
        self, what: str, langs: list[str] | None = None, index: int = 0
    ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """``(layer, {lang: [n, d]})`` for every layer of the run: each language's one set (a
        multi-way task's), read one layer at a time, under a progress step named ``what``."""
        from align.progress import step

        stores = {lang: self.encode(index, lang) for lang in langs or self.langs}
        with step(what, len(self.layers), "layer", self.cfg.progress) as update:
            for layer in self.layers:
                yield (
                    layer,
                    {lang: next(iter(s.values())).layer(layer) for lang, s in stores.items()},
                )
                update(1)

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
    def truncated(self) -> dict[str, dict[str, int]]:
        """Per model, the sentences of each set cut at ``--max-length`` (none: not listed)."""
        return {e.encoder.name: dict(e.truncated) for e in self._embedders.values() if e.truncated}

    @property
    def encode_s(self) -> float:
        return sum(e.seconds for e in self._embedders.values())

    @property
    def search_device(self) -> str:
        return "cuda" if str(self.cfg.device).startswith("cuda") else "cpu"

    def task_params(
        self, margin_k: int = 4, mining: str = "max", transforms: bool = False
    ) -> TaskParams:
        """The scoring settings; ``transforms``: also after the cross-fitted maps (BUCC's
        f1_procrustes), with the run's ``--map-folds`` and seed."""
        cfg = self.cfg
        maps = {"transforms": transforms, "map_folds": getattr(cfg, "map_folds", 5)}
        maps["seed"] = cfg.seed
        if not hasattr(cfg, "index_spec"):  # a command without search flags (SearchConfig)
            return TaskParams(margin_k, mining, self.search_device, **maps)  # type: ignore[arg-type]
        return TaskParams(
            margin_k,
            mining,  # type: ignore[arg-type]
            self.search_device,
            cfg.index_spec(cfg.seed),
            cfg.recall_sample,
            cfg.min_recall,
            **maps,
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
