"""Named conventions (issue 22): --preset xtreme|jiant sets what that code base sets, records it,
and every table says which convention a number follows."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from conftest import make_tiny_model

from align.cli import main
from align.data.bible import build_bucc_demo, build_tatoeba_demo


@pytest.fixture(scope="module")
def deep(tmp_path_factory) -> Path:
    """A tiny model with XLM-R Large's depth: 24 blocks."""
    return make_tiny_model(tmp_path_factory.mktemp("deep") / "deep-xlmr", layers=24)


def _run(argv, out: Path, capsys) -> dict:
    assert main([*argv, "--out", str(out), "--no-cache", "--no-plot"]) == 0
    (path,) = out.glob("retrieve-*.json")
    return json.loads(path.read_text()) | {"_printed": capsys.readouterr().out}


def test_preset_xtreme_scores_tatoeba_as_xtreme_does(deep, tmp_path, capsys) -> None:
    data = build_tatoeba_demo(tmp_path / "tat", ["de"], n=30, seed=0)
    argv = ["retrieve", "--ckpt", str(deep), "--data-dir", str(data), "--preset", "xtreme"]
    result = _run([*argv, "--margin-k", "2"], tmp_path / "o", capsys)
    assert result["layers"] == [14]  # L - 10 for 24 blocks: XTREME's --specific_layer 13
    convention = result["convention"]
    assert convention["preset"] == "xtreme" and convention["metric"] == "acc_en2xx"
    assert convention["pooling"] == "mean" and convention["exclude_special"] is False
    assert result["config"]["preset"] == "xtreme" and result["config"]["pooling"] == "mean"
    assert "scripts/run_tatoeba.sh" in convention["source"]
    assert (
        "XTREME convention: en->xx, hidden_states[14], mean pooling with <s> and </s>"
        in (result["_printed"])
    )
    assert "tatoeba acc_en2xx" in result["_printed"]


def test_preset_jiant_chooses_bucc_thresholds_on_the_scored_split(deep, tmp_path, capsys) -> None:
    data = build_bucc_demo(tmp_path / "bucc", ["de"], n=20, seed=0)
    argv = ["retrieve", "--task", "bucc", "--ckpt", str(deep), "--data-dir", str(data)]
    result = _run([*argv, "--preset", "jiant", "--margin-k", "2"], tmp_path / "o", capsys)
    assert result["layers"] == [14] and result["convention"]["metric"] == "f1_oracle"
    printed = result["_printed"]
    assert "jiant convention: hidden_states[14], mean pooling with <s> and </s>" in printed
    assert "threshold chosen on the split it scores (oracle)" in printed
    assert "bucc f1_oracle" in result["_printed"]


def test_without_a_preset_nothing_changes(deep, tmp_path, capsys) -> None:
    data = build_tatoeba_demo(tmp_path / "tat", ["de"], n=30, seed=0)
    argv = ["retrieve", "--ckpt", str(deep), "--data-dir", str(data), "--layers", "14"]
    result = _run([*argv, "--margin-k", "2"], tmp_path / "o", capsys)
    assert result["convention"] is None and "convention" not in result["_printed"]
    assert "tatoeba acc_xx2en" in result["_printed"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--preset", "xtreme"], "names a layer for models of 24 blocks: hidden_states[14], 12"),
        (["--preset", "xtreme", "--layers", "2"], None),
    ],
)
def test_a_preset_refuses_what_it_cannot_mean(
    extra, message, tiny_model_dir, deep, tmp_path, caplog
) -> None:
    data = build_tatoeba_demo(tmp_path / "tat", ["de"], n=30, seed=0)
    model = tiny_model_dir if message else deep  # 3 blocks: XTREME names no layer for it
    argv = ["retrieve", "--ckpt", str(model), "--data-dir", str(data), *extra]
    with caplog.at_level(logging.ERROR):
        assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    expected = message or "--layers 2: --preset xtreme sets it to 14 (the XTREME convention)"
    assert expected in caplog.text and not (tmp_path / "o").exists()
