"""The paper's shape, offline: nine checkpoints compared over 21 languages, then the report.

Phang et al. (2020) compare nine intermediate-task checkpoints of one base on 36 languages.
This builds that shape from what is here: the default model (multilingual-e5-small) as the
base, nine damaged copies of it as checkpoints (Gaussian noise on one block each, blocks 1-9,
growing scale: each loses retrieval in its own layers), and the Bible's 21 languages besides
English (copyrighted editions included: read from the installed package, local use only).
It times ``align compare`` (encoding and scoring, from its own timings) and ``align report``,
and, where Chromium is installed, screenshots the report's first screen and one checkpoint's
section so that the page can be looked at.

    python benchmarks/bench_paper_shape.py [--n 300] [--work DIR] [--cka-matrix]

Everything lands in ``--work`` (default: a temporary folder): data, models, results, the
report and ``report-top.png``; a second run with the same ``--work`` reuses the embeddings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_memory import default_model

LANGS = "de,fr,es,it,ru,ar,fa,vi,tl,pt,hi,ja,tr,bn,sw,ro,pl,zh,ko,id,uk"
CHECKPOINTS = 9

_DAMAGE = """
import json, shutil, sys, torch
from pathlib import Path
from safetensors.torch import load_file, save_file
source, target = Path(sys.argv[1]), Path(sys.argv[2])
block, scale = int(sys.argv[3]), float(sys.argv[4])
shutil.copytree(source, target)
state = load_file(str(target / "model.safetensors"))
gen = torch.Generator().manual_seed(block)
for key in state:
    if key.startswith(f"encoder.layer.{block - 1}."):
        state[key] = state[key] + scale * torch.randn(state[key].shape, generator=gen)
save_file(state, str(target / "model.safetensors"), {"format": "pt"})
meta = {"encoding": {"prefix": "query: ", "pooling": "mean"}, "source": "bench_paper_shape"}
(target / "align_meta.json").write_text(json.dumps(meta))
"""


def _run(cmd: list[str], env: dict[str, str], what: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def _screenshot(page: Path, out: Path, height: int) -> bool:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return False
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", "--disable-sync",
             f"--user-data-dir={tempfile.mkdtemp()}", f"--screenshot={out}",
             f"--window-size=1200,{height}"]  # fmt: skip
    subprocess.run([chromium, *flags, page.as_uri()], capture_output=True, timeout=300)
    return out.is_file()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="verses per language")
    parser.add_argument("--langs", default=LANGS)
    parser.add_argument("--work", type=Path, help="working directory (default: a temp dir)")
    parser.add_argument("--cka-matrix", action="store_true", help="also the 13 x 13 CKA matrices")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-paper-shape-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ALIGN_CACHE_DIR": str(work / "cache"), "TOKENIZERS_PARALLELISM": "false"}
    align = [sys.executable, "-m", "align.cli", "-q"]
    base = default_model(env)
    data = work / "tat"
    if not data.is_dir():
        _run([*align, "data", "bible", "--langs", args.langs, "--n", str(args.n),
              "--allow-copyrighted", "--out", str(data)], env, "align data bible")  # fmt: skip
    ckpts = []
    for i in range(1, CHECKPOINTS + 1):
        target = work / "models" / f"t{i}"
        if not (target / "model.safetensors").is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(target, ignore_errors=True)
            subprocess.run([sys.executable, "-c", _DAMAGE, str(base), str(target), str(i),
                            str(0.01 * i)], check=True)  # fmt: skip
        ckpts += ["--ckpt", str(target)]
    out = work / "results"
    cmd = [*align, "compare", "--data-dir", str(data), "--out", str(out), "--no-plot", *ckpts]
    cmd += [] if args.cka_matrix else ["--no-cka-matrix"]
    compare_s = _run(cmd, env, "align compare")
    (result,) = out.glob("compare-*.json")
    timings = json.loads(result.read_text(encoding="utf-8"))["timings"]
    page = work / "report.html"
    report_s = _run([*align, "report", str(result), "--out", str(page)], env, "align report")
    shot = _screenshot(page, work / "report-top.png", 2400)
    langs = len(args.langs.split(","))
    print(f"paper shape: {CHECKPOINTS} checkpoints x {langs} languages x {args.n} verses, "
          f"13 layers, {'with' if args.cka_matrix else 'without'} the CKA matrices")  # fmt: skip
    print(f"  align compare  {compare_s:8.1f} s  (encode {timings.get('encode_s', 0):.1f} s, "
          f"score {timings.get('score_s', 0):.1f} s)")  # fmt: skip
    print(f"  align report   {report_s:8.1f} s  ({page.stat().st_size / 1e6:.1f} MB)")
    print(f"  stages: {json.dumps(timings)}")
    print(f"  report: {page}" + (f"; screenshot {work / 'report-top.png'}" if shot else ""))


if __name__ == "__main__":
    main()
