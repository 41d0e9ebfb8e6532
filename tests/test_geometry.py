"""The decomposition in compare (issue 27): each transform's change beside the raw change, the
share that survives it with an interval, the pooled decomposition, its sentence and figure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import perturb_block

from align.cli import main
from align.compare import decomposition as dec
from align.data.bible import build_tatoeba_demo


@pytest.fixture(scope="module")
def compared(tmp_path_factory, tiny_model_dir) -> Path:
    root = tmp_path_factory.mktemp("geometry")
    data = build_tatoeba_demo(root / "tat", ["de", "fr"], n=40, seed=0)
    noisy = perturb_block(tiny_model_dir, root / "noisy", 2, scale=1.0)
    argv = ["compare", "--base", str(tiny_model_dir), "--ckpt", str(noisy), "--data-dir",
            str(data), "--out", str(root / "o"), "--no-cache", "--no-plot", "--n-boot", "100",
            "--n-boot-spearman", "30", "--knn-k", "3", "--map-folds", "4"]  # fmt: skip
    assert main(argv) == 0
    (path,) = (root / "o").glob("compare-*.json")
    return path


def test_compare_holds_each_transforms_change_and_the_share_that_survives(compared) -> None:
    result = json.loads(compared.read_text())
    scores = result["scores"]
    assert result["config"]["map_folds"] == 4 and result["config"]["whiten_shrinkage"] == 0.05
    for kind in ("whitened", "procrustes", "linear"):
        for direction in ("xx2en", "en2xx"):
            deltas = [r for r in scores if r["metric"] == f"delta_acc_{kind}_{direction}"]
            assert len(deltas) == 2 * 4, (kind, direction)  # 2 languages x 4 layers
            assert all(r["ci_method"] in ("exact-conditional", "none") for r in deltas)
            assert all(r["p_value"] is None for r in deltas)  # described, not tested
        shares = [r for r in scores if r["metric"] == f"{kind}_share_xx2en"]
        assert shares and all(r["ci_method"] in (None, "median-shifted-bootstrap")
                              for r in shares)  # fmt: skip
        for r in shares:
            if r["ci_low"] is not None:
                assert r["ci_low"] <= r["value"] <= r["ci_high"]
    assert any(r["metric"] == "centred_share_xx2en" and r["ci_low"] is not None for r in scores)
    parts = result["decomposition"]["noisy"]
    assert set(parts) == set(dec.PARTS) and len(parts["raw"]) == 4
    raw = {e["layer"]: e for e in parts["raw"]}
    per_lang = [r for r in scores if r["metric"] == "delta_acc_xx2en" and r["layer"] == 2]
    assert raw[2]["delta"] == pytest.approx(sum(r["value"] for r in per_lang) / 2)
    assert raw[2]["n"] == 80 and raw[2]["ci_low"] <= raw[2]["delta"] <= raw[2]["ci_high"]


def test_the_summary_and_the_report_say_which_kind_of_change_it_is(compared, tmp_path) -> None:
    result = json.loads(compared.read_text())
    summary = result["summary"]["noisy"]
    assert summary["geometry"] == dec.sentence(result["decomposition"]["noisy"])
    assert any(line.startswith("  geometry: layer ") for line in summary["text"])
    out = tmp_path / "report.html"
    assert main(["report", str(compared), "--out", str(out)]) == 0
    assert "What kind of change carries it" in out.read_text()
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "scripts" / "fig_decomposition.py"
    proc = subprocess.run([sys.executable, str(script), str(compared), "--out",
                           str(tmp_path / "d.png")], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "d.png").stat().st_size > 5000


def _entries(raw, **after):
    parts = {"raw": [{"layer": 3, "delta": raw, "base": 0.9, "tuned": 0.9 + raw,
                      "ci_low": raw - 0.01, "ci_high": raw + 0.01, "n": 100}]}  # fmt: skip
    for part, value in after.items():
        parts[part] = [dict(parts["raw"][0], delta=value)]
    return parts


@pytest.mark.parametrize(
    ("after", "reading"),
    [
        ({"centred": -0.05, "whitened": -0.05, "procrustes": -0.04, "linear": -0.04}, "offset"),
        ({"centred": -0.4, "whitened": -0.05, "procrustes": -0.4, "linear": -0.05}, "stretch"),
        ({"centred": -0.4, "whitened": -0.4, "procrustes": -0.02, "linear": -0.02}, "rotation"),
        (
            {"centred": -0.4, "whitened": -0.38, "procrustes": -0.35, "linear": -0.33},
            "internal structure changed",
        ),
    ],
)
def test_the_sentence_reads_the_shares(after, reading) -> None:
    said = dec.sentence(_entries(-0.4, **after))
    assert said.startswith("layer 3: of the loss (-0.400, pooled), ") and reading in said
    assert f"{after['procrustes'] / -0.4:.2f} survives a cross-fitted orthogonal map" in said


def test_a_broken_decomposition_entry_is_one_line(compared, tmp_path) -> None:
    from align.errors import AlignError
    from align.report.geometry import decomposition

    result = json.loads(compared.read_text())
    result["decomposition"]["noisy"]["raw"][1] = "broken"
    with pytest.raises(AlignError, match=r"decomposition\.noisy\.raw\[1\]: expected numbers"):
        decomposition(result, tmp_path / "d.png")


def test_no_transforms_leaves_out_the_transforms_and_keeps_every_other_record(
    compared, tiny_model_dir, tmp_path
) -> None:
    """``--no-transforms`` (the benchmark's ablation) drops the transforms' records, the ridge
    penalties and the decomposition, and changes no other record."""
    result = json.loads(compared.read_text())
    data, noisy = compared.parent.parent / "tat", compared.parent.parent / "noisy"
    argv = ["compare", "--base", str(tiny_model_dir), "--ckpt", str(noisy), "--data-dir",
            str(data), "--out", str(tmp_path), "--no-cache", "--no-plot", "--n-boot", "100",
            "--n-boot-spearman", "30", "--knn-k", "3", "--map-folds", "4",
            "--no-transforms"]  # fmt: skip
    assert main(argv) == 0
    (path,) = tmp_path.glob("compare-*.json")
    without = json.loads(path.read_text())
    assert not without.get("decomposition")
    geometry = ("whitened", "procrustes", "acc_linear", "linear_ridge", "linear_share")
    dropped = [r for r in result["scores"] if any(g in r["metric"] for g in geometry)]
    assert dropped and not [r for r in without["scores"] if r in dropped]
    key = ("model", "metric", "lang", "layer", "layer_b", "block")
    kept = {tuple(r.get(k) for k in key): r for r in without["scores"]}
    for r in result["scores"]:
        if r in dropped:
            continue
        assert kept[tuple(r.get(k) for k in key)] == r  # Spearman records and intervals too
