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


HEADER = "model,task,lang,metric,convention,split,direction,threshold,max_length,value,source\n"


def test_published_numbers_are_printed_beside_measured_ones(deep, tmp_path, capsys, monkeypatch):
    """A fixture row for this model, task and preset: retrieve prints it, the measured value
    and the gap; a row for another preset or model is not printed, and a row of the same preset
    scored at another max length is named but not compared."""
    from align import published

    table = tmp_path / "published.csv"
    table.write_text(
        "# a fixture table\n"
        + HEADER
        + "deep-xlmr,tatoeba,deu,acc_en2xx,xtreme,all,en->xx,,512,57.3,A Paper (2020) Table 9\n"
        + "deep-xlmr,tatoeba,deu,acc_en2xx,jiant,all,en->xx,,,11.1,Another Paper Table 2\n"
        + "other-model,tatoeba,deu,acc_en2xx,xtreme,all,en->xx,,,99.0,Somewhere Table 1\n"
        + "deep-xlmr,tatoeba,deu,acc_en2xx,xtreme,all,en->xx,,256,44.4,A Third Table 3\n"
    )
    monkeypatch.setenv("ALIGN_PUBLISHED", str(table))
    data = build_tatoeba_demo(tmp_path / "tat", ["de"], n=30, seed=0)
    argv = ["retrieve", "--ckpt", str(deep), "--data-dir", str(data), "--preset", "xtreme"]
    result = _run([*argv, "--margin-k", "2"], tmp_path / "o", capsys)
    printed = result["_printed"]
    assert result["convention"]["max_length"] == 128  # XTREME's 512, as far as the model goes
    assert "published acc_en2xx deu: 57.3 (split all, en->xx, max length 512; A Paper" in printed
    assert "not compared: measured at max length 128, the source at 512" in printed
    assert "44.4" in printed and "11.1" not in printed and "99.0" not in printed
    rows = published.load(table)
    assert len(rows) == 4 and all(r.source for r in rows)


def test_a_published_row_is_put_beside_its_own_convention_only(deep, tmp_path, capsys, monkeypatch):
    """The same model and task under jiant and XTREME: each run prints its own convention's
    row with the gap, and never the other's."""
    table = tmp_path / "published.csv"
    table.write_text(
        HEADER
        + "deep-xlmr,tatoeba,deu,acc_en2xx,xtreme,all,en->xx,,,57.3,A Paper Table 9\n"
        + "deep-xlmr,tatoeba,deu,acc_en2xx,jiant,all,en->xx,,64,11.1,Another Paper Table 2\n"
    )
    monkeypatch.setenv("ALIGN_PUBLISHED", str(table))
    data = build_tatoeba_demo(tmp_path / "tat", ["de"], n=30, seed=0)
    argv = ["retrieve", "--ckpt", str(deep), "--data-dir", str(data), "--margin-k", "2"]
    xtreme = _run([*argv, "--preset", "xtreme"], tmp_path / "x", capsys)
    jiant = _run([*argv, "--preset", "jiant", "--max-length", "64"], tmp_path / "j", capsys)
    for result, shown, hidden in ((xtreme, "57.3", "11.1"), (jiant, "11.1", "57.3")):
        measured = 100 * next(r["value"] for r in result["scores"] if r["metric"] == "acc_en2xx")
        assert f": {shown} (" in result["_printed"] and hidden not in result["_printed"]
        assert (
            f"measured {measured:.1f} (gap {measured - float(shown):+.1f} points)"
            in (result["_printed"])
        )


