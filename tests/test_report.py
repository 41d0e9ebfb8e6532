"""Figures, the HTML report and the demo, on the tiny model (nothing real-sized)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import perturb_block

import align.models.loading
from align.cli import main
from align.commands.compare import CompareConfig
from align.commands.compare import run as run_compare
from align.data.bible import build_multiway_demo, build_tatoeba_demo
from align.report.figures import FIGURES, MULTI_FIGURES
from align.report.scripts import figure_script

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("report")
    data = build_tatoeba_demo(root / "tat", ["de", "fr"], n=60, seed=0)
    noisy = perturb_block(tiny_model_dir, root / "noisy-xlmr", 2, scale=1.0)
    cfg = CompareConfig(
        base=str(tiny_model_dir),
        ckpt=[str(noisy)],
        data_dir=data,
        out=root / "out",
        transplant=True,
        n_boot=200,
        n_boot_spearman=50,
        knn_k=5,
        use_cache=False,
        progress=False,
    )
    path = run_compare(cfg).path
    assert (
        main(
            [
                "retrieve",
                "--ckpt",
                str(tiny_model_dir),
                "--data-dir",
                str(data),
                "--out",
                str(root / "out"),
                "--no-cache",
            ]
        )
        == 0
    )
    other = build_tatoeba_demo(root / "other", ["de"], n=60, seed=0)
    assert (
        main(
            [
                "retrieve",
                "--ckpt",
                str(tiny_model_dir),
                "--data-dir",
                str(other),
                "--out",
                str(root / "other-out"),
                "--no-cache",
            ]
        )
        == 0
    )
    multi = build_multiway_demo(root / "multi", ["de", "fr"], n=60, seed=0)
    pairs = run_compare(
        replace(cfg, task="parallel", data_dir=multi, out=root / "pairs", transplant=False)
    ).path
    return {
        "compare": path,
        "compare_pairs": pairs,
        "retrieve": root / "out" / "retrieve-tatoeba-tiny-xlmr.json",
        "other_langs": root / "other-out" / "retrieve-tatoeba-tiny-xlmr.json",
        "root": root,
    }


@pytest.fixture
def no_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a figure or report loaded a model")

    monkeypatch.setattr(align.models.loading, "load_model_and_tokenizer", refuse)


PAIR_FIGURES = ("pair_heatmap", "english_centricity")  # drawn from a multi-way comparison


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_each_figure_from_the_results_file_alone(name, compared, tmp_path, no_encoding) -> None:
    out = tmp_path / f"{name}.pdf"
    source = compared["compare_pairs" if name in PAIR_FIGURES else "compare"]
    assert figure_script(name, [str(source), "--out", str(out)]) == 0
    assert out.stat().st_size > 2000 and out.with_suffix(".png").stat().st_size > 5000


def test_figure_scripts_run_as_scripts(compared, tmp_path) -> None:
    scripts = sorted((ROOT / "scripts").glob("fig_*.py"))
    assert len(scripts) == len(FIGURES) + len(MULTI_FIGURES)
    out = tmp_path / "gain.pdf"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "fig_gain_heatmap.py"),
            str(compared["compare"]),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()
    bad = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "fig_transplant.py"),
            str(compared["retrieve"]),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "align compare" in bad.stderr and "Traceback" not in bad.stderr


def test_report_is_self_contained(compared, tmp_path, no_encoding) -> None:
    out = tmp_path / "report.html"
    assert (
        main(["report", str(compared["compare"]), str(compared["retrieve"]), "--out", str(out)])
        == 0
    )
    html = out.read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") >= 6  # five compare figures + the layer curve
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*https?://""", html, re.I)
    assert not re.search(r"""url\(\s*["']?https?://""", html, re.I)
    fingerprint = json.loads(compared["compare"].read_text())["model"]["fingerprint"]
    assert fingerprint in html and "significant gains" in html


