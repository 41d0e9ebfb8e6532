"""Causal attribution by block transplant between a base model and its tuned version.

For transformer block b (1-based; ``hidden_states[b]`` is its output):

- *graft b*: the base model with block b taken from the tuned model;
- *restore b*: the tuned model with block b reset to the base.

A transplant of block b can change only layers >= b. The sweep runs each batch once through
both models, keeping every layer's token states, and starts each variant from the states of
layer b-1: variant b runs blocks b..L only, so all 2L variants cost about L+1 full encodings
instead of 2L. Blocks whose weights are identical in both models are exact no-ops and are not
run. Batching and pooling are ``align.encode``'s, so a variant's embeddings equal what
``encode_layers`` gives for the same model built in full. Every variant's pooled layers go to a
store on disk as the batches run (:class:`~align.store.LayerWriter`); scoring reads one layer
of one variant at a time and calls the task's own scoring function on the subsample.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from align import metrics
from align._memory import fix_mmap_threshold
from align.encode import EncodeOptions, length_sorted_batches, pool_layers, pool_mask, to_storage
from align.errors import AlignError
from align.models.loading import LoadedEncoder, ModelRef
from align.progress import step
from align.retrieval.tasks import RetrievalTask, TaskParams
from align.store import LayerStore, LayerWriter, ScratchSpace

log = logging.getLogger(__name__)

Kind = Literal["graft", "restore"]


_BLOCK_LISTS = ("encoder.layer", "layers", "h", "block")  # BERT/XLM-R, Llama, GPT-2, T5


def block_list(model: Any) -> str:
    """Where a model keeps its blocks: ``encoder.layer`` (XLM-R), ``layers`` (Llama, Qwen2,
    Gemma, Mistral; NLLB's encoder), ``h`` (GPT-2, BLOOM), ``block`` (T5's encoder)."""
    for path in _BLOCK_LISTS:
        found: Any = model
        for part in path.split("."):
            found = getattr(found, part, None)
        if found is not None and hasattr(found, "__len__") and len(found):
            return path
    raise AlignError(f"--transplant: no list of blocks found in {type(model).__name__}")


def blocks(model: Any) -> Any:
    found: Any = model
    for part in block_list(model).split("."):
        found = getattr(found, part)
    return found


def _state(encoder: LoadedEncoder) -> dict[str, Any]:
    return encoder.model.state_dict()


def check_same_architecture(base: ModelRef, tuned: ModelRef) -> None:
    """Refuse, from the models' files alone, two models whose blocks cannot be swapped."""
    a, b = base.architecture(), tuned.architecture()
    for key in a:
        if a[key] != b[key]:
            what = "tokenizer files" if key == "tokenizer" else key
            raise AlignError(
                f"--transplant: {base.name} and {tuned.name} differ in {what} "
                f"({a[key]!s:.16} vs {b[key]!s:.16}); blocks can only be swapped between "
                "a model and its fine-tuned version"
            )


def check_transplantable(base: LoadedEncoder, tuned: LoadedEncoder) -> None:
    """Refuse, naming what differs, two models whose blocks cannot be swapped."""
    if base.ref is not None and tuned.ref is not None:
        check_same_architecture(base.ref, tuned.ref)
    for name, enc in (("base", base), ("tuned", tuned)):
        if enc.kind == "encoder" and not (
            hasattr(enc.model, "embeddings") and hasattr(enc.model, "encoder")
        ):
            raise AlignError(
                f"--transplant: {name} model {enc.name} is not a BERT/XLM-R style encoder "
                "(no embeddings / encoder.layer)"
            )
        block_list(enc.model)
    sa, sb = _state(base), _state(tuned)
    if sa.keys() != sb.keys() or any(sa[k].shape != sb[k].shape for k in sa):
        raise AlignError(f"--transplant: {base.name} and {tuned.name} hold different parameters")


def block_prefix(block: int, where: str = "encoder.layer") -> str:
    return f"{where}.{block - 1}."


def changed_blocks(base: LoadedEncoder, tuned: LoadedEncoder) -> list[int]:
    """1-based blocks whose weights differ between the two models."""
    import torch

    sa, sb = _state(base), _state(tuned)
    where = block_list(base.model)
    out = []
    for block in range(1, base.num_layers + 1):
        keys = [k for k in sa if k.startswith(block_prefix(block, where))]
        if any(not torch.equal(sa[k], sb[k]) for k in keys):
            out.append(block)
    return out


def variant_encoder(
    base: LoadedEncoder, tuned: LoadedEncoder, block: int, kind: Kind
) -> LoadedEncoder:
    """The whole variant model (for checks and the naive benchmark; the sweep never builds it)."""
    host, donor = (base, tuned) if kind == "graft" else (tuned, base)
    model = copy.deepcopy(host.model)
    blocks(model)[block - 1].load_state_dict(blocks(donor.model)[block - 1].state_dict())
    out = copy.copy(host)
    out.model = model
    out.fingerprint = f"{host.fingerprint}-{kind}{block}"
    return out


