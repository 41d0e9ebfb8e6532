"""Sentences/s of align's all-layer extraction vs a naive loop, same texts, one run.

naive        fixed batches in input order, plain AutoModel forward, last layer mean-pooled
align-1      align's length-sorted batches, one layer kept (no hidden_states)
align-all    align.encode.encode_layers: every layer pooled from one forward pass

Texts: Bible verses of mixed length (several editions, shuffled). Targets (issue 2):
align-all >= 1.5x naive, and align-all costs <= 10% over align-1.

    python benchmarks/bench_encode.py [--n 1500] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import time

import numpy as np
import torch

from align.data.bible import database_path
from align.encode import EncodeOptions, encode_layers
from align.models import load_encoder


def mixed_verses(n: int, seed: int = 0) -> list[str]:
    with sqlite3.connect(f"file:{database_path()}?mode=ro", uri=True) as con:
        rows = con.execute(
            "SELECT vText FROM bible WHERE bbName IN ('k','e','l','r','y') AND length(vText) > 5"
        ).fetchall()
    texts = [r[0] for r in rows]
    random.Random(seed).shuffle(texts)
    return texts[:n]


def naive(enc, texts: list[str], batch_size: int, max_length: int, prefix: str) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            batch = enc.tokenizer(
                [prefix + t for t in texts[i : i + batch_size]],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            hidden = enc.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
    return np.concatenate(out)


def align_one_layer(enc, texts: list[str], opts: EncodeOptions) -> np.ndarray:
    """align's sorted batching, but only the last layer is kept (no hidden_states)."""
    tok = enc.tokenizer
    ids = tok([opts.prefix + t for t in texts], truncation=True, max_length=opts.max_length)
    order = np.argsort([-len(x) for x in ids["input_ids"]], kind="stable")
    out = np.empty((len(texts), enc.model.config.hidden_size), np.float32)
    with torch.inference_mode():
        for s in range(0, len(texts), opts.batch_size):
            idx = order[s : s + opts.batch_size]
            feats = [
                {"input_ids": ids["input_ids"][i], "attention_mask": ids["attention_mask"][i]}
                for i in idx
            ]
            batch = tok.pad(feats, return_tensors="pt")
            hidden = enc.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out[idx] = ((hidden * mask).sum(1) / mask.sum(1)).numpy()
    return out


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    args = ap.parse_args()
    enc = load_encoder(None, device="cpu")
    texts = mixed_verses(args.n)
    opts = EncodeOptions(batch_size=args.batch_size, max_length=args.max_length, prefix="query: ")
    lengths = [len(x) for x in enc.tokenizer(texts)["input_ids"]]
    spread = f"{min(lengths)}/{int(np.median(lengths))}/{max(lengths)}"
    print(f"{len(texts)} texts, tokens min/median/max {spread}")
    print(f"torch threads {torch.get_num_threads()}, batch size {args.batch_size}")
    naive(enc, texts[:64], args.batch_size, args.max_length, opts.prefix)  # warm-up
    t_naive, ref = timed(naive, enc, texts, args.batch_size, args.max_length, opts.prefix)
    t_one, _ = timed(align_one_layer, enc, texts, opts)
    t_all, layers = timed(lambda: encode_layers(enc, texts, opts, cache=None, progress=False))
    err = float(np.abs(layers[-1] - ref).max())
    print(f"{'method':<12}{'seconds':>10}{'sent/s':>10}")
    for name, t in (("naive", t_naive), ("align-1", t_one), ("align-all", t_all)):
        print(f"{name:<12}{t:10.2f}{len(texts) / t:10.1f}")
    print(f"speed-up align-all vs naive: {t_naive / t_all:.2f}x (target >= 1.5x)")
    cost = 100 * (t_all / t_one - 1)
    print(f"cost of keeping all {layers.shape[0]} layers vs one: {cost:+.1f}% (target <= 10%)")
    print(f"max |align-all last layer - naive| = {err:.2e} (float16 storage)")


if __name__ == "__main__":
    main()