def test_report_refuses_unlike_results(compared, tmp_path, caplog) -> None:
    with caplog.at_level(logging.ERROR):
        code = main(
            [
                "report",
                str(compared["compare"]),
                str(compared["other_langs"]),
                "--out",
                str(tmp_path / "r.html"),
            ]
        )
    assert code == 2
    assert str(compared["compare"]) in caplog.text and str(compared["other_langs"]) in caplog.text
    assert "different languages" in caplog.text
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("damage", ["truncated", "old"])
def test_report_refuses_damaged_or_old_results(damage, compared, tmp_path, caplog) -> None:
    bad = tmp_path / "bad.json"
    text = compared["retrieve"].read_text()
    if damage == "truncated":
        bad.write_text(text[: len(text) // 2])
    else:
        bad.write_text(json.dumps(json.loads(text) | {"schema_version": 1}))
    with caplog.at_level(logging.ERROR):
        assert main(["report", str(bad), "--out", str(tmp_path / "r.html")]) == 2
    assert str(bad) in caplog.text
    assert (
        "not a valid results JSON" if damage == "truncated" else "schema version 1"
    ) in caplog.text


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="Chromium is not installed (Debian: chromium)")
def test_report_renders_in_headless_chromium(compared, tmp_path) -> None:
    out = tmp_path / "report.html"
    assert main(["report", str(compared["compare"]), "--out", str(out)]) == 0
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    flags += [
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    proc = subprocess.run(
        [_chromium(), *flags, f"--screenshot={shot}", "--window-size=1200,2000", out.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.is_file() and shot.stat().st_size > 20000, proc.stderr[-2000:]


def test_demo_resumes_after_a_kill_during_training(tiny_model_dir, tmp_path) -> None:
    out = tmp_path / "demo"
    args = [sys.executable, "-m", "align.cli", "demo", "--quick", "--model", str(tiny_model_dir)]
    args += ["--out", str(out), "--n", "60", "--steps", "8", "--save-steps", "4"]
    env = {**os.environ, "ALIGN_TEST_KILL_AFTER_STEP": "6"}
    killed = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert (out / "checkpoint" / "checkpoints" / "latest").read_text().strip() == "step-0000004"
    assert not (out / "report.html").exists()
    again = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "base model: retrieval by layer: done before, reused" in again.stderr
    assert "resumed from" in again.stderr and "step 4 of 8" in again.stderr
    assert (out / "report.html").is_file() and "headline findings" in again.stdout
    for noise in ("Loading weights", "Writing model shards", "it/s]", "GradScaler"):
        assert noise not in killed.stderr + again.stderr, noise  # no third-party tables or bars
    # a checkpoint replaced under the finished stages: everything that read it runs again
    perturb_block(out / "checkpoint", tmp_path / "replaced", 2, scale=0.5)
    shutil.copy(
        tmp_path / "replaced" / "model.safetensors", out / "checkpoint" / "model.safetensors"
    )
    third = subprocess.run(args, capture_output=True, text=True, timeout=900)
    assert third.returncode == 0, third.stderr[-3000:]
    assert "base model: retrieval by layer: done before, reused" in third.stderr
    stages = ("tuned model: retrieval by layer", "compare base vs tuned", "BUCC mining",
              "every language pair", "report")  # fmt: skip
    for stage in stages:
        assert f"{stage}" in third.stderr and "its inputs changed" in third.stderr
    assert third.stderr.count("its inputs changed") == 5
    page = (out / "report.html").read_text()
    assert "Cross-task changes" in page and "bucc: Δ f1" in page
    assert "every language pair" in page  # the multi-way comparison, English among the languages


def test_p_values_that_underflowed_are_not_printed_as_zero() -> None:
    from align.results import Result

    assert Result.p_text(0.0) == "<1e-300"  # an exact test's p below the smallest double
    assert Result.p_text(3.2e-214) == "3.2e-214"
    assert Result.p_text(0.0421, 1) == "0.04"
