"""Pooled embeddings from every layer in one forward pass, streamed to disk layer by layer.

``encode_to_store`` tokenizes the texts into compact arrays, runs batches over the texts sorted
by token length (little padding; a fixed number of sentences, or as many as fit a token budget),
pools each layer on the model's device as float16 (the on-disk format) and hands the batch to a
background writer (:mod:`align.encode_async`) that appends it to a
:class:`~align.store.LayerWriter` while the next forward pass runs: nothing of size
``[layers, n, d]`` is ever held in RAM, and on CUDA the loop never waits for the host. With an
:class:`~align.store.EmbeddingCache` a finished store is reused by any later run with the same
model, tokenizer, texts and options. ``encode_layers`` is the in-memory
convenience for small sets (``[num_layers + 1, n, d]`` float32, ``hidden_states`` order).
Values are rounded through float16 either way, so cached and fresh numbers agree exactly.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from align._memory import fix_mmap_threshold
from align.distributed import SINGLE, Distributed
from align.encode_async import QUEUE_DEPTH, BackgroundWriter
from align.errors import AlignError
from align.models.attention import padding_mask_4d
from align.models.handle import EncoderHandle
from align.models.loading import LoadedEncoder
from align.progress import step
from align.store import EmbeddingCache, LayerStore, LayerWriter, ScratchSpace, key_of

log = logging.getLogger(__name__)

Pooling = Literal["mean", "cls", "max", "last", "weighted-mean"]
POOLINGS: tuple[Pooling, ...] = ("mean", "cls", "max", "last", "weighted-mean")
PaddingSide = Literal["right", "left"]
_TOKENIZE_CHUNK = 1024  # texts tokenized at once (their Python lists are large)


@dataclass(frozen=True)
class EncodeOptions:
    pooling: Pooling = "mean"
    max_length: int = 128
    batch_size: int = 32
    prefix: str = ""
    exclude_special: bool = False  # mean/max: leave <s> and </s> out of the pool
    batch_tokens: int = 0  # > 0: batches of up to this many padded tokens (batch_size ignored)
    prompt: str = ""  # a template holding {text} (PromptEOL's, ...); "" : the text itself
    padding_side: PaddingSide | None = None  # None: the tokenizer's own

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise AlignError(f"pooling {self.pooling!r}: expected one of {', '.join(POOLINGS)}")
        if self.prompt and "{text}" not in self.prompt:
            raise AlignError(f"prompt {self.prompt!r}: must hold {{text}}, where the text goes")
        if self.padding_side not in (None, "right", "left"):
            raise AlignError(f"padding_side {self.padding_side!r}: expected right or left")
        if self.max_length < 2:
            raise AlignError(f"max_length {self.max_length}: must be at least 2")
        if self.batch_size < 1:
            raise AlignError(f"batch_size {self.batch_size}: must be at least 1")
        if self.batch_tokens < 0:
            raise AlignError(f"batch_tokens {self.batch_tokens}: must be 0 (off) or positive")

    def text_of(self, text: str) -> str:
        """What is tokenized for ``text``: the prefix, inside the prompt when there is one."""
        return (
            self.prompt.replace("{text}", self.prefix + text) if self.prompt else self.prefix + text
        )


CUDA_BATCH_TOKENS = 32_768  # padded tokens per forward pass on CUDA, where memory allows


def default_batch_tokens(device: str, num_layers: int, hidden: int, dtype: str) -> int:
    """0 (batches of ``batch_size`` sentences) on the CPU. On CUDA, batches by tokens: up to
    :data:`CUDA_BATCH_TOKENS`, fewer where half the device's free memory cannot hold a
    batch's activations (every layer's states kept, plus a forward pass's working set)."""
    if not str(device).startswith("cuda"):
        return 0
    import torch

    free, _ = torch.cuda.mem_get_info(torch.device(device))
    width = 4 if dtype == "float32" else 2
    per_token = (num_layers + 1 + 8) * hidden * width
    return int(max(1024, min(CUDA_BATCH_TOKENS, free // 2 // per_token)))


def pool(hidden, mask, pooling: Pooling):
    """Pool ``hidden [layers, batch, tokens, d]`` over tokens where ``mask [batch, tokens]``:
    ``cls`` the first token; ``last`` the last pooled token (right or left padding alike);
    ``mean`` their mean; ``weighted-mean`` their mean weighted by position among them, 1..L
    (Muennighoff 2022, SGPT: later tokens of a causal model have read more); ``max``. A masked
    position never enters a sum (its state may be anything, NaN included)."""
    import torch

    if pooling == "cls":
        return hidden[:, :, 0]
    if pooling == "last":
        positions = torch.arange(mask.shape[1], device=mask.device)
        last = torch.where(mask, positions, -1).amax(1).clamp_min(0)  # [batch]
        rows = torch.arange(mask.shape[0], device=mask.device)
        return hidden[:, rows, last]
    weights = mask.to(hidden.dtype)[None, :, :, None]
    if pooling == "weighted-mean":
        weights = (mask.cumsum(1) * mask).to(torch.float32)[None, :, :, None]
    if pooling in ("mean", "weighted-mean"):
        kept = torch.where(
            weights > 0, hidden, torch.zeros((), dtype=hidden.dtype, device=hidden.device)
        )
        if pooling == "mean":
            total = kept.sum(dim=2, dtype=torch.float32)
        else:
            total = (kept.to(torch.float32) * weights).sum(dim=2)
        return total / weights.sum(dim=2, dtype=torch.float32).clamp_min(1.0)
    filled = hidden.masked_fill(weights == 0, torch.finfo(hidden.dtype).min)
    return filled.amax(dim=2)


def pool_layers(hidden_states, mask, pooling: Pooling):
    """float16 ``[layers, batch, d]`` on the states' device, one layer pooled at a time (no
    stacked copy of every token state): bit for bit what :func:`pool` gives on their stack."""
    import torch

    first = hidden_states[0]
    out = torch.empty(
        (len(hidden_states), first.shape[0], first.shape[-1]),
        dtype=torch.float16,
        device=first.device,
    )
    for i, states in enumerate(hidden_states):
        out[i] = pool(states[None], mask, pooling)[0]
    return out


@dataclass
class Tokenized:
    """Token ids of many texts in flat arrays (a few bytes a token, not Python lists)."""

    ids: np.ndarray  # int32, every text's ids one after another
    special: np.ndarray  # uint8, 1 where the token is <s>, </s> or another special token
    offsets: np.ndarray  # int64 [n + 1]: text i is ids[offsets[i]:offsets[i + 1]]
    truncated: int  # texts cut at max_length

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def tokenize(tokenizer: Any, texts: list[str], options: EncodeOptions) -> Tokenized:
    """Tokenize in chunks; texts longer than ``max_length`` tokens are cut (and counted)."""
    ids, special, lengths, truncated = [], [], [], 0
    for start in range(0, len(texts), _TOKENIZE_CHUNK):
        chunk = [options.text_of(t) for t in texts[start : start + _TOKENIZE_CHUNK]]
        enc = tokenizer(chunk, return_special_tokens_mask=True, verbose=False)
        rows, masks = enc["input_ids"], enc["special_tokens_mask"]
        long = [i for i, row in enumerate(rows) if len(row) > options.max_length]
        if long:
            cut = tokenizer(
                [chunk[i] for i in long],
                truncation=True,
                max_length=options.max_length,
                return_special_tokens_mask=True,
            )
            for j, i in enumerate(long):
                rows[i], masks[i] = cut["input_ids"][j], cut["special_tokens_mask"][j]
            truncated += len(long)
        for row, mask in zip(rows, masks, strict=True):
            ids.append(np.asarray(row, np.int32))
            special.append(np.asarray(mask, np.uint8))
            lengths.append(len(row))
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    return Tokenized(np.concatenate(ids), np.concatenate(special), offsets, truncated)


def _padded(
    tokenizer: Any, tok: Tokenized, idx: np.ndarray, side: str | None = None
) -> dict[str, Any]:
    """The batch ``tokenizer.pad`` would build for texts ``idx`` (its padding side unless
    ``side`` says otherwise; the same ids)."""
    import torch

    lengths = tok.lengths[idx]
    width = int(lengths.max())
    ids = np.full((len(idx), width), tokenizer.pad_token_id, np.int64)
    attention = np.zeros((len(idx), width), np.int64)
    special = np.ones((len(idx), width), np.int64)
    left = (side or getattr(tokenizer, "padding_side", "right")) == "left"
    for row, (i, length) in enumerate(zip(idx, lengths, strict=True)):
        span = slice(width - length, width) if left else slice(0, length)
        lo, hi = tok.offsets[i], tok.offsets[i + 1]
        ids[row, span] = tok.ids[lo:hi]
        attention[row, span] = 1
        special[row, span] = tok.special[lo:hi]
    return {
        "input_ids": torch.from_numpy(ids),
        "attention_mask": torch.from_numpy(attention),
        "special_tokens_mask": torch.from_numpy(special),
    }


def length_sorted_batches(
    tokenizer: Any, texts: list[str], options: EncodeOptions, tok: Tokenized | None = None
) -> Iterator[tuple[np.ndarray, dict]]:
    """(input positions, padded batch) over ``texts`` sorted by token length, longest first.

    Every path that encodes (``encode_to_store``, the transplant sweep) batches through here, so
    equal inputs give bit-identical batches and numbers.
    """
    tok = tok if tok is not None else tokenize(tokenizer, texts, options)
    order = np.argsort(-tok.lengths, kind="stable")
    for start, stop in batch_bounds(tok.lengths[order], options):
        idx = order[start:stop]
        yield idx, _padded(tokenizer, tok, idx, options.padding_side)


def batch_bounds(sorted_lengths: np.ndarray, options: EncodeOptions) -> list[tuple[int, int]]:
    """(start, stop) of each batch over lengths sorted longest first: ``batch_size`` sentences,
    or (``batch_tokens``) as many as fit the budget at the batch's first (longest) width, at
    least one."""
    n = len(sorted_lengths)
    if options.batch_tokens <= 0:
        return [(s, min(n, s + options.batch_size)) for s in range(0, n, options.batch_size)]
    bounds, start = [], 0
    while start < n:
        rows = max(1, options.batch_tokens // int(sorted_lengths[start]))
        bounds.append((start, min(n, start + rows)))
        start += rows
    return bounds


def pool_mask(batch: dict, options: EncodeOptions, device: str):
    """The tokens pooled over: non-padding, and (``exclude_special``) not <s>/</s>."""
    mask = batch["attention_mask"].to(device).bool()
    if options.exclude_special:
        mask &= ~batch["special_tokens_mask"].to(device).bool()
    return mask


def forward_states(encoder: LoadedEncoder, batch: dict):
    """Every layer's token states of a padded batch (``output_hidden_states``), on the model's
    device: a decoder's positions count each sentence's own tokens, so left padding changes
    nothing; on CUDA an encoder gets its padding as a boolean SDPA mask."""
    device = encoder.device
    input_ids = batch["input_ids"].to(device, non_blocking=True)
    attention = batch["attention_mask"].to(device, non_blocking=True)
    extra = {}
    if encoder.kind == "decoder" and takes_positions(encoder.model):
        extra["position_ids"] = (attention.cumsum(1) - 1).clamp_min(0)
    if str(device).startswith("cuda") and encoder.kind == "encoder":
        # on the CPU the 2-D mask keeps stores byte-stable; a causal model builds its own
        attention = padding_mask_4d(encoder.model, attention)
    out = encoder.model(
        input_ids=input_ids, attention_mask=attention, output_hidden_states=True, **extra
    )
    return out.hidden_states


def _forward_all_layers(encoder: LoadedEncoder, batch: dict, options: EncodeOptions):
    """The batch's pooled layers, float16 ``[layers, batch, d]`` on the model's device."""
    states = forward_states(encoder, batch)
    return pool_layers(states, pool_mask(batch, options, encoder.device), options.pooling)


def takes_positions(model: Any) -> bool:
    """Whether the model's forward takes ``position_ids`` (BLOOM's ALiBi reads the mask)."""
    import inspect

    return "position_ids" in inspect.signature(model.forward).parameters


def _non_finite_error(name: str, dtype: str) -> AlignError:
    return AlignError(
        f"model {name} produced NaN/inf (or float16-overflowing) embeddings (dtype {dtype})"
    )


def to_storage(embeddings: np.ndarray, name: str, dtype: str) -> np.ndarray:
    """float16, the on-disk format (so fresh and cached numbers agree); NaN/inf refused."""
    rounded = np.asarray(embeddings).astype(np.float16)
    if not np.isfinite(rounded).all():
        raise _non_finite_error(name, dtype)
    return rounded


def _texts_hash(texts: list[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def cache_fields(
    encoder: LoadedEncoder | EncoderHandle, options: EncodeOptions, texts: list[str]
) -> dict:
    """Everything that decides the numbers: weights, tokenizer, dtype, texts, pooling options."""
    tokenizer_hash = encoder.ref.tokenizer_hash if encoder.ref is not None else None
    return {
        "model": encoder.fingerprint,
        "tokenizer": tokenizer_hash,
        "dtype": encoder.dtype,
        "texts": _texts_hash(texts),
        "n": len(texts),
        "pooling": options.pooling,
        **({"prompt": options.prompt} if options.prompt else {}),
        **({"padding_side": options.padding_side} if options.padding_side else {}),
        "max_length": options.max_length,
        "prefix": options.prefix,
        "exclude_special": options.exclude_special,
    }


def _write_layers(
    encoder: LoadedEncoder,
    texts: list[str],
    options: EncodeOptions,
    writer: LayerWriter,
    update: Callable[[int], object],
    share: tuple[int, int] = (0, 1),
    queue_depth: int = QUEUE_DEPTH,
) -> int:
    """Encode ``texts`` batch by batch into ``writer``; returns how many texts were cut.

    ``share`` = (rank, world): this process encodes every world-th length-sorted batch, from
    its rank on (the batches themselves are those of a single process). ``queue_depth``:
    batches queued for the background writer (0: written in this thread, one after another).
    The NaN/inf check accumulates on the device and is read once, after the last batch.
    """
    import torch

    fix_mmap_threshold()
    rank, world = share
    tok = tokenize(encoder.tokenizer, texts, options)
    finite = torch.ones((), dtype=torch.bool, device=encoder.device)  # read once, at the end
    with torch.inference_mode(), BackgroundWriter(writer, queue_depth) as background:
        for number, (idx, batch) in enumerate(
            length_sorted_batches(encoder.tokenizer, texts, options, tok)
        ):
            if number % world != rank:
                continue
            pooled = _forward_all_layers(encoder, batch, options)
            finite &= torch.isfinite(pooled).all()
            if queue_depth:
                background.put(idx, pooled)
            else:  # serial: the reference the background path is tested against
                writer.write(idx, pooled.cpu().numpy())
            update(len(idx))
        if not bool(finite):
            raise _non_finite_error(encoder.name, encoder.dtype)
    return tok.truncated


def _log_truncated(truncated: int, n: int, options: EncodeOptions, what: str) -> None:
    if truncated:
        log.warning(
            "%s: %d of %d sentences are longer than --max-length %d tokens and were cut",
            what,
            truncated,
            n,
            options.max_length,
        )


def encode_to_store(
    encoder: LoadedEncoder | EncoderHandle,
    texts: list[str],
    options: EncodeOptions,
    cache: EmbeddingCache | None = None,
    scratch: ScratchSpace | None = None,
    progress: bool = True,
    what: str = "set",
    dist: Distributed = SINGLE,
    queue_depth: int = QUEUE_DEPTH,
) -> LayerStore:
    """Every layer of ``texts`` on disk: from ``cache`` when it holds them, else encoded.

    ``encoder`` may be an :class:`~align.models.loading.EncoderHandle`: its weights are loaded
    only when something is to be encoded. Without a cache the store goes to ``scratch`` (a
    run's temporary directory). ``queue_depth``: batches in flight to the background writer
    (0: each written before the next forward pass). Under a launcher (``dist``) every rank
    calls this together: each encodes its share into the same store, rank 0 merges the shares
    (and renames the store into the cache), and every rank returns the finished store.
    """
    if not texts:
        raise AlignError("nothing to encode: the input set is empty")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise AlignError(f"texts[{i}]: expected a string, got {type(text).__name__} {text!r}")
    if cache is None and scratch is None:
        raise AlignError("encode_to_store: give a cache or a scratch space")
    fields = cache_fields(encoder, options, texts)
    found = cache.lookup(fields) if cache is not None and dist.is_main else None
    if dist.broadcast(found.root if found is not None else None) is not None:
        log.info(
            "encoding %s: %d sentences with %s: embedding cache hit (%s)",
            what,
            len(texts),
            getattr(encoder, "name", "?"),
            key_of(fields)[:12],
        )
        return found or LayerStore.open(cache.path(key_of(fields)))  # type: ignore[union-attr]
    if isinstance(encoder, EncoderHandle):  # before any folder is made: a failed load leaves none
        encoder = encoder.load()
    root = None
    if dist.is_main:
        root = cache.begin(fields) if cache is not None else scratch.new_dir(what)  # type: ignore[union-attr]
    root = dist.broadcast(root)
    d, layers = encoder.hidden_size, list(range(encoder.num_layers + 1))
    writer = LayerWriter(root, len(texts), d, layers, part=dist.rank)
    try:
        what_text = f"encoding {what}: {len(texts)} sentences with {encoder.name}"
        with step(what_text, len(texts) // dist.world, "sent", progress) as update:
            truncated = _write_layers(
                encoder, texts, options, writer, update, (dist.rank, dist.world), queue_depth
            )
        writer.flush()
        dist.encoded += writer.written
        dist.barrier()  # every share is on disk
        if dist.is_main:
            meta = {"model": encoder.name, "options": asdict(options)}
            writer.finish(meta | {"key_fields": fields, "truncated": truncated}, dist.world)
            if cache is not None:
                root = cache.commit(fields, root)
    except BaseException:
        if dist.is_main and cache is not None:
            cache.abort(root)
        raise
    dist.barrier()  # the store is finished (and in the cache)
    if dist.is_main:
        _log_truncated(truncated, len(texts), options, what)
    return LayerStore.open(cache.path(key_of(fields)) if cache is not None else root)


def encode_layers(
    encoder: LoadedEncoder,
    texts: list[str],
    options: EncodeOptions,
    cache: EmbeddingCache | None = None,
    progress: bool = True,
) -> np.ndarray:
    """float32 ``[num_layers + 1, len(texts), d]`` in RAM (small sets); reads/fills ``cache``."""
    if cache is not None:
        return encode_to_store(encoder, texts, options, cache, progress=progress).stack()
    with ScratchSpace() as scratch:
        return encode_to_store(encoder, texts, options, None, scratch, progress).stack()
