"""Every ordered pair of a multi-way set, per layer, against one product of the same size.

21 languages x 1,000 sentences x 13 layers (d = 384, the default model's width; seeded
embeddings sharing a common part, so retrieval is neither trivial nor hopeless), each language
in its own embedding store as the cache keeps them. Timed, in one run: the pair scoring of
``retrieve --task parallel`` (:func:`align.retrieval.pairs.pair_outcomes`: top-1 accuracy and
xSIM both ways for all 420 ordered pairs, from the stores) against the baseline the issue
names: per layer, one product holding as many similarity entries as there are ordered pairs
(21 x 1,000 queries against 20 x 1,000 keys), nothing else. Issue 28 asks at most 2x.

    python benchmarks/bench_pairs.py [--langs 21] [--n 1000] [--layers 13] [--dim 384]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from align.retrieval.pairs import ordered_pairs, pair_outcomes
from align.store import store_from_array


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--langs", type=int, default=21)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--layers", type=int, default=13)
    parser.add_argument("--dim", type=int, default=384)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    layers = list(range(args.layers))
    langs = [f"l{i:02d}" for i in range(args.langs)]
    with tempfile.TemporaryDirectory() as tmp:
        stores = {}
        for lang in langs:
            common = rng.standard_normal((args.layers, args.n, args.dim), dtype=np.float32)
            noise = rng.standard_normal((args.layers, args.n, args.dim), dtype=np.float32)
            stores[lang] = store_from_array(Path(tmp) / lang, layers, common + 2 * noise)
        pairs = ordered_pairs(langs)
        start = time.perf_counter()
        for layer in layers:
            pair_outcomes({lang: s.layer(layer) for lang, s in stores.items()}, pairs)
        ours = time.perf_counter() - start
        start = time.perf_counter()
        for layer in layers:
            x = torch.as_tensor(np.concatenate([s.layer(layer) for s in stores.values()]))
            keys = x[: (args.langs - 1) * args.n]
            _ = x @ keys.T  # as many entries as ordered pairs
        baseline = time.perf_counter() - start
    print(f"{len(pairs)} ordered pairs of {args.langs} languages x {args.n} sentences x "
          f"{args.layers} layers (d={args.dim}), from embedding stores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    print(f"  pair scoring (top-1 and xSIM both ways): {ours:7.1f} s")
    print(f"  one product per layer, same entries:     {baseline:7.1f} s")
    print(f"  ratio {ours / baseline:.2f} (issue 28 asks at most 2)")


if __name__ == "__main__":
    main()
