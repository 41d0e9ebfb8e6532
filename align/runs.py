"""What every encoding command shares: its config fields, data and model set-up, result writing.

``prepare`` validates the data (files, languages) before any model is loaded, then loads the
encoder and resolves layers, so bad input fails before work is done; ``finish`` writes the one
results schema (JSON + JSONL) and the figure.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from align._io import atomic_dir, cache_dir
from align.data import bible, xtreme
from align.data import langs as langcodes
from align.encode import EmbeddingCache, EncodeOptions, Pooling, encode_layers
from align.errors import AlignError
from align.layers import parse_layers
from align.models.loading import DType, LoadedEncoder, load_encoder
from align.results import build_result, save_result

log = logging.getLogger(__name__)

DataTask = Literal["tatoeba", "bucc"]
DEMO_LANGS: dict[str, str] = {"tatoeba": "de,fr,es,ru,ar,vi", "bucc": "de,fr,ru"}


@dataclass
class EncodeRunConfig:
    """Flags shared by ``align retrieve``, ``align cka`` and ``align probe``."""

    ckpt: str | None = None  # None: the offline default model
    data_dir: Path | None = None  # None: the Bible demo set, built once in the cache
    langs: str | None = None  # None: demo languages, or every language in data_dir
    layers: str = "all"
    pooling: Pooling = "mean"
    batch_size: int = 32
    max_length: int = 128
    device: str = "auto"
    dtype: DType = "auto"
    prefix: str | None = None  # None: the model's own default ("query: " for E5)
    exclude_special: bool = False
    seed: int = 0
    out: Path = Path("results")
    demo_n: int = 1000
    use_cache: bool = True
    plot: bool = True
    progress: bool = True


class Embedder:
    """``encode_layers`` with the run's encoder, options and cache; counts encoding time."""

    def __init__(
        self,
        encoder: LoadedEncoder,
        options: EncodeOptions,
        cache: EmbeddingCache | None,
        progress: bool,
    ):
        self.encoder, self.options, self.cache, self.progress = encoder, options, cache, progress
        self.seconds = 0.0

    def __call__(self, texts: list[str]) -> np.ndarray:
        start = time.perf_counter()
        out = encode_layers(self.encoder, texts, self.options, self.cache, self.progress)
        self.seconds += time.perf_counter() - start
        return out


@dataclass
class Prepared:
    cfg: Any  # the resolved config (device, dtype, prefix, data_dir filled in)
    task: DataTask
    data_dir: Path
    langs: list[str]
    data: dict[str, Any]
    encoder: LoadedEncoder
    layers: list[int]
    embed: Embedder
    started: dt.datetime
    t0: float
    load_s: float
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def search_device(self) -> str:
        return "cuda" if self.encoder.device.startswith("cuda") else "cpu"


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _demo_dir(cfg: EncodeRunConfig, task: DataTask, langs: list[str]) -> Path:
    iso = [langcodes.iso1(code) for code in langs]
    root = cache_dir() / "data" / f"bible-{task}-n{cfg.demo_n}-seed{cfg.seed}-{'_'.join(iso)}"
    if not (root / "bible_meta.json").is_file():
        log.info("building the Bible demo set (%s, %s) -> %s", task, ",".join(iso), root)
        build = bible.build_tatoeba_demo if task == "tatoeba" else bible.build_bucc_demo
        with atomic_dir(root) as tmp:
            build(tmp, iso, n=cfg.demo_n, seed=cfg.seed)
    return root


def resolve_data(cfg: EncodeRunConfig, task: DataTask) -> tuple[Path, list[str]]:
    """(data directory, file-name language codes), validated before any model is loaded."""
    if cfg.data_dir is None:
        langs = langcodes.parse_langs(cfg.langs or DEMO_LANGS[task], task)
        return _demo_dir(cfg, task, langs), langs
    data_dir = Path(cfg.data_dir)
    if not data_dir.is_dir():
        raise AlignError(f"--data-dir {data_dir}: not a directory")
    available = xtreme.available_langs(data_dir, task)
    if cfg.langs is None:
        if not available:
            raise AlignError(f"--data-dir {data_dir}: no {task} files in the XTREME layout found")
        return data_dir, sorted(available)
    return data_dir, langcodes.parse_langs(cfg.langs, task, available)


