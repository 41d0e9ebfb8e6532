"""Peak memory of align's scoring path, and how it grows with the number of sentences.

Each measurement is one ``python -m align.cli ...`` subprocess with a fresh embedding cache
(the default model's directory is shared, so building it is not measured); its peak RSS comes
from ``os.wait4``. Sentences are cut at ``--max-length`` 48 tokens: every set's first (longest)
batch then has one width, and the forward pass's peak does not depend on how long the longest
sentence of a sample happens to be (it differs between samples by up to 20 tokens here).
At three or more set sizes it reports the growth per extra sentence, as a least-squares slope
over every size and as the slope between the two largest sizes (the working budgets of batched
computations, ``align._memory.WORK_BYTES``, fill up at small sizes: what grows between the
largest sizes is what keeps growing):

- ``retrieve --task bucc --layers all`` encoding into an empty cache (encoding + scoring);
- the same command again, reading the cache (scoring from disk);
- ``compare`` of the default model with a perturbed copy on a two-language Bible set (both
  models encoded, every probe, the CKA matrix, attribution), then again from the cache.

Beside each growth it prints what one layer of one sentence costs in float32 (d x 4 bytes) and
the growth measured before the streaming redesign (31.5 KB per sentence for retrieve on the
default model: 6 bytes x 13 layers x 384); with ``--baseline-src DIR`` (a checkout of an older
align, e.g. ``git worktree add /tmp/old 736971f``) the older code is measured in the same run.
Finally it extrapolates to XLM-R Large (25 layers, d = 1024) on full BUCC de-en.

Peak RSS counts anonymous memory and mapped file pages (libraries, the model's weights); both
are sampled as well and reported apart.

    python benchmarks/bench_memory.py                      # about an hour on 2 busy cores
    python benchmarks/bench_memory.py --baseline-src /tmp/old
    python benchmarks/bench_memory.py --from-output OUT.txt    # the report again, from a run's log
"""

from __future__ import annotations

import argparse
import os
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
    peak_mb: float  # peak RSS (rusage): anonymous memory and mapped file pages
    anon_mb: float  # the largest anonymous RSS sampled every few milliseconds
    file_mb: float  # the largest file-backed RSS sampled (libraries, the weights file's pages)
    seconds: float


def _rss_kb(pid: int) -> tuple[int, int] | None:
    """(anonymous RSS, file-backed RSS) of a running process in KB, or None once it is gone."""
    fields: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(("RssAnon:", "RssFile:")):
                    fields[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        return None
    return (fields["RssAnon"], fields["RssFile"]) if len(fields) == 2 else None


def run_peak(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float, float]:
    """(peak RSS in MB from the subprocess's own rusage, its largest sampled anonymous RSS in
    MB, its largest sampled file-backed RSS in MB, seconds). Peak RSS also counts the pages of
    the model's weights file, which transformers maps and the forward pass touches row by row of
    the embedding matrix as a corpus's vocabulary grows (bounded by the file); the anonymous peak
    leaves them out. The command runs in the cache folder: ``python -m`` puts the working
    directory first on the path, and a checkout there would shadow ``--baseline-src``."""
    import threading
    import time

    start = time.perf_counter()
    cwd = env["ALIGN_CACHE_DIR"] or None
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        anon, mapped = [0], [0]

        def sample() -> None:
            while (kb := _rss_kb(proc.pid)) is not None:
                anon[0], mapped[0] = max(anon[0], kb[0]), max(mapped[0], kb[1])
                time.sleep(0.003)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        sampler.join()
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            stderr = err.read().decode(errors="replace")
            raise SystemExit(f"{' '.join(cmd)} failed:\n{stderr[-3000:]}")
    seconds = time.perf_counter() - start
    return usage.ru_maxrss / 1024, anon[0] / 1024, mapped[0] / 1024, seconds


def fresh_cache(root: Path, models: Path) -> Path:
    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=root))
    (cache / "models").symlink_to(models)
    return cache