def test_the_shipped_published_table(tmp_path) -> None:
    """Issue 26, item 7: jiant's XTREME replication for XLM-R Large (jiant-dev/jiant-dev pull
    request #128), read there: BUCC (validation: align's f1_dev) and Tatoeba for 36 languages
    (en->xx), each with its source and table, at max_seq_length 256."""
    from align import published
    from align.data.langs import TATOEBA, XTREME_TATOEBA

    rows = published.load()
    assert all(r.source and "table" in r.source.lower() for r in rows)
    bucc = {r.lang: r.value for r in rows if r.task == "bucc"}
    assert bucc == {"de": 77.7, "fr": 62.7, "ru": 79.2, "zh": 66.5}
    assert all(r.metric == "f1_dev" and r.convention == "jiant" for r in rows if r.task == "bucc")
    tatoeba = {r.lang: r.value for r in rows if r.task == "tatoeba"}
    assert set(tatoeba) == {TATOEBA[c] for c in XTREME_TATOEBA}
    assert (tatoeba["afr"], tatoeba["deu"], tatoeba["swh"], tatoeba["cmn"]) == (
        30.5,
        63.9,
        7.9,
        41.2,
    )
    assert {(r.metric, r.max_length, r.model) for r in rows} == {
        ("acc_en2xx", 256, "xlm-roberta-large"),
        ("f1_dev", 256, "xlm-roberta-large"),
    }


SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "fig_cross_task.py"


def _script(*argv: str):
    import subprocess
    import sys

    return subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True,
                          timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def cross_results(tiny_model_dir, tmp_path_factory) -> list[Path]:
    """Two checkpoints compared on Tatoeba and on BUCC: two compare results files."""
    from conftest import perturb_block

    tmp_path = tmp_path_factory.mktemp("cross")
    ckpts = [perturb_block(tiny_model_dir, tmp_path / f"ckpt{b}", block=b) for b in (1, 3)]
    tat = build_tatoeba_demo(tmp_path / "tat", ["de", "fr"], n=30, seed=0)
    bucc = build_bucc_demo(tmp_path / "bucc", ["de"], n=20, seed=0)
    paths = []
    for task, data in (("tatoeba", tat), ("bucc", bucc)):
        argv = ["compare", "--task", task, "--base", str(tiny_model_dir), "--data-dir", str(data)]
        for ckpt in ckpts:
            argv += ["--ckpt", str(ckpt)]
        argv += ["--out", str(tmp_path / task), "--no-probes", "--no-cka-matrix", "--no-cache"]
        assert main([*argv, "--margin-k", "2", "--n-boot", "100", "--no-plot"]) == 0
        (path,) = (tmp_path / task).glob("compare-*.json")
        paths.append(path)
    return paths


def test_the_cross_task_table_and_figure(cross_results, tmp_path) -> None:
    """Two checkpoints compared on two target tasks: each compare result holds every
    checkpoint's cross-task entry (layer named, interval, adjusted p); the report lays them out
    as checkpoints x tasks with a figure, and the script draws it from the results alone."""
    from align.compare.crosstask import table, text
    from align.results import load_result

    paths = cross_results
    results = [load_result(p) for p in paths]
    assert "cross-task changes from the base" in text(results)
    laid = table(results)
    cells = {(m, t): e for (_, m, t), e in laid.cells.items()}
    assert [m for _, m in laid.rows] == ["ckpt1", "ckpt3"] and laid.tasks == ["tatoeba", "bucc"]
    for entry in cells.values():
        assert entry["layer_rule"] == "the base's best layer"
        assert entry["p_adjusted"] is not None and entry["n"] > 0
    for task in laid.tasks:  # one layer per task: the base's, whatever the checkpoints did
        assert cells[("ckpt1", task)]["layer"] == cells[("ckpt3", task)]["layer"]
        assert cells[("ckpt1", task)]["base"] == cells[("ckpt3", task)]["base"]
    assert cells[("ckpt1", "tatoeba")]["metric"] == "acc_xx2en"
    assert cells[("ckpt1", "bucc")]["metric"] == "f1"
    out = tmp_path / "report.html"
    assert main(["report", *map(str, paths), "--out", str(out)]) == 0
    page = out.read_text()
    assert "Cross-task changes" in page and "Checkpoints x target tasks" in page
    assert "tatoeba: Δ acc_xx2en at hidden_states[L]" in page and "bucc: Δ f1" in page
    figure = tmp_path / "cross_task.png"
    proc = _script(*map(str, paths), "--out", str(figure))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert figure.is_file() and figure.stat().st_size > 5000
    assert "ckpt1" in proc.stdout and "ckpt3" in proc.stdout


