"""Pooled embeddings from every layer in one forward pass, with an on-disk cache.

``encode_layers`` returns float32 ``[num_layers + 1, n, d]`` (``hidden_states`` order), in
input order. Batches are formed over texts sorted by token length (little padding) and the
results restored to input order. Values are rounded through float16, the on-disk format, so a
cached and a fresh run give identical numbers.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from align._io import atomic_path, cache_dir
from align.errors import AlignError
from align.models.loading import LoadedEncoder

log = logging.getLogger(__name__)

Pooling = Literal["mean", "cls", "max"]
POOLINGS: tuple[Pooling, ...] = ("mean", "cls", "max")
_CACHE_FORMAT = 2


@dataclass(frozen=True)
class EncodeOptions:
    pooling: Pooling = "mean"
    max_length: int = 128
    batch_size: int = 32
    prefix: str = ""
    exclude_special: bool = False  # mean/max: leave <s> and </s> out of the pool

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise AlignError(f"--pooling {self.pooling!r}: expected one of {', '.join(POOLINGS)}")
        if self.max_length < 2:
            raise AlignError(f"--max-length {self.max_length}: must be at least 2")
        if self.batch_size < 1:
            raise AlignError(f"--batch-size {self.batch_size}: must be at least 1")


def pool(hidden, mask, pooling: Pooling):
    """Pool ``hidden [layers, batch, tokens, d]`` over tokens where ``mask [batch, tokens]``."""
    import torch

    if pooling == "cls":
        return hidden[:, :, 0]
    weights = mask.to(hidden.dtype)[None, :, :, None]
    if pooling == "mean":
        total = (hidden * weights).sum(dim=2, dtype=torch.float32)
        return total / weights.sum(dim=2, dtype=torch.float32).clamp_min(1.0)
    filled = hidden.masked_fill(weights == 0, torch.finfo(hidden.dtype).min)
    return filled.amax(dim=2)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


class EmbeddingCache:
    """``{root}/{key}.npy`` float16 arrays beside ``{key}.json`` (meta + payload sha256).

    Both are written atomically, the array first; a read trusts an array only when its sidecar
    exists and the file's sha256 matches, so a damaged payload is recomputed, never used.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir() / "embeddings"

    def path(self, key: str) -> Path:
        return self.root / f"{key}.npy"

    def load(self, key: str, shape: tuple[int, ...]) -> np.ndarray | None:
        path, meta_path = self.path(key), self.root / f"{key}.json"
        if not path.is_file():
            return None
        try:
            expected = json.loads(meta_path.read_text(encoding="utf-8")).get("sha256")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            expected = None
        if expected is None or _sha256(path) != expected:
            log.warning("ignoring cache file %s: its checksum does not match; re-encoding", path)
            return None
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable cache file %s (%s)", path, exc)
            return None
        if array.shape != shape or array.dtype != np.float16:
            log.warning("ignoring cache file %s: shape %s, expected %s", path, array.shape, shape)
            return None
        return array

    def save(self, key: str, array: np.ndarray, meta: dict) -> None:
        with atomic_path(self.path(key)) as tmp:
            with tmp.open("wb") as fh:
                np.save(fh, array.astype(np.float16), allow_pickle=False)
            checksum = _sha256(tmp)
        with atomic_path(self.root / f"{key}.json") as tmp:
            tmp.write_text(json.dumps(meta | {"sha256": checksum}, indent=2), encoding="utf-8")


def cache_key(encoder: LoadedEncoder, options: EncodeOptions, texts: list[str]) -> str:
    texts_hash = hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode()).hexdigest()
    fields = {
        "format": _CACHE_FORMAT,
        "model": encoder.fingerprint,
        "dtype": encoder.dtype,
        "texts": texts_hash,
        "pooling": options.pooling,
        "max_length": options.max_length,
        "prefix": options.prefix,
        "exclude_special": options.exclude_special,
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]


