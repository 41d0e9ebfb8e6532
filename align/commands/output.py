"""Writing a run's results: the one results schema (JSON + JSONL), the figure, the names."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from align._io import JsonlWriter
from align.commands.base import RunResult
from align.commands.prepared import Prepared
from align.models.handle import EncoderHandle
from align.models.loading import LoadedEncoder
from align.results import build_result, jsonable, save_result


def model_info(encoder: EncoderHandle | LoadedEncoder) -> dict[str, Any]:
    info = {
        "name": encoder.name,
        "path": str(encoder.path),
        "fingerprint": encoder.fingerprint,
        "num_layers": encoder.num_layers,
        "hidden_size": encoder.hidden_size,
        "tokenizer_sha256": encoder.ref.tokenizer_hash if encoder.ref is not None else None,
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
    truncated = prep.truncated
    result = (
        build_result(
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
        )
        | {"truncated": truncated}
        | (fields or {})
    )
    path = save_result(result, Path(prep.cfg.out) / f"{stem}.json", examples)
    if examples is not None:
        result["examples"] = examples.target.name
    figures = []
    if plot and prep.cfg.plot and (figure := plot(path)) is not None:
        figures.append(figure)
    return RunResult(result, path, figures, text(result) if text else "")


def examples_path(cfg: Any, stem: str) -> Path:
    return Path(cfg.out) / f"{stem}.examples.jsonl"
