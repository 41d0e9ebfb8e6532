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
from typing import Any, Literal

import numpy as np

from align._io import atomic_dir, cache_dir, check_output_dir
from align.commands.base import RunResult, option
from align.data import bible, xtreme
from align.data import langs as langcodes
from align.encode import POOLINGS, EmbeddingCache, EncodeOptions, Pooling, encode_layers
from align.errors import AlignError
from align.layers import parse_layers
from align.models.loading import (
    DType,
    LoadedEncoder,
    ModelRef,
    describe_model,
    load_encoder,
    resolve_device,
    resolve_dtype,
)
from align.options import require_at_least
from align.results import build_result, save_result

log = logging.getLogger(__name__)

DataTask = Literal["tatoeba", "bucc"]
DEMO_LANGS: dict[str, str] = {"tatoeba": "de,fr,es,ru,ar,vi", "bucc": "de,fr,ru"}
MIN_RELIABLE_N = 100  # below this many sentences a score's 95% interval spans about +-0.1
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
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise AlignError(f"--pooling {self.pooling!r}: expected one of {', '.join(POOLINGS)}")
        check_output_dir(self.out)


class Embedder:
    """``encode_layers`` with one model, the run's options and cache; counts encoding time."""

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
    """A run whose inputs are checked: data read, models described (loaded on first use)."""

    cfg: Any  # the resolved config (device, dtype, prefix, pooling, data_dir filled in)
    task: DataTask
    data_dir: Path
    langs: list[str]
    data: dict[str, Any]
    data_info: dict[str, Any]
    refs: list[ModelRef]
    layers: list[int]
    options: EncodeOptions
    started: dt.datetime
    t0: float
    load_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    _embedders: dict[int, Embedder] = field(default_factory=dict, repr=False)

    def embedder(self, index: int = 0) -> Embedder:
        """The embedder of model ``index`` (its weights are loaded on first use)."""
        if index not in self._embedders:
            start = time.perf_counter()
            encoder = load_encoder(self.refs[index], self.cfg.device, self.cfg.dtype)
            self.load_s += time.perf_counter() - start
            cache = EmbeddingCache() if self.cfg.use_cache else None
            self._embedders[index] = Embedder(encoder, self.options, cache, self.cfg.progress)
        return self._embedders[index]

    @property
    def embed(self) -> Embedder:
        return self.embedder(0)

    @property
    def encoder(self) -> LoadedEncoder:
        return self.embedder(0).encoder

    @property
    def encode_s(self) -> float:
        return sum(e.seconds for e in self._embedders.values())

    @property
    def search_device(self) -> str:
        return "cuda" if str(self.cfg.device).startswith("cuda") else "cpu"


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


def read_data(
    task: DataTask, data_dir: Path, langs: list[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Every language's sets, and (BUCC) the file naming found for each language."""
    if task == "tatoeba":
        return {lang: xtreme.read_tatoeba(data_dir, lang) for lang in langs}, {}
    layouts = {lang: xtreme.bucc_layout(data_dir, lang) for lang in langs}
    for lang, layout in layouts.items():
        if layout != "xtreme":
            log.info("BUCC %s: BUCC 2018 release names found (sample = dev, training = test)", lang)
    data = {
        lang: {s: xtreme.read_bucc(data_dir, lang, s, layouts[lang]) for s in xtreme.BUCC_SPLITS}
        for lang in langs
    }
    return data, layouts


def data_size(task: str, data: Any) -> dict[str, int]:
    if task == "tatoeba":
        return {"pairs": len(data.src)}
    sizes = {
        f"{s}_{k}": len(getattr(data[s], k)) for s in xtreme.BUCC_SPLITS for k in ("src", "tgt")
    }
    return sizes | {f"{s}_gold": len(data[s].gold or []) for s in xtreme.BUCC_SPLITS}


def _warn_small(task: DataTask, langs: list[str], sizes: dict[str, dict[str, int]]) -> None:
    for lang in langs:
        n = sizes[lang]["pairs"] if task == "tatoeba" else sizes[lang]["test_gold"]
        if 0 < n < MIN_RELIABLE_N:
            log.warning(
                "%s: only %d %s: a score on so few means little (a 95%% interval spans about "
                "±%.2f); use at least %d",
                lang,
                n,
                "pairs" if task == "tatoeba" else "gold pairs",
                min(1.0, 1 / np.sqrt(n)),
                MIN_RELIABLE_N,
            )


def dataset_name(task: DataTask, data_dir: Path, cfg: EncodeRunConfig) -> str:
    """How figures and tables name the data: the Bible demo set is not Tatoeba or BUCC."""
    if cfg.data_dir is None:
        return f"Bible demo set ({task} layout, New Testament, n={cfg.demo_n})"
    if (data_dir / "bible_meta.json").is_file():
        return f"Bible set {data_dir.name} ({task} layout)"
    return f"{'Tatoeba' if task == 'tatoeba' else 'BUCC'} ({data_dir.name})"


def _data_info(prep_task: DataTask, data_dir: Path, langs, data, layouts, cfg) -> dict[str, Any]:
    meta_path = data_dir / "bible_meta.json"
    info = {
        "name": dataset_name(prep_task, data_dir, cfg),
        "dir": str(data_dir),
        "sizes": {lang: data_size(prep_task, data[lang]) for lang in langs},
        "demo": meta_path.is_file(),  # a Bible-built set (the default, or align data bible)
        "meta": meta_path.name if meta_path.is_file() else None,
    }
    if layouts:
        info["bucc_layout"] = layouts
    return info


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
    cfg: EncodeRunConfig, task: DataTask, specs: list[str | None] | None = None
) -> Prepared:
    """Check arguments, read the data, describe the models; no weights are loaded here."""
    started, t0 = dt.datetime.now(dt.timezone.utc), time.perf_counter()
    cfg.validate()
    seed_everything(cfg.seed)
    data_dir, langs = resolve_data(cfg, task)
    data, layouts = read_data(task, data_dir, langs)
    data_info = _data_info(task, data_dir, langs, data, layouts, cfg)
    _warn_small(task, langs, data_info["sizes"])
    refs = [describe_model(spec) for spec in (specs if specs is not None else [cfg.ckpt])]
    layers = check_models(cfg, refs)
    options = resolve_encoding(cfg, refs)
    device = resolve_device(cfg.device)
    resolved = replace(
        cfg,
        prefix=options.prefix,
        pooling=options.pooling,
        device=device,
        dtype=resolve_dtype(cfg.dtype, device),
        data_dir=data_dir,
    )
    return Prepared(
        resolved, task, data_dir, langs, data, data_info, refs, layers, options, started, t0
    )


def model_info(encoder: LoadedEncoder) -> dict[str, Any]:
    info = {
        "name": encoder.name,
        "path": str(encoder.path),
        "fingerprint": encoder.fingerprint,
        "num_layers": encoder.num_layers,
        "hidden_size": int(encoder.model.config.hidden_size),
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
    examples: list[dict[str, Any]] | None,
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
    result = build_result(
        command=command,
        task=kind,
        model=model,
        checkpoint=prep.cfg.ckpt,
        languages=prep.langs,
        layers=prep.layers,
        config=prep.cfg,
        data=prep.data_info,
        seed=prep.cfg.seed,
        started=prep.started,
        elapsed_s=elapsed,
        timings=timings,
        scores=scores,
    ) | (fields or {})
    path = save_result(result, Path(prep.cfg.out) / f"{stem}.json", examples)
    figures = []
    if plot and prep.cfg.plot and (figure := plot(path)) is not None:
        figures.append(figure)
    return RunResult(result, path, figures, text(result) if text else "", examples or [])
