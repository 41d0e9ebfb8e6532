"""The GPU check of issue 14, as one script: run it where a GPU is lent.

1. Tatoeba (Bible demo set, 3 languages x 1000): `align retrieve` on the CPU in float32 and on
   CUDA in bf16, no cache; every acc_xx2en / acc_en2xx cell must agree within 0.5 points.
2. Mining: `align.retrieval.mine` on CUDA tiles (float32) against the CPU on the same arrays
   (20k a side, d = 1024, translation-like): the same candidates, scores to float32 rounding.
3. Mining at 200k a side (d = 384) on CUDA, float32 and bf16 tiles, timed.

Writes ``gpu_check.json`` into ``--out`` and prints each figure. ``--device cpu`` runs the same
steps CPU against CPU (a smoke test of the script itself, with ``--n-mine`` small).

    python benchmarks/gpu_check.py --out "$OUT" [--device cuda] [--n-mine 200000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def tatoeba_agreement(work: Path, device: str) -> dict:
    from align.data.bible import build_tatoeba_demo
    from align.results import Result

    data = build_tatoeba_demo(work / "tatoeba", ["de", "fr", "ru"], n=1000, seed=0)
    runs = {"cpu": ["--device", "cpu", "--dtype", "float32"]}
    runs[device] = ["--device", device, "--dtype", "bfloat16" if device != "cpu" else "float32"]
    results, seconds = {}, {}
    for name, flags in runs.items():
        out = work / f"retrieve-{name}"
        start = time.perf_counter()
        cmd = [sys.executable, "-m", "align.cli", "retrieve", "--data-dir", str(data)]
        subprocess.run([*cmd, *flags, "--no-cache", "--no-plot", "--out", str(out)], check=True)
        seconds[name] = time.perf_counter() - start
        (path,) = out.glob("*.json")
        results[name] = Result.load(path)
    worst = 0.0
    for metric in ("acc_xx2en", "acc_en2xx"):
        for ref in results["cpu"].records(metric):
            (other,) = results[device].records(metric, lang=ref["lang"], layer=ref["layer"])
            worst = max(worst, abs(other["value"] - ref["value"]) * 100)
    return {"max_diff_points": worst, "within_0.5": worst <= 0.5, "seconds": seconds}


def translation_like(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from align.vectors import normalize

    rng = np.random.default_rng(seed)
    y = normalize(rng.standard_normal((n, d), dtype=np.float32))
    noise = rng.standard_normal((n, d), dtype=np.float32) / np.sqrt(d)
    return normalize(y + 1.5 * noise), y


def mining_agreement(device: str, n: int) -> dict:
    from align.retrieval import mine

    x, y = translation_like(n, 1024, 1)
    cpu = mine(x, y, "max", 4, device="cpu")
    gpu = mine(x, y, "max", 4, device=device)
    a = dict(zip(zip(cpu.src.tolist(), cpu.tgt.tolist(), strict=True), cpu.score, strict=True))
    b = dict(zip(zip(gpu.src.tolist(), gpu.tgt.tolist(), strict=True), gpu.score, strict=True))
    shared = a.keys() & b.keys()
    worst = max(abs(a[p] - b[p]) / abs(a[p]) for p in shared)
    differ = len(a.keys() ^ b.keys())
    return {"n": n, "pairs": len(a), "differ": differ, "max_rel_score": float(worst)}


def mining_time(device: str, n: int) -> dict:
    import torch

    from align.retrieval import mine

    x, y = translation_like(n, 384, 2)
    out = {"n": n, "d": 384}
    for precision in ("float32", "bfloat16") if device != "cpu" else ("float32",):
        mine(x[:2000], y[:2000], "max", 4, device=device, precision=precision)  # warm-up
        if device != "cpu":
            torch.cuda.synchronize()
        start = time.perf_counter()
        mine(x, y, "max", 4, device=device, precision=precision)
        seconds = time.perf_counter() - start
        out[precision] = {"seconds": seconds, "tflops": 2 * n * n * 384 / seconds / 1e12}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--n-mine", type=int, default=200_000)
    ap.add_argument("--n-agree", type=int, default=20_000)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"device": args.device}
    if args.device != "cpu":
        import torch

        report["gpu"] = torch.cuda.get_device_name(0)
    report["tatoeba"] = tatoeba_agreement(args.out / "work", args.device)
    print("tatoeba:", report["tatoeba"], flush=True)
    report["mining_agreement"] = mining_agreement(args.device, args.n_agree)
    print("mining agreement:", report["mining_agreement"], flush=True)
    report["mining_time"] = mining_time(args.device, args.n_mine)
    print("mining time:", report["mining_time"], flush=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
