"""How ``align compare``'s scoring time grows with the number of sentences per language.

The default model is compared with a copy whose block 6 carries noise (a checkpoint that differs
from its base) on two-language Bible sets (de, fr) at each size, every layer, every probe, the
CKA matrix and the attribution (``--n-boot-spearman`` 200: resampled linear CKA on every layer).
Each size runs twice, each in its own process: once to encode both models into a shared cache
(``--no-probes --no-cka-matrix``, so it scores little), once from that cache, whose
``timings["score_s"]`` is the scoring time measured here (no encoding, no weights loaded).
The time exponent between the sizes (log ratio of times over log ratio of sizes) is printed
beside the issue's measurement at fa82b13 (2.97 between 1,000 and 3,000),
with the result's per-stage timings. ``--baseline-src DIR`` (a checkout of an older align, e.g.
``git worktree add /tmp/old fa82b13``) measures that code in the same run on the same cache.
``--transforms-cost`` measures, on the same code and cache, what the geometry transforms and
the decomposition add (issue 27: at most 25%): scoring with and without ``--no-transforms``.

    python benchmarks/bench_compare.py [--sizes 1000 3000] [--baseline-src /tmp/old]
    python benchmarks/bench_compare.py --sizes 1000 --transforms-cost
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_memory import bible_set, default_model, perturbed_copy

ISSUE_EXPONENT = 2.97  # fa82b13, 1,000 -> 3,000 sentences per language, all layers (issue 20)


def run_compare(
    label: str, src: Path | None, n: int, work: Path, ckpt: Path, env: dict, extra: tuple = ()
) -> dict:
    """Encode (first call per size and code) then score from the cache; the result's timings."""
    env = dict(env)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    python = [sys.executable, "-m", "align.cli", "-q"]
    data, _ = bible_set(python, env, work / f"tat-{n}", n, bucc=False)
    out = work / f"cmp-{label}-{n}"
    cmd = [*python, "compare", "--ckpt", str(ckpt), "--data-dir", str(data), "--out", str(out)]
    cmd += ["--n-boot-spearman", "200", *extra]
    warm = [*cmd, "--no-probes", "--no-cka-matrix", "--out", str(work / "warm")]
    for run in (warm, cmd):  # the first fills the cache (scoring little), the second is measured
        proc = subprocess.run(run, env=env, cwd=work, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(run)} failed:\n{proc.stderr[-3000:]}")
    (path,) = out.glob("compare-*.json")
    timings = json.loads(path.read_text(encoding="utf-8"))["timings"]
    print(f"  {label:>8} n={n:>5}: scoring {timings['score_s']:8.1f} s  {timings}", flush=True)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 3000])
    parser.add_argument("--baseline-src", type=Path, help="checkout of an older align to measure")
    parser.add_argument("--work", type=Path, help="working directory (default: a temp dir)")
    parser.add_argument("--baseline-only", action="store_true", help="measure --baseline-src only")
    parser.add_argument(
        "--transforms-cost",
        action="store_true",
        help="scoring with and without --no-transforms (same code, same cache), as a ratio",
    )
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-compare-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ALIGN_CACHE_DIR": str(work / "cache"), "TOKENIZERS_PARALLELISM": "false"}
    ckpt = perturbed_copy(default_model(env), work / "ckpt")
    if args.transforms_cost:
        for n in args.sizes:
            without = run_compare("without", None, n, work, ckpt, env, ("--no-transforms",))
            with_ = run_compare("with", None, n, work, ckpt, env)
            added = with_["score_s"] / without["score_s"] - 1
            print(
                f"n={n}: the transforms and decomposition add {added:+.0%} to scoring "
                f"({without['score_s']:.1f} s -> {with_['score_s']:.1f} s; issue 27 asks <= 25%)",
                flush=True,
            )
        return
    codes = ({"before": args.baseline_src} if args.baseline_src else {}) | {"align": None}
    if args.baseline_only:
        codes.pop("align")
    for label, src in codes.items():
        times = {n: run_compare(label, src, n, work, ckpt, env)["score_s"] for n in args.sizes}
        for a, b in itertools.pairwise(args.sizes):
            exponent = math.log(times[b] / times[a]) / math.log(b / a)
            print(
                f"{label}: scoring time exponent {a} -> {b} sentences per language: "
                f"{exponent:.2f} ({times[a]:.1f} s -> {times[b]:.1f} s; at fa82b13 the issue "
                f"measured {ISSUE_EXPONENT} from 1,000 to 3,000)",
                flush=True,
            )


if __name__ == "__main__":
    main()
