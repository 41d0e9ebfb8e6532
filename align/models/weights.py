"""A checkpoint's weight files checked against its ``config.json`` before any weight is loaded.

transformers loads what fits and reports the rest (missing, unexpected, mis-shaped tensors) in a
table that align keeps quiet; a checkpoint whose config says 6 blocks while its weights hold 12
would then be encoded with 6 and give numbers with exit 0. Here the safetensors headers (a few
KB) are read and compared with the tensors the architecture of ``config.json`` has, built on
the meta device (no memory): every missing, unexpected or mis-shaped tensor and every file
shorter than its header says is an error naming the file and the first keys, before anything is
loaded or encoded.

Weights of a head the encoder does not use are not errors: a checkpoint saved from a task
model (``roberta.``-prefixed keys beside ``lm_head.*``, as the hub's XLM-R is) holds the
encoder under that prefix, and the rest is the head's; the pooler is left out on purpose.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

from align.errors import AlignError

_SHOWN = 3  # keys named in an error


def _header(path: Path) -> tuple[dict[str, tuple[int, ...]], int]:
    """(tensor name -> shape, bytes the header says the file holds) of one safetensors file;
    ``ValueError`` with the reason where it is not one."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(8)
            if len(raw) < 8:
                raise ValueError("shorter than its 8-byte header")
            (length,) = struct.unpack("<Q", raw)
            if length > 100 * 2**20:
                raise ValueError(f"a header of {length:,} bytes")
            text = fh.read(length)
        if len(text) < length:
            raise ValueError("truncated in its header")
        header = json.loads(text)
        if not isinstance(header, dict):
            raise ValueError("its header is not a JSON object")
        shapes, end = {}, 0
        for name, entry in header.items():
            if name != "__metadata__":
                shapes[name] = tuple(int(n) for n in entry["shape"])
                end = max(end, int(entry["data_offsets"][1]))
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from exc
    return shapes, 8 + length + end


def stored_shapes(path: Path, param: str = "ckpt") -> dict[str, tuple[int, ...]]:
    """Every tensor of the checkpoint directory ``path`` (one file or an index of shards) with
    its shape; a file shorter than its header says is refused here."""
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AlignError(f"{index}: not a safetensors index ({exc})") from exc
        files = sorted({path / name for name in weight_map.values()})
    else:
        files = [path / "model.safetensors"]
    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        if not file.is_file():
            raise AlignError(f"{file}: missing (the checkpoint's weights)")
        try:
            found, needed = _header(file)
        except ValueError as exc:
            raise AlignError(
                f"{param} {path}: {file.name} is not a readable safetensors file ({exc})",
                param=param,
            ) from exc
        size = file.stat().st_size
        if size < needed:
            raise AlignError(
                f"{param} {path}: {file.name} is truncated ({size:,} bytes; its header "
                f"describes {needed:,}): the checkpoint was not written completely",
                param=param,
            )
        shapes.update(found)
    return shapes


def expected_shapes(path: Path) -> tuple[dict[str, tuple[int, ...]], str, list[str]]:
    """(tensor name -> shape, base-model prefix, patterns transformers ignores when missing)
    of the encoder ``config.json`` describes, built on the meta device without its pooler."""
    import torch
    from transformers import AutoConfig, AutoModel

    try:
        config = AutoConfig.from_pretrained(path)
        with torch.device("meta"):
            try:
                model = AutoModel.from_config(config, add_pooling_layer=False)
            except TypeError:
                model = AutoModel.from_config(config)
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        config = path / "config.json"
        raise AlignError(f"{config}: no model can be built from it ({reason})") from exc
    shapes, seen = {}, set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) in seen:  # tied to a tensor named before (T5's embeddings): stored once
            continue
        seen.add(id(tensor))
        shapes[name] = tuple(tensor.shape)
    ignore = list(getattr(model, "_keys_to_ignore_on_load_missing", None) or [])
    return shapes, str(getattr(model, "base_model_prefix", "") or ""), ignore


def _blocks(keys) -> int | None:
    found = [int(m.group(1)) for k in keys if (m := re.search(r"(?:^|\.)layer\.(\d+)\.", k))]
    return max(found) + 1 if found else None


def check_weights(path: Path, param: str = "ckpt") -> None:
    """Refuse a checkpoint whose weights do not match its ``config.json``; the error starts
    with ``param``, the config field that named the model."""
    stored = stored_shapes(path, param)
    expected, prefix, ignore = expected_shapes(path)
    if prefix and any(k.startswith(prefix + ".") for k in stored):
        stored = {k[len(prefix) + 1 :]: v for k, v in stored.items() if k.startswith(prefix + ".")}
    unexpected = sorted(k for k in stored if k not in expected and not k.startswith("pooler."))
    missing = sorted(
        k for k in expected if k not in stored and not any(re.search(p, k) for p in ignore)
    )
    shaped = sorted(k for k in expected if k in stored and stored[k] != expected[k])
    if not (unexpected or missing or shaped):
        return
    config = path / "config.json"
    problems = []
    if unexpected or missing:
        held, said = _blocks(stored), _blocks(expected)
        if held != said and held is not None:
            problems.append(f"the weights hold {held} blocks, {config.name} says {said}")
    for what, keys in (("unexpected", unexpected), ("missing", missing)):
        if keys:
            shown = ", ".join(keys[:_SHOWN]) + (", ..." if len(keys) > _SHOWN else "")
            problems.append(f"{len(keys)} {what} tensor(s): {shown}")
    for key in shaped[:_SHOWN]:
        problems.append(
            f"{key} is {list(stored[key])} in the weights, {list(expected[key])} by {config.name}"
            f" (hidden_size {_config_width(config)})"
        )
    raise AlignError(
        f"{param} {path}: its weights do not match {config.name}: " + "; ".join(problems),
        param=param,
    )


def _config_width(config: Path) -> Any:
    try:
        return json.loads(config.read_text(encoding="utf-8")).get("hidden_size")
    except (OSError, ValueError):
        return "?"