# --- issue 26, item 4: the cross-task table refuses what it cannot lay out ---


def _edited(path: Path, target: Path, edit) -> Path:
    data = json.loads(path.read_text())
    edit(data)
    target.write_text(json.dumps(data))
    return target


def _set_entry(field, value):
    def edit(data):
        if field is None:
            data["cross_task"] = value
        elif value is ...:
            del data["cross_task"]["ckpt1"][field]
        else:
            data["cross_task"]["ckpt1"][field] = value

    return edit


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("delta", "-0.1", "cross_task.ckpt1.delta: expected a number, got '-0.1'"),
        (None, [1, 2], "cross_task: expected an object, got list"),
        ("layer", ..., "cross_task.ckpt1.layer: expected an integer, got nothing"),
        ("ci_low", {"x": 1}, "cross_task.ckpt1.ci_low: expected a number or null"),
    ],
)
def test_a_malformed_cross_task_field_is_one_line(
    field, value, message, cross_results, tmp_path, caplog, capsys
) -> None:
    from conftest import fails_in_one_line

    bad = _edited(cross_results[1], tmp_path / "bucc.json", _set_entry(field, value))
    out = tmp_path / "report.html"
    line = fails_in_one_line(["report", str(cross_results[0]), str(bad), "--out", str(out)],
                             message, caplog, capsys)  # fmt: skip
    assert line.startswith(str(bad)) and not out.exists()
    proc = _script(str(cross_results[0]), str(bad), "--out", str(tmp_path / "f.png"))
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_the_same_checkpoint_and_task_twice_is_refused_naming_both_files(
    cross_results, tmp_path, caplog, capsys
) -> None:
    from conftest import fails_in_one_line

    def rerun(data):
        data["created"] = "2026-12-06T00:00:00+00:00"  # another run of the same comparison

    again = _edited(cross_results[0], tmp_path / "again.json", rerun)
    out = tmp_path / "report.html"
    argv = ["report", str(cross_results[0]), str(again), str(cross_results[1]), "--out", str(out)]
    line = fails_in_one_line(argv, "ckpt1 on tatoeba", caplog, capsys)
    assert str(again) in line and str(cross_results[0]) in line and not out.exists()
    proc = _script(str(cross_results[0]), str(again), "--out", str(tmp_path / "f.png"))
    assert proc.returncode == 2 and str(again) in proc.stderr


def test_results_of_two_bases_keep_their_own_rows(cross_results, tmp_path) -> None:
    from align.compare.crosstask import table, text
    from align.results import load_result

    def other_base(data):
        data["model"]["name"] = "other-base"

    other = _edited(cross_results[1], tmp_path / "other.json", other_base)
    results = [load_result(cross_results[0]), load_result(other)]
    laid = table(results)
    assert laid.bases == ["tiny-xlmr", "other-base"]
    assert [laid.label(r) for r in laid.rows] == [
        "ckpt1 (vs tiny-xlmr)", "ckpt3 (vs tiny-xlmr)", "ckpt1 (vs other-base)",
        "ckpt3 (vs other-base)",
    ]  # fmt: skip
    assert ("tiny-xlmr", "ckpt1", "bucc") not in laid.cells
    assert "rows of 2 bases, each vs its own: tiny-xlmr, other-base" in text(results)
    out = tmp_path / "report.html"
    assert main(["report", str(cross_results[0]), str(other), "--out", str(out)]) == 0
    page = out.read_text()
    assert "ckpt1 (vs other-base)" in page and "each measured from its own base" in page


