"""The runs whose records ``tests/golden/*.json`` hold (written by commit 736971f, before the
streaming redesign): every scoring command on the tiny model and a small Bible set."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from conftest import perturb_block

# The tiny model the golden records were measured on, kept as files: the tokenizers trainer
# is not bit-reproducible (its Unigram scores vary in the last digits from run to run).
MODEL = Path(__file__).parent / "golden" / "tiny-model"


def run_all(root: Path) -> dict[str, dict[str, Any]]:
    from align.commands import cka, compare, probe, retrieve
    from align.data.bible import build_bucc_demo, build_tatoeba_demo

    models, data, out = root / "models", root / "data", root / "out"
    shutil.copytree(MODEL, models / "tiny")
    perturb_block(models / "tiny", models / "tuned", block=2, scale=0.5)
    build_tatoeba_demo(data / "tat", ["de", "fr"], n=60)
    build_bucc_demo(data / "bucc", ["de", "fr"], n=30)
    common = {"ckpt": str(models / "tiny"), "plot": False, "use_cache": False, "progress": False}
    pair = {"base": str(models / "tiny"), "ckpt": [str(models / "tuned")], "n_boot": 200}
    pair |= {"n_boot_spearman": 50, "knn_k": 5, "plot": False, "use_cache": False}
    pair |= {"progress": False}
    runs = {
        "retrieve": lambda: retrieve.run(
            retrieve.RetrieveConfig(data_dir=data / "tat", out=out / "r", **common)
        ),
        "retrieve_bucc": lambda: retrieve.run(
            retrieve.RetrieveConfig(data_dir=data / "bucc", task="bucc", out=out / "rb", **common)
        ),
        "cka": lambda: cka.run(cka.CkaConfig(data_dir=data / "tat", out=out / "c", **common)),
        "cka_matrix": lambda: cka.run(
            cka.CkaConfig(
                data_dir=data / "tat", ckpt_b=str(models / "tuned"), out=out / "cm", **common
            )
        ),
        "probe": lambda: probe.run(
            probe.ProbeConfig(data_dir=data / "tat", knn_k=5, out=out / "p", **common)
        ),
        "compare": lambda: compare.run(
            compare.CompareConfig(data_dir=data / "tat", transplant=True, out=out / "k", **pair)
        ),
        "compare_bucc": lambda: compare.run(
            compare.CompareConfig(data_dir=data / "bucc", task="bucc", out=out / "kb", **pair)
        ),
    }
    return {name: call().result for name, call in runs.items()}
