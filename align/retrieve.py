"""``align retrieve``: per-layer Tatoeba accuracy / BUCC F1 for one encoder on one dataset."""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from align._io import cache_dir
from align.data import bible, xtreme
from align.data import langs as langcodes
from align.encode import EmbeddingCache, EncodeOptions, Pooling, encode_layers
from align.errors import AlignError
from align.layers import parse_layers
from align.models.loading import DType, LoadedEncoder, load_encoder
from align.results import build_result, save_result, score_record
from align.retrieval import bucc as bucc_lib
from align.retrieval.tatoeba import retrieve_top1, xsim_error

log = logging.getLogger(__name__)

RetrievalTask = Literal["tatoeba", "bucc"]
DEMO_LANGS: dict[str, str] = {"tatoeba": "de,fr,es,ru,ar,vi", "bucc": "de,fr,ru"}


@dataclass
class RetrieveConfig:
    """Everything ``align retrieve`` needs; saved, resolved, in every result."""

    ckpt: str | None = None  # None: the offline default model
    task: RetrievalTask = "tatoeba"
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
    mining: bucc_lib.MiningMode = "max"
    margin_k: int = 4
    demo_n: int = 1000
    use_cache: bool = True
    plot: bool = True
    progress: bool = True


@dataclass
class RetrieveRun:
    result: dict[str, Any]
    result_path: Path
    plot_path: Path | None = None
    examples: list[dict[str, Any]] = field(default_factory=list, repr=False)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _demo_dir(cfg: RetrieveConfig, langs: list[str]) -> Path:
    iso = [langcodes.iso1(code) for code in langs]
    root = cache_dir() / "data" / f"bible-{cfg.task}-n{cfg.demo_n}-seed{cfg.seed}-{'_'.join(iso)}"
    if not (root / "bible_meta.json").is_file():
        log.info("building the Bible demo set (%s, %s) -> %s", cfg.task, ",".join(iso), root)
        from align._io import atomic_dir

        build = bible.build_tatoeba_demo if cfg.task == "tatoeba" else bible.build_bucc_demo
        with atomic_dir(root) as tmp:
            build(tmp, iso, n=cfg.demo_n, seed=cfg.seed)
    return root


def resolve_data(cfg: RetrieveConfig) -> tuple[Path, list[str]]:
    """(data directory, file-name language codes), validated before any model is loaded."""
    if cfg.task not in ("tatoeba", "bucc"):
        raise AlignError(f"--task {cfg.task!r}: expected tatoeba or bucc")
    if cfg.data_dir is None:
        langs = langcodes.parse_langs(cfg.langs or DEMO_LANGS[cfg.task], cfg.task)
        return _demo_dir(cfg, langs), langs
    data_dir = Path(cfg.data_dir)
    if not data_dir.is_dir():
        raise AlignError(f"--data-dir {data_dir}: not a directory")
    available = xtreme.available_langs(data_dir, cfg.task)
    if cfg.langs is None:
        if not available:
            raise AlignError(
                f"--data-dir {data_dir}: no {cfg.task} files in the XTREME layout found"
            )
        return data_dir, sorted(available)
    return data_dir, langcodes.parse_langs(cfg.langs, cfg.task, available)


def _read_all(cfg: RetrieveConfig, data_dir: Path, langs: list[str]) -> dict[str, Any]:
    if cfg.task == "tatoeba":
        return {lang: xtreme.read_tatoeba(data_dir, lang) for lang in langs}
    return {
        lang: {s: xtreme.read_bucc(data_dir, lang, s) for s in xtreme.BUCC_SPLITS} for lang in langs
    }


class _Embedder:
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


def _score_tatoeba(
    lang: str,
    pairs: xtreme.ParallelSet,
    embed: _Embedder,
    layers: list[int],
    cfg: RetrieveConfig,
    device: str,
):
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


def _embed_split(split: xtreme.BuccSplit, embed: _Embedder) -> tuple[np.ndarray, np.ndarray]:
    return embed(list(split.src.values())), embed(list(split.tgt.values()))


def _gold_indices(split: xtreme.BuccSplit) -> set[tuple[int, int]]:
    src_pos = {sid: i for i, sid in enumerate(split.src)}
    tgt_pos = {sid: i for i, sid in enumerate(split.tgt)}
    return {(src_pos[s], tgt_pos[t]) for s, t in split.gold or []}