class _Blocks:
    """Embedding layer and blocks of an encoder, run by hand from any layer's token states."""

    def __init__(self, encoder: LoadedEncoder) -> None:
        self.model = encoder.model
        self.layers = encoder.model.encoder.layer

    def embed(self, input_ids):
        return self.model.embeddings(input_ids=input_ids)

    def attention_mask(self, states, attention):
        from transformers.masking_utils import create_bidirectional_mask

        return create_bidirectional_mask(
            config=self.model.config, inputs_embeds=states, attention_mask=attention
        )

    def run(self, block: int, states, mask):
        out = self.layers[block - 1](states, mask)
        return out[0] if isinstance(out, tuple) else out

    def all_states(self, input_ids, attention) -> tuple[list, Any]:
        """Token states of every layer (hidden_states order) and the attention mask used."""
        states = [self.embed(input_ids)]
        mask = self.attention_mask(states[0], attention)
        for block in range(1, len(self.layers) + 1):
            states.append(self.run(block, states[-1], mask))
        return states, mask


def _pooled(states: list, keep, options: EncodeOptions, name: str, dtype: str) -> np.ndarray:
    return to_storage(pool_layers(states, keep, options.pooling).cpu().numpy(), name, dtype)


_VARIANT_BUFFER = 4 << 20  # per variant store: there are 2 + 2 x (changed blocks) of them


@dataclass
class SweepStores:
    """Pooled embeddings (float16 on disk) of every model run: base and tuned hold every layer,
    a variant of block b the layers b..L (below b it equals its host)."""

    base: LayerStore
    tuned: LayerStore
    graft: dict[int, LayerStore] = field(default_factory=dict)  # block -> embeddings
    restore: dict[int, LayerStore] = field(default_factory=dict)
    noop: list[int] = field(default_factory=list)  # blocks identical in both models

    def variant(self, kind: Kind, block: int) -> LayerStore:
        """A variant's embeddings; a no-op block's variant is its host model itself."""
        if block in self.noop:
            return self.base if kind == "graft" else self.tuned
        return (self.graft if kind == "graft" else self.restore)[block]


def _writers(scratch: ScratchSpace, n: int, d: int, n_layers: int, changed: list[int]):
    every = list(range(n_layers + 1))

    def new(name: str, layers: list[int]) -> LayerWriter:
        return LayerWriter(scratch.new_dir(name), n, d, layers, buffer_bytes=_VARIANT_BUFFER)

    return (
        {"base": new("base", every), "tuned": new("tuned", every)},
        {kind: {b: new(f"{kind}{b}", every[b:]) for b in changed} for kind in ("graft", "restore")},
    )


def sweep(
    base: LoadedEncoder,
    tuned: LoadedEncoder,
    texts: list[str],
    options: EncodeOptions,
    scratch: ScratchSpace,
    progress: bool = False,
) -> SweepStores:
    """Every graft and restore variant's embeddings of ``texts``: an encoder's from shared token
    states (each variant runs its blocks b..L only); a decoder's or an encoder-decoder's
    encoder's by swapping the block into its host and encoding again (rotary positions, causal
    masks and final norms stay the model's own)."""
    import torch

    fix_mmap_threshold()
    check_transplantable(base, tuned)
    changed = changed_blocks(base, tuned)
    n_layers, d = base.num_layers, int(base.model.config.hidden_size)
    hosts, variants = _writers(scratch, len(texts), d, n_layers, changed)
    if base.kind != "encoder":
        return _sweep_by_swapping(base, tuned, texts, options, changed, hosts, variants, progress)
    models = {"base": _Blocks(base), "tuned": _Blocks(tuned)}
    encoders = {"base": base, "tuned": tuned}
    device = base.device
    work = len(texts) * (2 + 2 * len(changed))
    what = (
        f"transplant sweep: {len(texts)} sentences x {2 + 2 * len(changed)} variants "
        f"({len(changed)} changed blocks)"
    )
    with torch.inference_mode(), step(what, work, "sent", progress) as update:
        for idx, batch in length_sorted_batches(base.tokenizer, texts, options):
            ids = batch["input_ids"].to(device)
            attention = batch["attention_mask"].to(device)
            keep = pool_mask(batch, options, device)
            states = {}
            for name, blocks in models.items():
                states[name], mask = blocks.all_states(ids, attention)
                enc = encoders[name]
                hosts[name].write(idx, _pooled(states[name], keep, options, enc.name, enc.dtype))
            for kind, host, donor in (("graft", "base", "tuned"), ("restore", "tuned", "base")):
                enc = encoders[host]
                for block in changed:
                    chain = [models[donor].run(block, states[host][block - 1], mask)]
                    for later in range(block + 1, n_layers + 1):
                        chain.append(models[host].run(later, chain[-1], mask))
                    pooled = _pooled(chain, keep, options, enc.name, enc.dtype)
                    variants[kind][block].write(idx, pooled)
            update(len(idx) * (2 + 2 * len(changed)))
    out = SweepStores(hosts["base"].finish(), hosts["tuned"].finish())
    out.noop = [b for b in range(1, n_layers + 1) if b not in changed]
    out.graft = {b: w.finish() for b, w in variants["graft"].items()}
    out.restore = {b: w.finish() for b, w in variants["restore"].items()}
    return out