def read_data(task: DataTask, data_dir: Path, langs: list[str]) -> dict[str, Any]:
    if task == "tatoeba":
        return {lang: xtreme.read_tatoeba(data_dir, lang) for lang in langs}
    return {
        lang: {s: xtreme.read_bucc(data_dir, lang, s) for s in xtreme.BUCC_SPLITS} for lang in langs
    }


def prepare(cfg: EncodeRunConfig, task: DataTask, ckpt: str | None = None) -> Prepared:
    """Validate data and arguments, load the encoder, resolve layers and the prefix."""
    started, t0 = dt.datetime.now(dt.timezone.utc), time.perf_counter()
    seed_everything(cfg.seed)
    data_dir, langs = resolve_data(cfg, task)
    data = read_data(task, data_dir, langs)
    options = EncodeOptions(
        cfg.pooling, cfg.max_length, cfg.batch_size, cfg.prefix or "", cfg.exclude_special
    )
    t_load = time.perf_counter()
    encoder = load_encoder(cfg.ckpt if ckpt is None else ckpt, cfg.device, cfg.dtype)
    layers = parse_layers(cfg.layers, encoder.num_layers)
    if cfg.prefix is None:
        options = replace(options, prefix=encoder.default_prefix)
    resolved = replace(
        cfg, prefix=options.prefix, device=encoder.device, dtype=encoder.dtype, data_dir=data_dir
    )
    embed = Embedder(encoder, options, EmbeddingCache() if cfg.use_cache else None, cfg.progress)
    return Prepared(
        resolved,
        task,
        data_dir,
        langs,
        data,
        encoder,
        layers,
        embed,
        started,
        t0,
        time.perf_counter() - t_load,
    )


def model_info(encoder: LoadedEncoder) -> dict[str, Any]:
    return {
        "name": encoder.name,
        "path": str(encoder.path),
        "fingerprint": encoder.fingerprint,
        "num_layers": encoder.num_layers,
        "hidden_size": int(encoder.model.config.hidden_size),
    }


def _data_size(task: str, data: Any) -> dict[str, int]:
    if task == "tatoeba":
        return {"pairs": len(data.src)}
    return {
        f"{s}_{k}": len(getattr(data[s], k)) for s in xtreme.BUCC_SPLITS for k in ("src", "tgt")
    }


def slug(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def finish(
    prep: Prepared,
    command: str,
    kind: str,
    stem: str,
    scores: list[dict[str, Any]],
    examples: list[dict[str, Any]] | None,
    plot: Callable[[Path], Path | None] | None,
    extra_model: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], Path, Path | None]:
    """Write ``{cfg.out}/{stem}.json`` (+ JSONL) in the results schema and, if asked, the figure."""
    elapsed = time.perf_counter() - prep.t0
    meta_path = prep.data_dir / "bible_meta.json"
    data_info = {
        "dir": str(prep.data_dir),
        "sizes": {lang: _data_size(prep.task, prep.data[lang]) for lang in prep.langs},
        "demo": meta_path.is_file(),  # a Bible-built set (the default, or align data bible)
        "meta": meta_path.name if meta_path.is_file() else None,
    }
    timings = {
        "load_model_s": prep.load_s,
        "encode_s": prep.embed.seconds,
        "score_s": elapsed - prep.load_s - prep.embed.seconds,
        **prep.timings,
    }
    model = model_info(prep.encoder) | (extra_model or {})
    result = build_result(
        command=command,
        task=kind,
        model=model,
        checkpoint=prep.cfg.ckpt,
        languages=prep.langs,
        layers=prep.layers,
        config=prep.cfg,
        data=data_info,
        seed=prep.cfg.seed,
        started=prep.started,
        elapsed_s=elapsed,
        timings=timings,
        scores=scores,
    )
    path = save_result(result, Path(prep.cfg.out) / f"{stem}.json", examples)
    plot_path = plot(path) if (plot and prep.cfg.plot) else None
    return result, path, plot_path
