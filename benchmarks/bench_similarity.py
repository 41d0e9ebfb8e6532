"""Each similarity measure of ``align.probes.similarity`` beside its reference implementation,
on the same arrays, in one run: seconds and the ratio (reference / align: above 1, align is
faster), and the two values.

The references are research code that is not on PyPI; give local checkouts (read and run, never
copied into align): google/svcca (``cca_core.py``, ``pwcca.py``), ahwillia/netrep, and
minyoungg/platonic-rep (``metrics.py``; it imports torchaudio for a measure align does not
use, so a stand-in module is put in its place). A reference not given is left out of the
table.

    python benchmarks/bench_similarity.py --n 10000 --d 1024 \\
        --svcca ~/src/svcca --netrep ~/src/netrep --platonic ~/src/platonic-rep
"""

from __future__ import annotations

import argparse
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np


def _timed(fn: Callable[[], float], repeat: int) -> tuple[float, float]:
    best, value = float("inf"), float("nan")
    for _ in range(repeat):
        start = time.perf_counter()
        value = float(fn())
        best = min(best, time.perf_counter() - start)
    return best, value


def _references(args) -> dict[str, Callable]:
    """The reference functions that could be imported, by measure name."""
    refs: dict[str, Callable] = {}
    if args.svcca:
        sys.path.insert(0, str(args.svcca))
        import cca_core
        import pwcca

        def svcca(x, y):
            k = args.svcca_dims

            def reduce(a):
                ca = a - a.mean(axis=1, keepdims=True)
                _, s, v = np.linalg.svd(ca, full_matrices=False)
                return np.dot(s[:k] * np.eye(k), v[:k])

            found = cca_core.get_cca_similarity(reduce(x.T), reduce(y.T), epsilon=1e-10,
                                                verbose=False)  # fmt: skip
            return np.mean(found["cca_coef1"])

        refs["svcca"] = svcca
        refs["pwcca"] = lambda x, y: pwcca.compute_pwcca(x.T, y.T, epsilon=0.0)[0]
    if args.netrep:
        sys.path.insert(0, str(args.netrep))
        from netrep.metrics import LinearMetric

        refs["procrustes_angular"] = lambda x, y: LinearMetric(alpha=1).fit_score(x, y)
    if args.platonic:
        sys.path.insert(0, str(args.platonic))
        stand_in = types.ModuleType("torchaudio")
        stand_in.functional = types.ModuleType("torchaudio.functional")  # type: ignore[attr-defined]
        sys.modules.setdefault("torchaudio", stand_in)
        sys.modules.setdefault("torchaudio.functional", stand_in.functional)  # type: ignore[attr-defined]
        import metrics
        import torch

        def normalised(a):
            return torch.nn.functional.normalize(torch.tensor(a, dtype=torch.float32), dim=1)

        refs["cknna"] = lambda x, y: metrics.AlignmentMetrics.cknna(
            normalised(x), normalised(y), topk=args.k
        )
        refs["mutual_knn"] = lambda x, y: metrics.AlignmentMetrics.mutual_knn(
            normalised(x), normalised(y), topk=args.k
        )
    return refs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--d", type=int, default=1024)
    parser.add_argument("--k", type=int, default=10, help="neighbours (CKNNA, mutual kNN)")
    parser.add_argument("--svcca-dims", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--svcca", type=Path, help="a checkout of google/svcca")
    parser.add_argument("--netrep", type=Path, help="a checkout of ahwillia/netrep")
    parser.add_argument("--platonic", type=Path, help="a checkout of minyoungg/platonic-rep")
    args = parser.parse_args()
    from align.probes import similarity as sim

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.n, args.d)).astype(np.float32)
    y = (x @ rng.standard_normal((args.d, args.d)).astype(np.float32) / np.sqrt(args.d)
         + rng.standard_normal((args.n, args.d)).astype(np.float32))  # fmt: skip
    k, dims = args.k, args.svcca_dims
    ours = {
        "svcca": lambda: sim.svcca(x, y, dims=dims),
        "pwcca": lambda: sim.pwcca(x, y),
        "procrustes_angular": lambda: sim.procrustes_distance(x, y),
        "cknna": lambda: sim.cknna(x, y, k=k, precision="float32"),
        "mutual_knn": lambda: sim.mutual_knn(x, y, k=k, precision="float32"),
        "rsa": lambda: sim.rsa(x, y, precision="float32"),
    }
    refs = _references(args)
    print(f"n = {args.n}, d = {args.d} (float32 arrays; best of {args.repeat})")
    print(f"{'measure':<20}{'align s':>10}{'reference s':>13}{'ratio':>8}   values (align, ref)")
    for name, fn in ours.items():
        mine, value = _timed(fn, args.repeat)
        if name in refs:
            wide = name in ("svcca", "pwcca", "procrustes_angular")  # numpy float64 code
            a, b = (x.astype(np.float64), y.astype(np.float64)) if wide else (x, y)
            theirs, ref = _timed(lambda r=refs[name], a=a, b=b: r(a, b), args.repeat)
            print(f"{name:<20}{mine:10.2f}{theirs:13.2f}{theirs / mine:8.2f}   "
                  f"{value:.6f}, {ref:.6f}")  # fmt: skip
        else:
            print(f"{name:<20}{mine:10.2f}{'-':>13}{'-':>8}   {value:.6f} (no reference given)")


if __name__ == "__main__":
    main()