_PERTURB = """
import json, shutil, sys, torch
from pathlib import Path
from safetensors.torch import load_file, save_file
source, target = Path(sys.argv[1]), Path(sys.argv[2])
shutil.copytree(source, target)
state = load_file(str(target / "model.safetensors"))
gen = torch.Generator().manual_seed(0)
for key in state:
    if key.startswith("encoder.layer.5."):
        state[key] = state[key] + 0.05 * torch.randn(state[key].shape, generator=gen)
save_file(state, str(target / "model.safetensors"), {"format": "pt"})
meta = {"encoding": {"prefix": "query: ", "pooling": "mean"}, "source": "bench_memory"}
(target / "align_meta.json").write_text(json.dumps(meta))
"""


def default_model(env: dict[str, str]) -> Path:
    """The default model's folder under ``env``'s ``ALIGN_CACHE_DIR``, built in a subprocess
    (this process imports neither torch nor align)."""
    build = "from align.models.default_model import build_default_model as b; print(b())"
    built = subprocess.run([sys.executable, "-c", build], env=env, check=True,
                           capture_output=True, text=True)  # fmt: skip
    return Path(built.stdout.strip().splitlines()[-1])


def perturbed_copy(model_dir: Path, target: Path) -> Path:
    """The default model with noise on block 6: a checkpoint that differs from its base (made
    in a subprocess: see :func:`main`)."""
    if not (target / "model.safetensors").is_file():
        subprocess.run([sys.executable, "-c", _PERTURB, str(model_dir), str(target)], check=True)
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
            out.append(_measure(what, count, label, cmd, env | {"ALIGN_CACHE_DIR": str(cache)}))
    for n in args.compare_n:
        data, count = bible_set(python, env, work / f"tat-{n}", n, bucc=False)
        cache = fresh_cache(work, models)
        cmd = [*python, "compare", "--ckpt", str(ckpt), "--data-dir", str(data)]
        cmd += ["--out", str(work / f"cmp-{label}"), "--n-boot", str(args.n_boot), *_width(args)]
        for what in ("compare, encoding", "compare, from cache"):
            out.append(_measure(what, count, label, cmd, env | {"ALIGN_CACHE_DIR": str(cache)}))
    return out


def _measure(what: str, count: int, label: str, cmd: list[str], env: dict[str, str]) -> Measure:
    peak, anon, mapped, secs = run_peak(cmd, env)
    print(
        f"  {label:>8} {what:<28} {count:>6} sentences: {peak:8.0f} MB peak, {anon:6.0f} MB "
        f"anonymous, {mapped:6.0f} MB file-backed, {secs:6.0f} s",
        flush=True,
    )
    return Measure(what, count, peak, anon, mapped, secs)


def _width(args) -> list[str]:
    """Every set's longest batch is cut to the same width, so the forward pass's own peak (it
    grows with the longest sentence, which a larger sample tends to hold) is one constant."""
    return ["--max-length", str(args.max_length)]


def _slopes(rows: list[Measure], what: str, field: str) -> tuple[float, float, float]:
    """(KB per extra sentence: the least-squares slope over every size, the slope between the
    two largest sizes, the value in MB at the largest size) of ``field``."""
    import numpy as np

    chosen = sorted((m for m in rows if m.what == what), key=lambda m: m.sentences)
    x = np.array([m.sentences for m in chosen], float)
    y = np.array([getattr(m, field) for m in chosen], float) * 1024
    slope = float(np.polyfit(x, y, 1)[0])
    last = float((y[-1] - y[-2]) / (x[-1] - x[-2]))
    return slope, last, getattr(chosen[-1], field)


def report(results: dict[str, list[Measure]]) -> None:
    """Growth per sentence of the peak RSS and of the anonymous peak; fixed working budgets
    (``WORK_BYTES``) fill up at small sizes, so the slope between the largest sizes is the
    growth that continues."""
    layer_kb = DIM * 4 / 1024
    print(f"\none layer of one sentence in float32 (d = {DIM}): {layer_kb:.2f} KB")
    print(f"before the streaming redesign (measured then): {BEFORE_KB} KB per sentence (retrieve)")
    rows, before = results["align"], results.get("before")
    head = f"{'KB per sentence':<26}{'fit':>7}{'largest':>9}{'x layer':>8}{'at max MB':>10}"
    titles = (
        ("peak_mb", "peak RSS"),
        ("anon_mb", "anonymous RSS (sampled peak)"),
        ("file_mb", "file-backed RSS (sampled peak: libraries and the weights file's pages)"),
    )
    for field, title in titles:
        print(f"\n{title}\n" + head + (f"{'before fit':>11}{'ratio':>7}" if before else ""))
        for what in dict.fromkeys(m.what for m in rows):
            kb, last, at_max = _slopes(rows, what, field)
            line = f"{what:<26}{kb:7.2f}{last:9.2f}{kb / layer_kb:8.2f}{at_max:10.0f}"
            if before:
                old, _, _ = _slopes(before, what, field)
                line += f"{old:11.2f}{kb / old:7.2f}"
            print(line)
    _extrapolate(rows)


