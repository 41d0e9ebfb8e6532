"""Writing a run's results: the one results schema (JSON + JSONL), the figure, the names."""

from __future__ import annotations

import hashlib
import json
import logging
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

log = logging.getLogger(__name__)


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
        info["kind"] = encoder.ref.kind
        if encoder.ref.pad_token_added is not None:
            info["pad_token_added"] = encoder.ref.pad_token_added  # the tokenizer had none
        info["encoding_defaults"] = {
            "prefix": encoder.ref.encoding.prefix,
            "pooling": encoder.ref.encoding.pooling,
            "source": encoder.ref.encoding_source,
        }
    return info


def _identity(result: dict[str, Any]) -> list[str | None]:
    """The weights a result was measured on: its model's fingerprint and the compared ones'."""
    models = [result.get("model") or {}, *(result.get("compared") or [])]
    return [m.get("fingerprint") if isinstance(m, dict) else None for m in models]


def free_path(out: Path, stem: str, result: dict[str, Any]) -> Path:
    """``{out}/{stem}.json``, unless that file holds a result of other weights (two checkpoints
    both named ``final``, say): then the stem gets the weights' fingerprint, so that results
    of two different models never share a file name in one folder. A rerun of the same models
    replaces its own file."""
    path = out / f"{stem}.json"
    if not path.is_file():
        return path
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = None
    if isinstance(old, dict) and _identity(old) == _identity(result):
        return path
    tag = hashlib.sha256("".join(map(str, _identity(result))).encode()).hexdigest()[:8]
    log.warning(
        "%s holds the result of other weights; this one goes to %s-%s.json", path, stem, tag
    )
    return out / f"{stem}-{tag}.json"


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
        | {"truncated": truncated, "convention": prep.convention}
        | (fields or {})
    )
    target = free_path(Path(prep.cfg.out), stem, result)
    if examples is not None and target.stem != stem:  # the rows follow the results file
        examples.target = target.with_name(target.stem + ".examples.jsonl")
    path = save_result(result, target, examples)
    if examples is not None:
        result["examples"] = examples.target.name
    figures = []
    if plot and prep.cfg.plot and (figure := plot(path)) is not None:
        figures.append(figure)
    return RunResult(result, path, figures, text(result) if text else "")


def examples_path(cfg: Any, stem: str) -> Path:
    return Path(cfg.out) / f"{stem}.examples.jsonl"