def test_the_figure_script_checks_its_options_as_the_report_does(cross_results, tmp_path):
    for alpha in ("nan", "0", "1.5"):
        proc = _script(*map(str, cross_results), "--alpha", alpha, "--out", str(tmp_path / "f.png"))
        assert proc.returncode == 2 and proc.stderr.startswith(f"error: --alpha {alpha}"), (
            proc.stderr
        )
        assert "Traceback" not in proc.stderr and not (tmp_path / "f.png").exists()


# --- issue 26, item 3 ---


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--preset", "xtreme", "--max-length", "64"], "--max-length 64: --preset xtreme sets it"),
        (["--preset", "xtreme", "--pooling", "cls"], "--pooling cls: --preset xtreme sets it"),
        (["--preset", "xtreme", "--exclude-special"], "--exclude-special True: --preset xtreme"),
    ],
)
def test_every_setting_a_preset_fixes_is_refused_when_set_otherwise(
    extra, message, deep, tmp_path, caplog, capsys, no_weights
) -> None:
    from conftest import fails_in_one_line

    data = build_tatoeba_demo(tmp_path / "tat", ["de"], n=30, seed=0)
    out = tmp_path / "o"
    argv = ["retrieve", "--ckpt", str(deep), "--data-dir", str(data), "--out", str(out), *extra]
    fails_in_one_line(argv, message, caplog, capsys)
    assert not out.exists()


def test_a_preset_takes_a_setting_equal_to_its_own_or_one_it_leaves_open(
    deep, tmp_path, capsys
) -> None:
    data = build_tatoeba_demo(tmp_path / "tat", ["de"], n=30, seed=0)
    argv = ["retrieve", "--ckpt", str(deep), "--data-dir", str(data), "--margin-k", "2"]
    same = _run([*argv, "--preset", "xtreme", "--max-length", "128", "--pooling", "mean"],
                tmp_path / "x", capsys)  # fmt: skip
    assert same["convention"]["max_length"] == 128 and same["config"]["max_length"] == 128
    jiant = _run([*argv, "--preset", "jiant", "--max-length", "64"], tmp_path / "j", capsys)
    assert jiant["convention"]["max_length"] == 64 and jiant["config"]["max_length"] == 64
    plain = _run(argv, tmp_path / "p", capsys)
    assert plain["config"]["max_length"] == 128


def test_compare_with_a_preset_scores_its_metric_and_layer_throughout(
    deep, tmp_path, capsys
) -> None:
    """compare --preset xtreme: the change table, the summary, the attribution, the cross-task
    entry and the report all speak of acc_en2xx at hidden_states[14], and the convention line
    is printed and shown."""
    from conftest import perturb_block

    from align.results import Result

    ckpt = perturb_block(deep, tmp_path / "ckpt", block=10, scale=2.0)
    data = build_tatoeba_demo(tmp_path / "tat", ["de", "fr", "es"], n=40, seed=0)
    argv = ["compare", "--base", str(deep), "--ckpt", str(ckpt), "--data-dir", str(data),
            "--preset", "xtreme", "--out", str(tmp_path / "o"), "--no-cache", "--no-plot",
            "--n-boot", "200", "--n-boot-spearman", "20", "--margin-k", "2", "--knn-k", "3",
            "--no-cka-matrix"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "XTREME convention: en->xx, hidden_states[14]" in printed
    assert "Δ acc_en2xx" in printed and "Δ acc_xx2en" not in printed
    (path,) = (tmp_path / "o").glob("compare-*.json")
    result = Result.load(path)
    assert result.main_metric == "acc_en2xx" and result.layers == [14]
    summary = result.summary("ckpt")
    assert summary["text"][0] == "ckpt vs base — Tatoeba top-1 accuracy (en→xx):"
    assert all("acc_en2xx_vs" in r["metric"] for r in result.records()
               if r["metric"].startswith("spearman_"))  # fmt: skip
    assert result.data["cross_task"]["ckpt"]["metric"] == "acc_en2xx"
    report = tmp_path / "report.html"
    assert main(["report", str(path), "--out", str(report)]) == 0
    page = report.read_text()
    assert "XTREME convention: en-&gt;xx, hidden_states[14]" in page
