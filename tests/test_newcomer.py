"""A newcomer's path (issue 26, item 8): every long stage says what it does, the report leaves
out what was not measured and says why, --help puts what to measure first."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from conftest import perturb_block

from align.cli import main
from align.data.bible import build_tatoeba_demo


@pytest.fixture(scope="module")
def plain_compare(tmp_path_factory, tiny_model_dir) -> Path:
    """A comparison run without probes, CKA matrix or transplant."""
    root = tmp_path_factory.mktemp("plain")
    data = build_tatoeba_demo(root / "tat", ["de", "fr"], n=40, seed=0)
    noisy = perturb_block(tiny_model_dir, root / "noisy", 2, scale=1.0)
    argv = ["compare", "--base", str(tiny_model_dir), "--ckpt", str(noisy), "--data-dir",
            str(data), "--out", str(root / "out"), "--no-probes", "--no-cka-matrix",
            "--no-cache", "--no-plot", "--n-boot", "100"]  # fmt: skip
    assert main(argv) == 0
    (path,) = (root / "out").glob("compare-*.json")
    return path


def _stage_lines(messages: list[str]) -> tuple[list[str], list[str]]:
    starts = [m[: -len(" ...")] for m in messages if m.endswith(" ...")]
    ends = [m.split(": done in ")[0] for m in messages if re.search(r": done in [\d.]+ s$", m)]
    return starts, ends


def test_every_long_stage_logs_a_start_and_an_end_line(tiny_model_dir, tmp_path, caplog):
    """Without a terminal (as under pytest), a cache miss says what it encodes and with which
    model, and every stage has its start line and its end line with the time."""
    data = build_tatoeba_demo(tmp_path / "tat", ["de", "fr"], n=40, seed=0)
    noisy = perturb_block(tiny_model_dir, tmp_path / "noisy", 2, scale=1.0)
    with caplog.at_level(logging.INFO):
        argv = ["compare", "--base", str(tiny_model_dir), "--ckpt", str(noisy), "--data-dir",
                str(data), "--n-boot", "100", "--no-plot"]  # fmt: skip
        extra = ["--transplant", "--n-boot-spearman", "20", "--knn-k", "3"]
        assert main([*argv, *extra, "--out", str(tmp_path / "o")]) == 0
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    starts, ends = _stage_lines(messages)
    assert sorted(starts) == sorted(ends), set(starts) ^ set(ends)
    wanted = [
        "encoding deu.src: 40 sentences with tiny-xlmr",
        "encoding deu.src: 40 sentences with noisy",
        "compare: scoring 4 layers x 2 languages (80 sentences), tiny-xlmr vs noisy",
        "compare: intervals and tests of every change",
        "compare: 4 x 4 layer CKA matrix",
        "transplant sweep:",
        "transplant scoring: 2 languages x 4 layers",
        "loading tiny-xlmr",
    ]
    for text in wanted:
        assert any(s.startswith(text) for s in starts), (text, starts)
    with caplog.at_level(logging.INFO):  # again: now every set is in the cache, and says so
        caplog.clear()
        assert main([*argv, "--out", str(tmp_path / "p"), "--no-probes"]) == 0
    assert "encoding deu.src: 40 sentences with tiny-xlmr: embedding cache hit" in caplog.text


def test_a_terminal_gets_a_bar_instead(capsys, caplog) -> None:
    from align.progress import step

    with caplog.at_level(logging.INFO), step("mining", 4, "tile", progress=True) as update:
        update(4)
    assert "mining" in capsys.readouterr().err and "mining ..." not in caplog.text


def test_a_report_leaves_out_what_was_not_measured_and_says_why(plain_compare, tmp_path):
    out = tmp_path / "report.html"
    assert main(["report", str(plain_compare), "--out", str(out)]) == 0
    page = out.read_text()
    assert "Which change in alignment tracks" not in page
    assert "Not in this comparison: the alignment measures and what tracks the change " in page
    assert "(--no-probes); the layer x layer CKA matrix (--no-cka-matrix)" in page
    assert "<table>\n  <tr><th>alignment metric</th>" not in page
    assert re.search(r"<h1>align report — tiny-xlmr: tatoeba on deu, fra \(40 pairs each\)", page)


def test_the_findings_name_the_family_the_p_values_are_adjusted_over(plain_compare) -> None:
    from align.results import Result

    result = Result.load(plain_compare)
    summary = result.summary("noisy")
    assert summary["family"] == "Holm over 8 cells x 3 metrics = 24 tests"
    assert "(adjusted p < 0.05; Holm over 8 cells x 3 metrics = 24 tests)" in summary["text"][1]


def test_the_transplant_table_speaks_of_the_layer_of_significant_change(tmp_path) -> None:
    """The significant change is at layer 2 of deu only: the table explains that layer (not
    the last one) and names fra as having none."""
    from align.report.sections import transplant_table
    from align.results import Result

    records = []
    for lang in ("deu", "fra"):
        for layer in (1, 2, 3):
            p = 0.001 if (lang, layer) == ("deu", 2) else 0.5
            records.append({"model": "t", "lang": lang, "layer": layer, "value": -0.1,
                            "metric": "delta_acc_xx2en", "p_adjusted": p})  # fmt: skip
            for block in range(1, layer + 1):
                for kind, share in (("graft", 0.1 * block), ("restore", 0.2 * block)):
                    records.append({"model": "t", "lang": lang, "layer": layer, "block": block,
                                    "metric": f"{kind}_delta_acc_xx2en", "value": -0.01,
                                    "full_delta": -0.08, "share": share})  # fmt: skip
    result = Result({"task": "tatoeba", "command": "compare", "model": {"name": "b"},
                     "scores": records, "compared": [{"name": "t"}]})  # fmt: skip
    table = transplant_table(result, "t", 0.05)
    (row,) = table["rows"]
    assert [c["text"] for c in row] == [
        "deu", "2 (largest significant Δ (-0.100))", "block 2: 20%", "block 2: 40%", "-0.080"
    ]  # fmt: skip
    assert "no significant change at a layer the sweep scored: fra" in table["note"]


def test_help_puts_what_to_measure_first(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = capsys.readouterr().out
    heads = [line[:-1] for line in text.splitlines() if re.fullmatch(r"[a-z][^:]*:", line)]
    assert heads[1:] == [
        "what to measure", "options of this command", "statistics",
        "encoding (how sentences become vectors)", "nearest-neighbour index",
        "geometry (retrieval after whitening and cross-fitted maps)", "output and run",
    ]  # fmt: skip
    first = text.split("what to measure:")[1].split("options of this command:")[0]
    flags = re.findall(r"^  (--[a-z-]+)", first, re.M)
    assert flags == ["--ckpt", "--base", "--task", "--data", "--data-dir", "--langs", "--layers",
                     "--preset"]  # fmt: skip
    assert "a checkpoint folder written by align train" in " ".join(first.split())


def test_a_quick_demo_has_its_own_folder() -> None:
    from align.commands.demo import DemoConfig

    assert DemoConfig(quick=True).out == Path("demo-quick")
    assert DemoConfig().out == Path("demo")
    assert DemoConfig(quick=True, out=Path("x")).out == Path("x")


def test_results_json_is_unchanged_by_the_log_lines(plain_compare) -> None:
    assert json.loads(plain_compare.read_text())["summary"]["noisy"]["text"]
