"""Peak memory of align's scoring path, and how it grows with the number of sentences.

Each measurement is one ``python -m align.cli ...`` subprocess with a fresh embedding cache
(the default model's directory is shared, so building it is not measured); its peak RSS comes
from ``os.wait4``. Sentences are cut at ``--max-length`` 48 tokens: every set's first (longest)
batch then has one width, and the forward pass's peak does not depend on how long the longest
sentence of a sample happens to be (it differs between samples by up to 20 tokens here).
At two or more set sizes it reports the growth per extra sentence (a least-squares slope):

- ``retrieve --task bucc --layers all`` encoding into an empty cache (encoding + scoring);
- the same command again, reading the cache (scoring from disk);
- ``compare`` of the default model with a perturbed copy on a two-language Bible set
  (both models encoded, every probe, the CKA matrix, attribution).

Beside each growth it prints what one layer of one sentence costs in float32 (d x 4 bytes) and
the growth measured before the streaming redesign (31.5 KB per sentence for retrieve on the
default model: 6 bytes x 13 layers x 384); with ``--baseline-src DIR`` (a checkout of an older
align, e.g. ``git worktree add /tmp/old 736971f``) the older code is measured in the same run.
Finally it extrapolates to XLM-R Large (25 layers, d = 1024) on full BUCC de-en.

    python benchmarks/bench_memory.py                      # about 10 minutes on 2 cores
    python benchmarks/bench_memory.py --baseline-src /tmp/old
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

BEFORE_KB = 31.5  # retrieve --task bucc --layers all, per sentence, measured before the change
DIM, LAYERS = 384, 13  # the default model
LARGE_DIM, LARGE_LAYERS = 1024, 25  # XLM-R Large
BUCC_DE_EN = 880_000  # sentences of BUCC 2018 de-en, both sides of train (test) and sample (dev)


@dataclass
class Measure:
    what: str
    sentences: int
    peak_mb: float
    seconds: float


def run_peak(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one subprocess, from its own rusage. It runs in the cache
    folder: ``python -m`` puts the working directory first on the path, and a checkout there
    would shadow ``--baseline-src``."""
    import time

    start = time.perf_counter()
    cwd = env["ALIGN_CACHE_DIR"] or None
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{stderr[-3000:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start


def fresh_cache(root: Path, models: Path) -> Path:
    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=root))
    (cache / "models").symlink_to(models)
    return cache


def perturbed_copy(model_dir: Path, target: Path) -> Path:
    """The default model with noise on block 6: a checkpoint that differs from its base."""
    import torch
    from safetensors.torch import load_file, save_file

    if (target / "model.safetensors").is_file():
        return target
    shutil.copytree(model_dir, target)
    state = load_file(str(target / "model.safetensors"))
    gen = torch.Generator().manual_seed(0)
    for key in state:
        if key.startswith("encoder.layer.5."):
            state[key] = state[key] + 0.05 * torch.randn(state[key].shape, generator=gen)
    save_file(state, str(target / "model.safetensors"), {"format": "pt"})
    meta = {"encoding": {"prefix": "query: ", "pooling": "mean"}, "source": "bench_memory"}
    (target / "align_meta.json").write_text(json.dumps(meta))
    return target


def bible_set(python: list[str], env, out: Path, n: int, bucc: bool) -> tuple[Path, int]:
    """A Bible set and its number of sentences (every side of every split and language)."""
    if not out.is_dir():
        cmd = [*python, "data", "bible", "--out", str(out), "--n", str(n)]
        cmd += ["--langs", "de" if bucc else "de,fr"] + (["--bucc"] if bucc else [])
        subprocess.run(cmd, env=env, check=True, capture_output=True, cwd=out.parent)
    return out, (8 * n if bucc else 4 * n)  # BUCC: 2 splits x 2 sides x (n gold + n extra)


