"""Causal attribution by block transplant between a base model and its tuned version.

For transformer block b (1-based; ``hidden_states[b]`` is its output):

- *graft b*: the base model with block b taken from the tuned model;
- *restore b*: the tuned model with block b reset to the base.

A transplant of block b can change only layers >= b. The sweep runs each batch once through
both models, keeping every layer's token states, and starts each variant from the states of
layer b-1: variant b runs blocks b..L only, so all 2L variants cost about L+1 full encodings
instead of 2L. Blocks whose weights are identical in both models are exact no-ops and are not
run. Batching and pooling are ``align.encode``'s, so a variant's embeddings equal what
``encode_layers`` gives for the same model built in full.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from align.encode import EncodeOptions, length_sorted_batches, pool, pool_mask, to_storage
from align.errors import AlignError
from align.models.loading import LoadedEncoder, ModelRef

log = logging.getLogger(__name__)

Kind = Literal["graft", "restore"]


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
        if not hasattr(enc.model, "embeddings") or not hasattr(enc.model, "encoder"):
            raise AlignError(
                f"--transplant: {name} model {enc.name} is not a BERT/XLM-R style encoder "
                "(no embeddings / encoder.layer)"
            )
    sa, sb = _state(base), _state(tuned)
    if sa.keys() != sb.keys() or any(sa[k].shape != sb[k].shape for k in sa):
        raise AlignError(f"--transplant: {base.name} and {tuned.name} hold different parameters")


def block_prefix(block: int) -> str:
    return f"encoder.layer.{block - 1}."


def changed_blocks(base: LoadedEncoder, tuned: LoadedEncoder) -> list[int]:
    """1-based blocks whose weights differ between the two models."""
    import torch

    sa, sb = _state(base), _state(tuned)
    out = []
    for block in range(1, base.num_layers + 1):
        keys = [k for k in sa if k.startswith(block_prefix(block))]
        if any(not torch.equal(sa[k], sb[k]) for k in keys):
            out.append(block)
    return out


def variant_encoder(
    base: LoadedEncoder, tuned: LoadedEncoder, block: int, kind: Kind
) -> LoadedEncoder:
    """The whole variant model (for checks and the naive benchmark; the sweep never builds it)."""
    host, donor = (base, tuned) if kind == "graft" else (tuned, base)
    model = copy.deepcopy(host.model)
    model.encoder.layer[block - 1].load_state_dict(
        donor.model.encoder.layer[block - 1].state_dict()
    )
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


def _pooled(states: list, keep, options: EncodeOptions) -> np.ndarray:
    import torch

    return pool(torch.stack(states), keep, options.pooling).float().cpu().numpy()


@dataclass
class SweepEmbeddings:
    """Pooled embeddings ``[L+1, n, d]`` (float16-rounded like the cache) of every model run."""

    base: np.ndarray
    tuned: np.ndarray
    graft: dict[int, np.ndarray] = field(default_factory=dict)  # block -> embeddings
    restore: dict[int, np.ndarray] = field(default_factory=dict)
    noop: list[int] = field(default_factory=list)  # blocks identical in both models

    def variant(self, kind: Kind, block: int) -> np.ndarray:
        """A variant's embeddings; a no-op block's variant is its host model itself."""
        if block in self.noop:
            return self.base if kind == "graft" else self.tuned
        return (self.graft if kind == "graft" else self.restore)[block]


def sweep(
    base: LoadedEncoder,
    tuned: LoadedEncoder,
    texts: list[str],
    options: EncodeOptions,
    progress: bool = False,
) -> SweepEmbeddings:
    """Every graft and restore variant's embeddings of ``texts``, from shared token states."""
    import torch
    from tqdm.auto import tqdm

    check_transplantable(base, tuned)
    changed = changed_blocks(base, tuned)
    n_layers, d = base.num_layers, int(base.model.config.hidden_size)
    shape = (n_layers + 1, len(texts), d)
    out = SweepEmbeddings(np.empty(shape, np.float32), np.empty(shape, np.float32))
    out.noop = [b for b in range(1, n_layers + 1) if b not in changed]
    for block in changed:
        out.graft[block] = np.zeros(shape, np.float32)
        out.restore[block] = np.zeros(shape, np.float32)
    models = {"base": _Blocks(base), "tuned": _Blocks(tuned)}
    device = base.device
    work = len(texts) * (2 + 2 * len(changed))
    with (
        torch.inference_mode(),
        tqdm(total=work, desc="transplant", unit="sent", disable=not progress, leave=False) as bar,
    ):
        for idx, batch in length_sorted_batches(base.tokenizer, texts, options):
            ids = batch["input_ids"].to(device)
            attention = batch["attention_mask"].to(device)
            keep = pool_mask(batch, options, device)
            states = {}
            for name, blocks in models.items():
                states[name], mask = blocks.all_states(ids, attention)
                getattr(out, name)[:, idx] = _pooled(states[name], keep, options)
            for kind, host, donor in (("graft", "base", "tuned"), ("restore", "tuned", "base")):
                target = out.graft if kind == "graft" else out.restore
                for block in changed:
                    h = models[donor].run(block, states[host][block - 1], mask)
                    chain = [h]
                    for later in range(block + 1, n_layers + 1):
                        chain.append(models[host].run(later, chain[-1], mask))
                    target[block][block:, idx] = _pooled(chain, keep, options)
                    target[block][:block, idx] = getattr(out, host)[:block, idx]
            bar.update(len(idx) * (2 + 2 * len(changed)))
    out.base = to_storage(out.base, base).astype(np.float32)
    out.tuned = to_storage(out.tuned, tuned).astype(np.float32)
    for block in changed:
        out.graft[block] = to_storage(out.graft[block], base).astype(np.float32)
        out.restore[block] = to_storage(out.restore[block], tuned).astype(np.float32)
    return out


def transplant_records(
    model: str,
    emb: SweepEmbeddings,
    rows: dict[str, tuple[np.ndarray, np.ndarray]],
    layers: list[int],
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """graft/restore deltas of top-1 accuracy (both directions) at every layer >= b.

    ``rows``: per language, the (source, English) row indices into the swept texts.
    graft_delta = score(base with tuned block b) - score(base); restore_delta = score(tuned
    with base block b) - score(tuned). A no-op block is recorded as exactly 0.
    """
    from align import metrics
    from align.vectors import top1

    def accuracies(embeddings: np.ndarray, lang: str, layer: int) -> dict[str, float]:
        src, tgt = embeddings[layer][rows[lang][0]], embeddings[layer][rows[lang][1]]
        return {
            "acc_xx2en": top1(src, tgt, device).accuracy,
            "acc_en2xx": top1(tgt, src, device).accuracy,
        }

    records = []
    n_layers = emb.base.shape[0] - 1
    for lang in rows:
        reference = {
            layer: {
                "graft": accuracies(emb.base, lang, layer),
                "restore": accuracies(emb.tuned, lang, layer),
            }
            for layer in layers
        }
        for block in range(1, n_layers + 1):
            for kind in ("graft", "restore"):
                for layer in (layer for layer in layers if layer >= block):
                    noop = block in emb.noop
                    scores = (
                        reference[layer][kind]
                        if noop
                        else accuracies(emb.variant(kind, block), lang, layer)
                    )
                    for metric, value in scores.items():
                        records.append(
                            {
                                "model": model,
                                "block": block,
                                "layer": layer,
                                "lang": lang,
                                "metric": metrics.check(f"{kind}_delta_{metric}"),
                                "value": 0.0 if noop else value - reference[layer][kind][metric],
                                "noop": noop,
                                "n": len(rows[lang][0]),
                            }
                        )
    return records