def _extrapolate(rows: list[Measure]) -> None:
    """Retrieve's memory for XLM-R Large on full BUCC de-en: this run's anonymous peak at its
    largest size, plus per sentence the largest of the measured anonymous growths and one layer
    in float32 (the design's bound: one layer of the sets being scored), scaled to d = 1024."""
    largest = max(m.sentences for m in rows if m.what.startswith("retrieve"))
    fixed_mb = max(m.anon_mb for m in rows if m.what.startswith("retrieve"))
    growths = {
        w: _slopes(rows, w, "anon_mb")[0]
        for w in ("retrieve bucc, encoding", "retrieve bucc, from cache")
    }
    kb = max(*growths.values(), DIM * 4 / 1024)
    new_gb = (fixed_mb * 1024 + kb * LARGE_DIM / DIM * BUCC_DE_EN) / 1024**2
    old_gb = BEFORE_KB * (LARGE_LAYERS * LARGE_DIM) / (LAYERS * DIM) * BUCC_DE_EN / 1024**2
    measured = ", ".join(f"{w.split(', ')[1]} {g:.2f}" for w, g in growths.items())
    print(
        f"\nXLM-R Large on full BUCC de-en ({BUCC_DE_EN:,} sentences, {LARGE_LAYERS} layers, "
        f"d = {LARGE_DIM}): per sentence the larger of the measured anonymous growth ({measured} "
        f"KB) and one layer in float32 ({DIM * 4 / 1024:.2f} KB), scaled by d: "
        f"{kb * LARGE_DIM / DIM:.1f} KB; with this run's anonymous peak at {largest} sentences "
        f"({fixed_mb / 1024:.1f} GB) about {new_gb:.1f} GB, plus XLM-R Large's weights (about "
        f"2.2 GB, read in at load), against about {old_gb:.0f} GB before (every layer in RAM as "
        "float32 and float16)."
    )


def _parse_output(path: Path) -> dict[str, list[Measure]]:
    """The measurements a previous run printed (its report can be made again from them)."""
    import re

    line = re.compile(
        r"^\s*(\S+) (.+?)\s+(\d+) sentences:\s+(\d+) MB peak,\s+(\d+) MB anonymous,"
        r"\s+(\d+) MB file-backed,\s+(\d+) s$"
    )
    results: dict[str, list[Measure]] = {}
    for text in path.read_text(encoding="utf-8").splitlines():
        if m := line.match(text):
            label, what, count, *numbers = m.groups()
            values = [float(v) for v in numbers]
            results.setdefault(label, []).append(Measure(what, int(count), *values))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bucc-n", type=int, nargs="+", default=[250, 500, 1000])
    parser.add_argument("--compare-n", type=int, nargs="+", default=[400, 1000, 2000])
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument(
        "--max-length", type=int, default=48, help="tokens per sentence (equal batch widths)"
    )
    parser.add_argument("--baseline-src", type=Path, help="checkout of an older align to measure")
    parser.add_argument("--work", type=Path, help="working directory (default: a temp dir)")
    parser.add_argument("--from-output", type=Path, help="report again what a run printed")
    args = parser.parse_args()
    if args.from_output is not None:
        report(_parse_output(args.from_output))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    # This process stays small and imports neither torch nor align: a child's peak RSS counts
    # the parent's pages while it is being started (fork), so a large parent would set a floor
    # under every measurement. The model is built in a subprocess.
    env = {**os.environ, "ALIGN_CACHE_DIR": str(work / "shared")}
    models = default_model(env).parent
    results = {"align": measure("align", None, args, work, models)}
    if args.baseline_src is not None:
        results["before"] = measure("before", args.baseline_src, args, work, models)
    report(results)


if __name__ == "__main__":
    main()
