"""Full 13 x 13 linear-CKA matrix: align vs (a) the textbook Gram formula pair by pair and
(b) torch-cka's minibatch approach, on the same random "layer" activations, in one run.

Activations: 13 layers, n=5000, d=384, each layer a noisy mix of the previous one.
Targets (issue 3): >= 10x faster than (b), >= 3x faster than (a), results equal to 1e-5.
(b) is a different estimator (debiased HSIC averaged over minibatches): it is compared with
align's ``cka.minibatch`` on the same, unshuffled batches.

    pip install -r benchmarks/requirements.txt   # torch-cka, the baseline (b)
    python benchmarks/bench_cka.py [--n 5000] [--layers 13] [--d 384] [--batch 500]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from align.probes import cka


def activations(layers: int, n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    acts = rng.standard_normal((layers, n, d), dtype=np.float32)
    for i in range(1, layers):
        acts[i] = 0.8 * acts[i - 1] + 0.6 * acts[i]
    return acts


def textbook_matrix(acts: np.ndarray) -> np.ndarray:
    """(a) CKA = <HKH, HLH> / (||HKH|| ||HLH||), fresh Gram matrices for every pair."""
    acts64 = acts.astype(np.float64)
    n_layers = len(acts64)
    out = np.empty((n_layers, n_layers))
    for i in range(n_layers):
        for j in range(n_layers):
            k, l_ = acts64[i] @ acts64[i].T, acts64[j] @ acts64[j].T
            kc = k - k.mean(0) - k.mean(1)[:, None] + k.mean()
            lc = l_ - l_.mean(0) - l_.mean(1)[:, None] + l_.mean()
            out[i, j] = np.sum(kc * lc) / np.sqrt(np.sum(kc * kc) * np.sum(lc * lc))
    return out


def torch_cka_matrix(acts: np.ndarray, batch: int) -> np.ndarray | None:
    """(b) torch-cka's CKA.compare on the same arrays, served by a model that returns them."""
    try:
        from torch_cka import CKA
    except ImportError:
        return None
    from torch.utils.data import DataLoader, TensorDataset

    class Stored(torch.nn.Module):
        def __init__(self, table: torch.Tensor) -> None:
            super().__init__()
            self.table = table

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            return self.table[idx]

    class Layers(torch.nn.Module):
        def __init__(self, data: np.ndarray) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleList(Stored(torch.from_numpy(a)) for a in data)

        def forward(self, idx: torch.Tensor) -> None:
            for layer in self.layers:
                layer(idx)

    names = [f"layers.{i}" for i in range(len(acts))]
    loader = DataLoader(TensorDataset(torch.arange(acts.shape[1])), batch_size=batch, shuffle=False)
    model = Layers(acts)
    runner = CKA(model, model, "a", "b", model1_layers=names, model2_layers=names, device="cpu")
    runner.compare(loader, loader)
    return runner.export()["CKA"].numpy()


def align_minibatch_matrix(acts: np.ndarray, batch: int) -> np.ndarray:
    n_layers = len(acts)
    return np.array(
        [
            [
                cka.minibatch(acts[i], acts[j], batch_size=batch, shuffle=False)
                for j in range(n_layers)
            ]
            for i in range(n_layers)
        ]
    )


def matmul_gflops(n: int, d: int, width: int) -> float:
    """Best float32 rate of numpy and torch for the product align runs ([d, n] x [n, width])."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((d, n), dtype=np.float32)
    b = rng.standard_normal((n, width), dtype=np.float32)
    rates = []
    for mul in (np.matmul, lambda x, y: torch.from_numpy(x) @ torch.from_numpy(y)):
        mul(a, b)
        start = time.perf_counter()
        for _ in range(3):
            mul(a, b)
        rates.append(3 * 2 * n * d * width / (time.perf_counter() - start) / 1e9)
    return max(rates)


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--layers", type=int, default=13)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--batch", type=int, default=500, help="minibatch size of baseline (b)")
    args = ap.parse_args()
    acts = activations(args.layers, args.n, args.d)
    print(f"{args.layers} layers, n={args.n}, d={args.d}; torch threads {torch.get_num_threads()}")
    cka.matrix(acts[:2])  # warm-up
    t_align, ours = min((timed(cka.matrix, acts) for _ in range(3)), key=lambda r: r[0])
    t_a, textbook = timed(textbook_matrix, acts)
    t_b, theirs = timed(torch_cka_matrix, acts, args.batch)
    flops = args.layers * (args.layers + 1) / 2 * 2 * args.n * args.d**2  # upper-triangle A_i'A_j
    rate = flops / t_align / 1e9
    peak = matmul_gflops(args.n, args.d, args.layers * args.d)
    print(f"{'method':<34}{'seconds':>9}{'align faster by':>17}")
    print(f"{'align cka.matrix':<34}{t_align:9.2f}")
    print(
        f"{'(a) textbook Gram, pair by pair':<34}{t_a:9.2f}{t_a / t_align:16.1f}x  (target >= 3x)"
    )
    print(f"max |align - (a)| = {np.abs(ours - textbook).max():.1e}  (target <= 1e-5)")
    if theirs is None:
        print(
            "(b) torch-cka is not installed (pip install -r benchmarks/requirements.txt): skipped"
        )
    else:
        print(f"{'(b) torch-cka minibatch':<34}{t_b:9.2f}{t_b / t_align:16.1f}x  (>= 10x)")
        same_batches = align_minibatch_matrix(acts, args.batch)
        same_err = np.abs(same_batches - theirs).max()
        full_err = np.abs(cka.matrix(acts, debiased=True) - theirs).max()
        print(f"max |align minibatch, same batches - (b)| = {same_err:.1e}")
        print(f"max |align full-batch debiased - (b)| = {full_err:.1e} (a different estimator)")
    share = f"{rate / peak:.2f} of this machine's float32 matmul ({peak:.1f} GFLOP/s)"
    print(f"align: {rate:.1f} GFLOP/s effective = {share}")


if __name__ == "__main__":
    main()