def _score_bucc(
    lang: str,
    splits: dict[str, xtreme.BuccSplit],
    embed: _Embedder,
    layers: list[int],
    cfg: RetrieveConfig,
    device: str,
):
    dev, test = splits["dev"], splits["test"]
    if not dev.gold:
        raise AlignError(f"BUCC {lang}: the dev split needs a gold file to choose the threshold")
    dev_x, dev_y = _embed_split(dev, embed)
    test_x, test_y = _embed_split(test, embed)
    dev_gold, test_gold = _gold_indices(dev), _gold_indices(test)
    test_src_ids, test_tgt_ids = list(test.src), list(test.tgt)
    scores, examples = [], []
    for layer in layers:
        chosen = bucc_lib.best_threshold(
            bucc_lib.mine(dev_x[layer], dev_y[layer], cfg.mining, cfg.margin_k, device), dev_gold
        )
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
                "gold": (int(s), int(t)) in test_gold,
            }
            for s, t, v in zip(cands.src[keep], cands.tgt[keep], cands.score[keep], strict=True)
        ]
    if not test_gold:
        log.warning(
            "BUCC %s: no test gold file; only the dev threshold and dev F1 are reported", lang
        )
    return scores, examples


def result_stem(cfg: RetrieveConfig, model_name: str) -> str:
    slug = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model_name)
    return f"retrieve-{cfg.task}-{slug}"


def run_retrieve(cfg: RetrieveConfig) -> RetrieveRun:
    """Validate inputs, encode every layer once, score each layer, write JSON + JSONL + plot."""
    started, t0 = dt.datetime.now(dt.timezone.utc), time.perf_counter()
    seed_everything(cfg.seed)
    data_dir, langs = resolve_data(cfg)
    data = _read_all(cfg, data_dir, langs)
    options = EncodeOptions(
        cfg.pooling, cfg.max_length, cfg.batch_size, cfg.prefix or "", cfg.exclude_special
    )
    t_load = time.perf_counter()
    encoder = load_encoder(cfg.ckpt, cfg.device, cfg.dtype)
    layers = parse_layers(cfg.layers, encoder.num_layers)
    if cfg.prefix is None:
        options = replace(options, prefix=encoder.default_prefix)
    resolved = replace(
        cfg, prefix=options.prefix, device=encoder.device, dtype=encoder.dtype, data_dir=data_dir
    )
    load_s = time.perf_counter() - t_load
    embed = _Embedder(encoder, options, EmbeddingCache() if cfg.use_cache else None, cfg.progress)
    scorer = _score_tatoeba if cfg.task == "tatoeba" else _score_bucc
    device = "cuda" if encoder.device.startswith("cuda") else "cpu"
    scores: list[dict[str, Any]] = []
    examples: list[dict[str, Any]] = []
    for lang in langs:
        log.info("%s %s: encoding and scoring %d layers", cfg.task, lang, len(layers))
        lang_scores, lang_examples = scorer(lang, data[lang], embed, layers, resolved, device)
        scores += lang_scores
        examples += lang_examples
    elapsed = time.perf_counter() - t0
    model = {
        "name": encoder.name,
        "path": str(encoder.path),
        "fingerprint": encoder.fingerprint,
        "num_layers": encoder.num_layers,
        "hidden_size": int(encoder.model.config.hidden_size),
    }
    sizes = {lang: _size(cfg.task, data[lang]) for lang in langs}
    meta_path = data_dir / "bible_meta.json"
    data_info = {
        "dir": str(data_dir),
        "sizes": sizes,
        "demo": cfg.data_dir is None,
        "meta": meta_path.name if meta_path.is_file() else None,
    }
    timings = {
        "load_model_s": load_s,
        "encode_s": embed.seconds,
        "score_s": elapsed - load_s - embed.seconds,
    }
    result = build_result(
        command="retrieve",
        task=cfg.task,
        model=model,
        checkpoint=cfg.ckpt,
        languages=langs,
        layers=layers,
        config=resolved,
        data=data_info,
        seed=cfg.seed,
        started=started,
        elapsed_s=elapsed,
        timings=timings,
        scores=scores,
    )
    path = save_result(result, Path(cfg.out) / f"{result_stem(cfg, encoder.name)}.json", examples)
    plot_path = None
    if cfg.plot:
        from align.report.plots import plot_layer_curves

        plot_path = plot_layer_curves(path, path.with_suffix(".png"))
    return RetrieveRun(result, path, plot_path, examples)


def _size(task: str, data: Any) -> dict[str, int]:
    if task == "tatoeba":
        return {"pairs": len(data.src)}
    return {
        f"{s}_{k}": len(getattr(data[s], k)) for s in xtreme.BUCC_SPLITS for k in ("src", "tgt")
    }