def pool_mask(batch: dict, options: EncodeOptions, device: str):
    """The tokens pooled over: non-padding, and (``exclude_special``) not <s>/</s>."""
    mask = batch["attention_mask"].to(device).bool()
    if options.exclude_special:
        mask &= ~batch["special_tokens_mask"].to(device).bool()
    return mask


def _forward_all_layers(encoder: LoadedEncoder, batch: dict, options: EncodeOptions):
    import torch

    device = encoder.device
    input_ids = batch["input_ids"].to(device)
    attention = batch["attention_mask"].to(device)
    out = encoder.model(input_ids=input_ids, attention_mask=attention, output_hidden_states=True)
    hidden = torch.stack(out.hidden_states)  # [layers, batch, tokens, d]
    return pool(hidden, pool_mask(batch, options, device), options.pooling).float().cpu()


def length_sorted_batches(
    tokenizer: Any, texts: list[str], options: EncodeOptions
) -> Iterator[tuple[np.ndarray, dict]]:
    """(input positions, padded batch) over ``texts`` sorted by token length, longest first.

    Every path that encodes (``encode_layers``, the transplant sweep) batches through here, so
    equal inputs give bit-identical batches and numbers.
    """
    enc = tokenizer(
        [options.prefix + t for t in texts],
        truncation=True,
        max_length=options.max_length,
        return_special_tokens_mask=True,
    )
    order = np.argsort([-len(ids) for ids in enc["input_ids"]], kind="stable")
    keys = ("input_ids", "attention_mask", "special_tokens_mask")
    for start in range(0, len(texts), options.batch_size):
        idx = order[start : start + options.batch_size]
        features = [{k: enc[k][i] for k in keys} for i in idx]
        yield idx, tokenizer.pad(features, return_tensors="pt")


def _encode_uncached(
    encoder: LoadedEncoder, texts: list[str], options: EncodeOptions, progress: bool
) -> np.ndarray:
    import torch
    from tqdm.auto import tqdm

    config = encoder.model.config
    out = np.empty((encoder.num_layers + 1, len(texts), config.hidden_size), np.float32)
    with (
        torch.inference_mode(),
        tqdm(
            total=len(texts), desc="encoding", unit="sent", disable=not progress, leave=False
        ) as bar,
    ):
        for idx, batch in length_sorted_batches(encoder.tokenizer, texts, options):
            out[:, idx] = _forward_all_layers(encoder, batch, options).numpy()
            bar.update(len(idx))
    return out


def to_storage(embeddings: np.ndarray, encoder: LoadedEncoder) -> np.ndarray:
    """float16, the cache's format (so fresh and cached numbers agree); NaN/inf refused."""
    rounded = embeddings.astype(np.float16)
    if not np.isfinite(rounded).all():
        raise AlignError(
            f"model {encoder.name} produced NaN/inf (or float16-overflowing) embeddings "
            f"(dtype {encoder.dtype})"
        )
    return rounded


def encode_layers(
    encoder: LoadedEncoder,
    texts: list[str],
    options: EncodeOptions,
    cache: EmbeddingCache | None = None,
    progress: bool = True,
) -> np.ndarray:
    """float32 ``[num_layers + 1, len(texts), d]``; reads and fills ``cache`` when given."""
    if not texts:
        raise AlignError("nothing to encode: the input set is empty")
    shape = (encoder.num_layers + 1, len(texts), int(encoder.model.config.hidden_size))
    key = cache_key(encoder, options, texts) if cache is not None else ""
    if cache is not None:
        cached = cache.load(key, shape)
        if cached is not None:
            log.info("embedding cache hit: %d texts (%s)", len(texts), cache.path(key).name)
            return cached.astype(np.float32)
    rounded = to_storage(_encode_uncached(encoder, texts, options, progress), encoder)
    if cache is not None:
        meta = {
            "model": encoder.name,
            "fingerprint": encoder.fingerprint,
            "n": len(texts),
            "options": asdict(options),
            "dtype": encoder.dtype,
        }
        cache.save(key, rounded, meta)
    return rounded.astype(np.float32)
