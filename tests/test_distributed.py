"""Two processes under torchrun (gloo, CPU): each encodes its share into the cache a single
process writes; rank 0 scores; the results equal a single process's, record for record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import perturb_block

from align.data.bible import build_tatoeba_demo


def _run(args: list[str], cache: Path, ranks: int) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks)]
    launcher += ["--master_port", str(29500 + os.getpid() % 1000)]
    cmd = [*launcher, "-m", "align.cli"] if ranks > 1 else [sys.executable, "-m", "align.cli"]
    env = {**os.environ, "ALIGN_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _records(path: Path) -> dict:
    result = json.loads(path.read_text(encoding="utf-8"))
    key = ("model", "metric", "lang", "layer", "layer_b", "block")
    return {tuple(r.get(k) for k in key): r for r in result["scores"]}, result


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_model_dir) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dist")
    return {
        "tuned": perturb_block(tiny_model_dir, root / "tuned", 2),
        "data": build_tatoeba_demo(root / "tat", ["de", "fr"], n=50, seed=0),
        "root": root,
    }


@pytest.mark.parametrize("command", ["retrieve", "compare"])
def test_two_ranks_give_the_results_of_one(command, setup, tiny_model_dir, tmp_path) -> None:
    args = [command, "--data-dir", str(setup["data"]), "--no-plot"]
    if command == "retrieve":
        args += ["--ckpt", str(tiny_model_dir)]
    else:
        args += ["--base", str(tiny_model_dir), "--ckpt", str(setup["tuned"]), "--transplant"]
        args += ["--n-boot", "200", "--n-boot-spearman", "50", "--knn-k", "5"]
    _run([*args, "--out", str(tmp_path / "one")], tmp_path / "cache-one", 1)
    two = _run([*args, "--out", str(tmp_path / "two")], tmp_path / "cache-two", 2)
    (one_path,) = (tmp_path / "one").glob("*.json")
    (two_path,) = (tmp_path / "two").glob("*.json")
    single, _ = _records(one_path)
    shared, result = _records(two_path)
    assert single.keys() == shared.keys()
    for key, record in single.items():
        assert record == shared[key], key  # identical numbers, record for record
    split = result["config"]["distributed"]
    assert split["world_size"] == 2 and all(n > 0 for n in split["encoded_per_rank"])
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        p.name for p in (tmp_path / "one").iterdir()
    )  # rank 1 wrote nothing of its own
    assert "rank 1: encoded" in two.stdout
    # the cache both ranks filled is the one a single process reads: a later run encodes nothing
    again = _run([*args, "--out", str(tmp_path / "again")], tmp_path / "cache-two", 1)
    (again_path,) = (tmp_path / "again").glob("*.json")
    _, later = _records(again_path)
    assert later["config"]["distributed"] == {"world_size": 1, "encoded_per_rank": [0]}
    assert "embedding cache hit" in again.stderr


def test_jobs_per_checkpoint_fill_the_cache_compare_reads(setup, tiny_model_dir, tmp_path) -> None:
    """The cluster pattern: one `align retrieve` job per model fills a shared cache; one
    `align compare` afterwards encodes nothing."""
    cache, data = tmp_path / "shared-cache", str(setup["data"])
    for model in (tiny_model_dir, setup["tuned"]):
        _run(["retrieve", "--ckpt", str(model), "--data-dir", data, "--no-plot", "--out",
              str(tmp_path / "r")], cache, 1)  # fmt: skip
    args = ["compare", "--base", str(tiny_model_dir), "--ckpt", str(setup["tuned"])]
    _run([*args, "--data-dir", data, "--no-plot", "--out", str(tmp_path / "c")], cache, 1)
    (path,) = (tmp_path / "c").glob("*.json")
    _, result = _records(path)
    assert result["config"]["distributed"] == {"world_size": 1, "encoded_per_rank": [0]}