def measure(label: str, src: Path | None, args, work: Path, models: Path) -> list[Measure]:
    env = {**os.environ, "ALIGN_CACHE_DIR": "", "TOKENIZERS_PARALLELISM": "false"}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    python = [sys.executable, "-m", "align.cli", "-q"]
    base_dir = models / sorted(p.name for p in models.iterdir())[0]
    ckpt = perturbed_copy(base_dir, work / "ckpt")
    out: list[Measure] = []
    for n in args.bucc_n:
        data, count = bible_set(python, env, work / f"bucc-{n}", n, bucc=True)
        cache = fresh_cache(work, models)
        cmd = [*python, "retrieve", "--task", "bucc", "--layers", "all", "--data-dir", str(data)]
        cmd += ["--out", str(work / f"out-{label}"), "--no-plot", *_width(args)]
        for what in ("retrieve bucc, encoding", "retrieve bucc, from cache"):
            peak, secs = run_peak(cmd, env | {"ALIGN_CACHE_DIR": str(cache)})
            out.append(Measure(what, count, peak, secs))
            print(f"  {label:>8} {what:<28} {count:>6} sentences: {peak:8.0f} MB {secs:6.0f} s")
    for n in args.compare_n:
        data, count = bible_set(python, env, work / f"tat-{n}", n, bucc=False)
        cache = fresh_cache(work, models)
        cmd = [*python, "compare", "--ckpt", str(ckpt), "--data-dir", str(data)]
        cmd += ["--out", str(work / f"cmp-{label}"), "--n-boot", str(args.n_boot), *_width(args)]
        peak, secs = run_peak(cmd, env | {"ALIGN_CACHE_DIR": str(cache)})
        out.append(Measure("compare, both models", count, peak, secs))
        print(f"  {label:>8} {'compare, both models':<28} {count:>6} sentences: {peak:8.0f} MB")
    return out


def _width(args) -> list[str]:
    """Every set's longest batch is cut to the same width, so the forward pass's own peak (it
    grows with the longest sentence, which a larger sample tends to hold) is one constant."""
    return ["--max-length", str(args.max_length)]


def growth(rows: list[Measure], what: str) -> tuple[float, float]:
    """(KB per extra sentence: the least-squares slope over the sizes, peak MB at the largest)."""
    import numpy as np

    chosen = sorted((m for m in rows if m.what == what), key=lambda m: m.sentences)
    x = np.array([m.sentences for m in chosen], float)
    y = np.array([m.peak_mb for m in chosen], float) * 1024
    slope = float(np.polyfit(x, y, 1)[0])
    return slope, chosen[-1].peak_mb


def report(results: dict[str, list[Measure]]) -> None:
    layer_kb = DIM * 4 / 1024
    print(f"\none layer of one sentence in float32 (d = {DIM}): {layer_kb:.2f} KB")
    print(f"before the streaming redesign (measured then): {BEFORE_KB} KB per sentence (retrieve)")
    rows = results["align"]
    before = results.get("before")
    head = f"\n{'measurement':<28}{'align KB':>10}{'x layer':>9}"
    print(head + (f"{'before KB':>11}{'ratio':>8}" if before else f"{'vs 31.5 KB':>11}"))
    for what in dict.fromkeys(m.what for m in rows):
        kb, _ = growth(rows, what)
        line = f"{what:<28}{kb:10.2f}{kb / layer_kb:9.2f}"
        if before:
            old, _ = growth(before, what)
            line += f"{old:11.2f}{kb / old:8.2f}"
        elif what.startswith("retrieve"):
            line += f"{kb / BEFORE_KB:10.2f}x"
        print(line)
    kb, peak = growth(rows, "retrieve bucc, encoding")
    fixed_mb = peak - kb * max(m.sentences for m in rows) / 1024
    new_gb = (fixed_mb * 1024 + kb * LARGE_DIM / DIM * BUCC_DE_EN) / 1024**2
    old_gb = BEFORE_KB * (LARGE_LAYERS * LARGE_DIM) / (LAYERS * DIM) * BUCC_DE_EN / 1024**2
    print(
        f"\nXLM-R Large on full BUCC de-en ({BUCC_DE_EN:,} sentences, {LARGE_LAYERS} layers, "
        f"d = {LARGE_DIM}): the growth per sentence scales with d only (one layer at a time), so "
        f"retrieve peaks near {new_gb:.1f} GB (this model's {fixed_mb / 1024:.1f} GB fixed part "
        f"included; XLM-R Large's own weights add about 2.2 GB), against about {old_gb:.0f} GB "
        "before (every layer in RAM as float32 and float16)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bucc-n", type=int, nargs="+", default=[500, 1000])
    parser.add_argument("--compare-n", type=int, nargs="+", default=[400, 2000])
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument(
        "--max-length", type=int, default=48, help="tokens per sentence (equal batch widths)"
    )
    parser.add_argument("--baseline-src", type=Path, help="checkout of an older align to measure")
    parser.add_argument("--work", type=Path, help="working directory (default: a temp dir)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    from align.models.default_model import build_default_model

    os.environ["ALIGN_CACHE_DIR"] = str(work / "shared")
    build_default_model()
    models = work / "shared" / "models"
    results = {"align": measure("align", None, args, work, models)}
    if args.baseline_src is not None:
        results["before"] = measure("before", args.baseline_src, args, work, models)
    report(results)


if __name__ == "__main__":
    main()
