"""How one-pass margin mining scales: time and peak memory at n = 10k, 50k, 200k a side.

Each size runs in its own process (synthetic unit vectors, d = 384, k = 4, mode max), so its
peak RSS is its own; the inputs' own memory (2 n d float32) is reported apart from the extra
the mining needs. Exact mining computes one n x n similarity matrix, so time should grow like
n^2; the extra memory holds the running top-k lists and one tile, so it should grow like n (and
stay near a constant plus 2 k n x 12 bytes). The fitted exponents (least squares on log-log)
are printed; the figures feed docs/scale.md.

    python benchmarks/bench_scale.py [--sizes 10000 50000 200000] [--d 384]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys

import numpy as np

_CHILD = r"""
import json, resource, sys, time
import numpy as np
from align.retrieval import mine
from align.vectors import normalize

n, d = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
y = normalize(rng.standard_normal((n, d), dtype=np.float32))
x = normalize(y + 1.5 * rng.standard_normal((n, d), dtype=np.float32) / np.sqrt(d))
mine(x[:500], y[:500], "max", 4)  # warm-up: thread pools and BLAS set up outside the timing
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
cands = mine(x, y, "max", 4)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"n": n, "seconds": seconds, "extra_mb": peak - before,
                  "inputs_mb": 2 * x.nbytes / 2**20, "pairs": len(cands)}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 200_000])
    ap.add_argument("--d", type=int, default=384)
    args = ap.parse_args()
    rows = []
    print(f"{'n a side':>10}{'time s':>10}{'GFLOP/s':>10}{'extra MB':>10}{'inputs MB':>11}")
    for n in args.sizes:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(n), str(args.d)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        )
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rate = 2 * n * n * args.d / row["seconds"] / 1e9
        print(
            f"{n:>10}{row['seconds']:10.1f}{rate:10.1f}{row['extra_mb']:10.0f}"
            f"{row['inputs_mb']:11.0f}"
        )
        rows.append(row)
    logn = np.log([r["n"] for r in rows])
    time_exp = np.polyfit(logn, np.log([r["seconds"] for r in rows]), 1)[0]
    mem = np.maximum([r["extra_mb"] for r in rows], 1e-3)
    mem_exp = np.polyfit(logn, np.log(mem), 1)[0]
    slope, intercept = np.polyfit([r["n"] for r in rows], mem, 1)
    print(f"fitted exponents: time ~ n^{time_exp:.2f} (expected 2), extra memory ~ n^{mem_exp:.2f}")
    for a, b in itertools.pairwise(rows):
        local = np.log(b["seconds"] / a["seconds"]) / np.log(b["n"] / a["n"])
        print(f"  time exponent from {a['n']} to {b['n']}: {local:.2f}")
    print(
        f"extra memory, linear fit: {intercept:.0f} MB + {slope * 2**20:.0f} bytes per sentence a "
        "side (the constant is the tile buffer and torch's own; what grows is the normalised "
        "copies of the inputs and the running top-k lists)"
    )


if __name__ == "__main__":
    main()