def _sweep_by_swapping(base, tuned, texts, options, changed, hosts, variants, progress):
    """The sweep of a model whose blocks align does not run by hand: each variant is its host
    with block b swapped in, encoded again (layers b..L kept), the host's block put back."""
    import torch

    from align.encode import forward_states

    encoders = {"base": base, "tuned": tuned}
    batches = list(length_sorted_batches(base.tokenizer, texts, options))
    work = len(texts) * (2 + 2 * len(changed))
    what = (
        f"transplant sweep ({base.kind}: each variant encoded again): {len(texts)} sentences x "
        f"{2 + 2 * len(changed)} variants"
    )

    def encode(enc: LoadedEncoder, writer: LayerWriter, first: int) -> None:
        for idx, batch in batches:
            keep = pool_mask(batch, options, enc.device)
            states = forward_states(enc, batch)[first:]
            writer.write(idx, _pooled(list(states), keep, options, enc.name, enc.dtype))
            update(len(idx))

    with torch.inference_mode(), step(what, work, "sent", progress) as update:
        for name, enc in encoders.items():
            encode(enc, hosts[name], 0)
        for kind, host, donor in (("graft", "base", "tuned"), ("restore", "tuned", "base")):
            for block in changed:
                target = blocks(encoders[host].model)[block - 1]
                kept = {k: v.clone() for k, v in target.state_dict().items()}
                target.load_state_dict(blocks(encoders[donor].model)[block - 1].state_dict())
                try:
                    encode(encoders[host], variants[kind][block], block)
                finally:
                    target.load_state_dict(kept)
    out = SweepStores(hosts["base"].finish(), hosts["tuned"].finish())
    out.noop = [b for b in range(1, base.num_layers + 1) if b not in changed]
    out.graft = {b: w.finish() for b, w in variants["graft"].items()}
    out.restore = {b: w.finish() for b, w in variants["restore"].items()}
    return out


def _scores(
    store: LayerStore,
    layer: int,
    rows: tuple[np.ndarray, np.ndarray],
    task: RetrievalTask,
    params: TaskParams,
) -> dict[str, float]:
    emb = store.layer(layer)
    sets = {"src": emb[rows[0]], "tgt": emb[rows[1]]}
    found = task.layer_outcomes(sets, None, params, metrics=task.transplant_metrics)
    return found.scores


def transplant_records(
    model: str,
    stores: SweepStores,
    rows: dict[str, tuple[np.ndarray, np.ndarray]],
    layers: list[int],
    task: RetrievalTask,
    params: TaskParams,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """graft/restore changes of the task's transplant metrics at every layer >= b.

    ``rows``: per language, the (source, English) row indices into the swept texts.
    graft_delta = score(base with tuned block b) - score(base); restore_delta = score(tuned
    with base block b) - score(tuned). Each record also holds the whole change on the same
    subsample (``full_delta`` = score(tuned) - score(base)) and the share of it the block
    carries (``share``: graft_delta / full_delta, or -restore_delta / full_delta: the share
    restoring the block undoes); None where the whole change is 0. A no-op block is exactly 0.
    """
    work = [(lang, layer) for lang in rows for layer in layers]
    records = []
    what = f"transplant scoring: {len(rows)} languages x {len(layers)} layers"
    with step(what, len(work), "layer", progress) as update:
        for lang, layer in work:
            records += _layer_records(model, stores, lang, layer, rows[lang], task, params)
            update(1)
    return records


def _layer_records(
    model: str,
    stores: SweepStores,
    lang: str,
    layer: int,
    rows: tuple[np.ndarray, np.ndarray],
    task: RetrievalTask,
    params: TaskParams,
) -> list[dict[str, Any]]:
    """Every block's graft and restore records at one (language, layer)."""
    reference = {
        "graft": _scores(stores.base, layer, rows, task, params),
        "restore": _scores(stores.tuned, layer, rows, task, params),
    }
    full = {m: reference["restore"][m] - reference["graft"][m] for m in reference["graft"]}
    records = []
    for block in range(1, min(layer, len(stores.base.layers) - 1) + 1):
        noop = block in stores.noop
        for kind, sign in (("graft", 1.0), ("restore", -1.0)):
            scores = (
                reference[kind]
                if noop
                else _scores(stores.variant(kind, block), layer, rows, task, params)
            )
            for metric, value in scores.items():
                change = 0.0 if noop else value - reference[kind][metric]
                records.append(
                    {
                        "model": model,
                        "block": block,
                        "layer": layer,
                        "lang": lang,
                        "metric": metrics.check(getattr(metrics, kind)(metric)),
                        "value": change,
                        "full_delta": full[metric],
                        "share": sign * change / full[metric] if full[metric] else None,
                        "noop": noop,
                        "n": len(rows[0]),
                    }
                )
    return records
