"""The block-transplant sweep vs the naive way, same data, one run: identical scores, speed-up.

naive   build every variant model (graft b, restore b for each block b) and encode the texts
        with it from scratch through ``encode_layers``; base and tuned too (the deltas' anchors)
sweep   ``align.compare.transplant.sweep``: one pass per batch through each model keeps every
        layer's token states; variant b starts from layer b-1 and runs blocks b..L only

The tuned model is ``--ckpt`` (e.g. ckpts/bp) or, by default, the base with noise on every
block, so that no block is a no-op (the sweep's worst case). Target (issue 8): >= 1.7x.

    python benchmarks/bench_transplant.py [--n 150] [--ckpt DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from align.compare.transplant import SweepStores, sweep, transplant_records, variant_encoder
from align.data.bible import build_tatoeba_demo
from align.data.xtreme import read_tatoeba
from align.encode import EncodeOptions, encode_layers, encode_to_store
from align.models import build_default_model, load_encoder
from align.retrieval import tasks
from align.store import ScratchSpace


def noisy_copy(source: Path, target: Path, scale: float = 0.01) -> Path:
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, target)
    state = load_file(str(target / "model.safetensors"))
    gen = torch.Generator().manual_seed(0)
    for key, value in state.items():
        if key.startswith("encoder.layer."):
            state[key] = value + scale * value.std() * torch.randn(value.shape, generator=gen)
    save_file(state, str(target / "model.safetensors"), {"format": "pt"})
    return target


def naive(base, tuned, texts, opts, scratch: ScratchSpace) -> SweepStores:
    def enc(model):
        return encode_to_store(model, texts, opts, None, scratch, progress=False)

    out = SweepStores(enc(base), enc(tuned))
    for block in range(1, base.num_layers + 1):
        out.graft[block] = enc(variant_encoder(base, tuned, block, "graft"))
        out.restore[block] = enc(variant_encoder(base, tuned, block, "restore"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=150, help="parallel pairs (2n texts)")
    ap.add_argument("--ckpt", default=None, help="tuned model (default: base + noise)")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp())
    base_dir = build_default_model()
    tuned_dir = Path(args.ckpt) if args.ckpt else noisy_copy(base_dir, work / "noisy")
    base, tuned = load_encoder(str(base_dir), "cpu"), load_encoder(str(tuned_dir), "cpu")
    pairs = read_tatoeba(build_tatoeba_demo(work / "tat", ["de"], n=args.n, seed=1), "deu")
    texts = pairs.src + pairs.tgt
    rows = {"deu": (np.arange(args.n), np.arange(args.n, 2 * args.n))}
    opts = EncodeOptions(batch_size=args.batch_size, prefix="query: ")
    print(f"{len(texts)} texts, {base.num_layers} blocks, torch threads {torch.get_num_threads()}")
    encode_layers(base, texts[:32], opts, cache=None, progress=False)  # warm-up

    scratch = ScratchSpace()
    start = time.perf_counter()
    reference = naive(base, tuned, texts, opts, scratch)
    t_naive = time.perf_counter() - start
    start = time.perf_counter()
    swept = sweep(base, tuned, texts, opts, scratch)
    t_sweep = time.perf_counter() - start

    layers = list(range(base.num_layers + 1))
    same_embeddings = all(
        np.array_equal(swept.variant(kind, b).layer(layer), reference.variant(kind, b).layer(layer))
        for kind in ("graft", "restore")
        for b in range(1, base.num_layers + 1)
        for layer in range(b, base.num_layers + 1)
    ) and np.array_equal(swept.base.stack(), reference.base.stack())
    task, params = tasks.get("tatoeba"), tasks.TaskParams()
    scores_a = transplant_records("t", swept, rows, layers, task, params)
    scores_b = transplant_records("t", reference, rows, layers, task, params)
    scratch.close()
    print(f"{'method':<8}{'seconds':>10}")
    print(f"{'naive':<8}{t_naive:10.2f}")
    print(f"{'sweep':<8}{t_sweep:10.2f}")
    print(f"speed-up sweep vs naive: {t_naive / t_sweep:.2f}x (target >= 1.7x)")
    print(f"identical embeddings: {same_embeddings}; identical scores: {scores_a == scores_b}")
    print(f"blocks changed: {base.num_layers - len(swept.noop)} of {base.num_layers}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
