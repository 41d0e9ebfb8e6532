"""Nothing silently wrong, nothing refused after the work (the issue on trust, items 1-17).

Each refusal: exit status 2, one line naming the argument or file, no traceback, nothing left
behind and, where the model is not needed to decide, no weights loaded.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    fails_in_one_line,
    make_tiny_model,
    perturb_block,
    run_with_file_size_limit,
)
from test_bad_input import _retrieve
from train_fixtures import write_sst2

from align.cli import main
from align.data.bible import build_bucc_demo, build_tatoeba_demo
from align.results import load_result


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Path]:
    """Two different checkpoints that are both called ``final``."""
    root = tmp_path_factory.mktemp("runs")
    return {
        "a": perturb_block(tiny_model_dir, root / "runA" / "final", 2, scale=1.0, seed=1),
        "b": perturb_block(tiny_model_dir, root / "runB" / "final", 3, scale=1.0, seed=2),
    }


def _compare(base: Path, data: Path, out: Path, *ckpts: Path, extra: tuple = ()) -> list[str]:
    argv = ["compare", "--base", str(base), "--data-dir", str(data), "--out", str(out)]
    for ckpt in ckpts:
        argv += ["--ckpt", str(ckpt)]
    return [
        *argv,
        "--no-cache",
        "--n-boot",
        "100",
        "--n-boot-spearman",
        "20",
        "--knn-k",
        "5",
        *extra,
    ]


# ------------------------------------------------------------------ 1-4: numbers kept apart
def test_same_named_checkpoints_stay_apart_through_compare_summary_and_report(
    tiny_model_dir, tat, runs, tmp_path
) -> None:
    out = tmp_path / "cmp"
    assert main(_compare(tiny_model_dir, tat, out, runs["a"], runs["b"])) == 0
    path = next(out.glob("compare-*.json"))
    result = load_result(path)
    names = [m["name"] for m in result["compared"]]
    assert names == ["runA/final", "runB/final"], names
    assert "runA_final-runB_final" in path.name
    assert set(result["summary"]) == set(names)
    deltas = {
        name: [
            r["value"]
            for r in result["scores"]
            if r.get("model") == name and r["metric"] == "delta_acc_xx2en"
        ]
        for name in names
    }
    assert deltas[names[0]] != deltas[names[1]]  # two checkpoints, two sets of changes
    report = tmp_path / "r.html"
    assert main(["report", str(path), "--out", str(report)]) == 0
    html = report.read_text(encoding="utf-8")
    assert "runA/final vs tiny-xlmr" in html and "runB/final vs tiny-xlmr" in html


def test_a_checkpoint_given_twice_is_refused(
    tiny_model_dir, tat, runs, tmp_path, no_weights, caplog, capsys
) -> None:
    argv = _compare(tiny_model_dir, tat, tmp_path / "out", runs["a"], runs["a"])
    fails_in_one_line(argv, "the same checkpoint as --ckpt", caplog, capsys)
    copy = shutil.copytree(runs["a"], tmp_path / "copy-of-a")  # same weights, other path
    argv = _compare(tiny_model_dir, tat, tmp_path / "out", runs["a"], copy)
    fails_in_one_line(argv, "(same weights)", caplog, capsys)
    assert not (tmp_path / "out").exists()


def test_report_refuses_mixed_encodings_and_one_name_for_two_models(
    tiny_model_dir, tat, tmp_path, caplog, capsys
) -> None:
    common = ["--no-cache", "--no-plot"]
    assert main([*_retrieve(tiny_model_dir, tat, tmp_path / "a"), *common]) == 0
    assert main([*_retrieve(tiny_model_dir, tat, tmp_path / "b"), *common, "--prefix", "x: "]) == 0
    first, second = (next((tmp_path / d).glob("*.json")) for d in ("a", "b"))
    out = str(tmp_path / "r.html")
    fails_in_one_line(
        ["report", str(first), str(second), "--out", out],
        "encoded differently (prefix",
        caplog,
        capsys,
    )
    other = json.loads(first.read_text())
    other["model"]["fingerprint"] = "0" * 64
    (tmp_path / "c").mkdir()
    third = tmp_path / "c" / first.name
    third.write_text(json.dumps(other))
    fails_in_one_line(
        ["report", str(first), str(third), "--out", out], "name different weights", caplog, capsys
    )
    assert not Path(out).exists()


def test_a_demo_stage_reruns_when_its_inputs_changed(tmp_path, caplog) -> None:
    from align.commands.demo import Stage, _run_stage

    calls = []
    fingerprint = {"ckpt": "a"}
    out = tmp_path / "x.txt"

    def call() -> Path:
        calls.append(1)
        out.write_text("done")
        return out

    stage = Stage("s", "stage", call, lambda: dict(fingerprint))
    state: dict = {"stages": {}}
    with caplog.at_level(logging.INFO):
        _run_stage(stage, "[1/1] stage", state, lambda: None)
        _run_stage(stage, "[1/1] stage", state, lambda: None)
        assert len(calls) == 1 and "done before, reused" in caplog.text
        fingerprint["ckpt"] = "b"  # the checkpoint was replaced under the finished stage
        _run_stage(stage, "[1/1] stage", state, lambda: None)
    assert len(calls) == 2 and "its inputs changed" in caplog.text


# ------------------------------------------------------------ 5-16: checked before the work
def test_compare_with_a_model_of_another_depth_fails_first(
    tiny_model_dir, tat, tmp_path, no_weights, caplog, capsys
) -> None:
    deeper = make_tiny_model(tmp_path / "deeper", layers=4)
    fails_in_one_line(
        _compare(tiny_model_dir, tat, tmp_path / "out", deeper),
        "needs models of one depth",
        caplog,
        capsys,
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("seed", ["-1", "99999999999"])
def test_seeds_outside_32_bits_are_refused(
    seed, tiny_model_dir, tat, tmp_path, no_weights, caplog, capsys
) -> None:
    message = f"--seed {seed}: must be an integer in 0..4294967295"
    fails_in_one_line(
        [*_retrieve(tiny_model_dir, tat, tmp_path / "o"), "--seed", seed], message, caplog, capsys
    )
    fails_in_one_line(
        [*_compare(tiny_model_dir, tat, tmp_path / "o", tiny_model_dir), "--seed", seed],
        message,
        caplog,
        capsys,
    )
    train = ["train", "--task", "sst2", "--data-dir", str(write_sst2(tmp_path / "sst2"))]
    train += ["--model", str(tiny_model_dir), "--out", str(tmp_path / "t"), "--seed", seed]
    fails_in_one_line(train, message, caplog, capsys)
    assert not any((tmp_path / d).exists() for d in ("o", "t"))


@pytest.mark.parametrize("fraction", ["0", "1"])
def test_langid_fraction_is_checked_first(
    fraction, tiny_model_dir, tat, tmp_path, no_weights, caplog, capsys
) -> None:
    argv = [
        *_compare(tiny_model_dir, tat, tmp_path / "o", tiny_model_dir),
        "--langid-test-fraction",
        fraction,
    ]
    fails_in_one_line(
        argv, f"--langid-test-fraction {fraction}.0: must lie in (0, 1)", caplog, capsys
    )


def test_report_paths(tiny_model_dir, tat, tmp_path, caplog, capsys, monkeypatch) -> None:
    assert main([*_retrieve(tiny_model_dir, tat, tmp_path / "a"), "--no-cache", "--no-plot"]) == 0
    result = str(next((tmp_path / "a").glob("*.json")))
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    fails_in_one_line(
        ["report", result, "--out", str(notes)], "is not an HTML file", caplog, capsys
    )
    assert notes.read_text() == "mine"
    fails_in_one_line(
        ["report", str(tmp_path / "a"), "--out", str(tmp_path / "r.html")],
        "is a directory",
        caplog,
        capsys,
    )
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    fails_in_one_line(
        ["report", result, "--out", str(tmp_path / "ro" / "r.html")], "not writable", caplog, capsys
    )


def test_a_cache_dir_that_is_a_file_fails_first(
    tiny_model_dir, tat, tmp_path, no_weights, caplog, capsys, monkeypatch
) -> None:
    afile = tmp_path / "cache-file"
    afile.write_text("x")
    monkeypatch.setenv("ALIGN_CACHE_DIR", str(afile))
    fails_in_one_line(
        _retrieve(tiny_model_dir, tat, tmp_path / "out"), "ALIGN_CACHE_DIR", caplog, capsys
    )
    assert not (tmp_path / "out").exists()


def test_a_write_that_runs_out_of_space_leaves_nothing(tiny_model_dir, tat, tmp_path) -> None:
    """A file size limit (``ulimit -f``) stands in for a full disk."""
    out = tmp_path / "out"
    proc = run_with_file_size_limit(_retrieve(tiny_model_dir, tat, out, "--no-cache", "--no-plot"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "cannot be written" in errors[0] and "Traceback" not in proc.stderr
    assert not out.exists()


def test_tiny_sets_are_refused_before_encoding(
    tiny_model_dir, tmp_path, no_weights, caplog, capsys
) -> None:
    three = build_tatoeba_demo(tmp_path / "three", ["de"], n=3, seed=0)
    argv = ["cka", *_retrieve(tiny_model_dir, three, tmp_path / "o")[1:]]
    fails_in_one_line(argv, "tatoeba.deu-eng.deu: deu has 3 translation pair(s)", caplog, capsys)
    fails_in_one_line(
        _compare(tiny_model_dir, three, tmp_path / "o", tiny_model_dir, extra=("--knn-k", "1")),
        "needs at least 4",
        caplog,
        capsys,
    )


def test_demo_plan_is_checked_before_anything_runs(
    tiny_model_dir, tmp_path, no_weights, caplog, capsys
) -> None:
    unrelated = tmp_path / "mine"
    unrelated.mkdir()
    (unrelated / "thesis.tex").write_text("x")
    demo = ["demo", "--quick", "--model", str(tiny_model_dir)]
    fails_in_one_line([*demo, "--out", str(unrelated)], "holds no demo run", caplog, capsys)
    fails_in_one_line(
        [*demo, "--out", str(tmp_path / "d"), "--langs", "de", "--n", "5"], "--n 5", caplog, capsys
    )
    fails_in_one_line(
        [*demo, "--out", str(tmp_path / "k"), "--langs", "klingon"], "klingon", caplog, capsys
    )
    assert not (tmp_path / "d").exists() and not (tmp_path / "k").exists()
    (tmp_path / "old").mkdir()
    state = {"settings": {"model": str(tiny_model_dir), "seed": 0, "profile": {}}, "stages": {}}
    (tmp_path / "old" / "demo.json").write_text(json.dumps(state))
    fails_in_one_line(
        [*demo, "--out", str(tmp_path / "old"), "--seed", "1"],
        "seed 0 there, 1 now",
        caplog,
        capsys,
    )


def test_two_trainings_into_one_folder(tiny_model_dir, tmp_path) -> None:
    data = write_sst2(tmp_path / "sst2")
    out = tmp_path / "run"
    base = [sys.executable, "-m", "align.cli", "train", "--task", "sst2", "--data-dir", str(data)]
    base += [
        "--model",
        str(tiny_model_dir),
        "--out",
        str(out),
        "--max-steps",
        "30",
        "--batch-size",
        "4",
    ]
    procs = [
        subprocess.Popen(
            [*base, "--seed", str(seed)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for seed in (1, 2)
    ]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert "another align run is writing into it" in loser or "another" in loser
    winner_seed = next(seed for (code, _), seed in zip(results, (1, 2), strict=True) if code == 0)
    meta = json.loads((out / "align_meta.json").read_text())
    assert meta["seed"] == winner_seed  # the folder holds one run only


def test_messages_are_one_line_and_name_the_flag(
    tiny_model_dir, tat, tmp_path, no_weights, caplog, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fails_in_one_line(
        _retrieve(Path("ck/nonexistent"), tat, tmp_path / "o"),
        "--ckpt 'ck/nonexistent'",
        caplog,
        capsys,
    )
    argv = [
        "cka",
        *_retrieve(tiny_model_dir, tat, tmp_path / "o")[1:],
        "--ckpt-b",
        "ck/nonexistent",
    ]
    fails_in_one_line(argv, "--ckpt-b 'ck/nonexistent'", caplog, capsys)
    caplog.clear()
    assert main([*_retrieve(tiny_model_dir, tat, tmp_path / "o"), "--langs", "deutsch"]) == 2
    line = next(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    hint = line.split("did you mean ", 1)[1].split("?")[0].split(" or ")
    assert len(hint) == len(set(hint)), line
    bad = tmp_path / "v.json"
    bad.write_text(
        json.dumps({"schema_version": "2", "task": "tatoeba", "model": {}, "scores": []})
    )
    fails_in_one_line(
        ["report", str(bad), "--out", str(tmp_path / "r.html")], "version '2'", caplog, capsys
    )
    with pytest.raises(SystemExit) as exit_:
        main(["retrieve", "--layers"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "see 'align retrieve --help'" in err[0], err
    with pytest.raises(SystemExit):
        main(["train", "--task-dir", "foo"])
    err = capsys.readouterr().err
    assert "expected TASK=DIR" in err and "invalid" not in err


def test_report_names_layers_plainly(tiny_model_dir, tat, tmp_path, caplog, capsys) -> None:
    for name, layers in (("a", "0"), ("b", "3")):
        argv = [
            *_retrieve(tiny_model_dir, tat, tmp_path / name),
            "--layers",
            layers,
            "--no-cache",
            "--no-plot",
        ]
        assert main(argv) == 0
    a, b = (str(next((tmp_path / d).glob("*.json"))) for d in ("a", "b"))
    fails_in_one_line(
        ["report", a, b, "--out", str(tmp_path / "r.html")],
        "(layers 0 of a 3-layer model vs layers 3 of a 3-layer model)",
        caplog,
        capsys,
    )


def test_mlm_weight_needs_mlm_data(tiny_model_dir, tmp_path, no_weights, caplog, capsys) -> None:
    argv = ["train", "--task", "sst2", "--data-dir", str(write_sst2(tmp_path / "s"))]
    argv += ["--model", str(tiny_model_dir), "--out", str(tmp_path / "t"), "--mlm-weight", "1"]
    fails_in_one_line(argv, "--mlm-weight 1.0: needs --mlm-data", caplog, capsys)


def test_data_files_that_are_not_files(
    tiny_model_dir, tmp_path, no_weights, caplog, capsys
) -> None:
    base = build_tatoeba_demo(tmp_path / "base", ["de"], n=20, seed=0)
    src = "tatoeba.deu-eng.deu"
    cases = {}
    for kind in ("fifo", "dir", "dangling"):
        folder = shutil.copytree(base, tmp_path / kind)
        (folder / src).unlink()
        if kind == "fifo":
            os.mkfifo(folder / src)
        elif kind == "dir":
            (folder / src).mkdir()
        else:
            (folder / src).symlink_to(folder / "gone")
        cases[kind] = folder
    expected = {
        "fifo": "not a regular file",
        "dir": "is a directory",
        "dangling": "dangling symbolic link",
    }
    for kind, folder in cases.items():
        fails_in_one_line(
            _retrieve(tiny_model_dir, folder, tmp_path / "o"), expected[kind], caplog, capsys
        )


def test_line_contents(tiny_model_dir, tmp_path, no_weights, caplog, capsys) -> None:
    base = build_tatoeba_demo(tmp_path / "base", ["de"], n=20, seed=0)
    src = "tatoeba.deu-eng.deu"
    cr = shutil.copytree(base, tmp_path / "cr")
    (cr / src).write_bytes((base / src).read_bytes().replace(b"\n", b"\r"))
    fails_in_one_line(_retrieve(tiny_model_dir, cr, tmp_path / "o"), "CR only", caplog, capsys)
    marks = shutil.copytree(base, tmp_path / "marks")
    lines = (base / src).read_text(encoding="utf-8").splitlines()
    lines[4] = "\u200f\u200b\u2060"  # a right-to-left mark, a zero-width space, a word joiner
    (marks / src).write_text("\n".join(lines) + "\n", encoding="utf-8")
    fails_in_one_line(
        _retrieve(tiny_model_dir, marks, tmp_path / "o"), f"{src}:5: empty line", caplog, capsys
    )


def test_bucc_files_with_extra_fields_or_two_namings(
    tiny_model_dir, tmp_path, no_weights, caplog, capsys
) -> None:
    base = build_bucc_demo(tmp_path / "base", ["de"], n=20, seed=0)
    tabs = shutil.copytree(base, tmp_path / "tabs")
    path = tabs / "de-en.test.de"
    rows = path.read_text(encoding="utf-8").splitlines()
    rows[2] += "\textra"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    argv = [*_retrieve(tiny_model_dir, tabs, tmp_path / "o"), "--task", "bucc"]
    fails_in_one_line(argv, "de-en.test.de:3: 3 tab-separated fields, expected 2", caplog, capsys)
    both = shutil.copytree(base, tmp_path / "both")
    for split, other in (("dev", "sample"), ("test", "training")):
        for ext in ("de", "en", "gold"):
            shutil.copy(both / f"de-en.{split}.{ext}", both / f"de-en.{other}.{ext}")
    argv = [*_retrieve(tiny_model_dir, both, tmp_path / "o"), "--task", "bucc"]
    fails_in_one_line(argv, "holds BUCC files in both namings", caplog, capsys)


def test_truncated_sentences_are_counted(tiny_model_dir, tat, tmp_path, caplog) -> None:
    with caplog.at_level(logging.INFO):
        argv = [
            *_retrieve(tiny_model_dir, tat, tmp_path / "o"),
            "--max-length",
            "8",
            "--no-cache",
            "--no-plot",
        ]
        assert main(argv) == 0
    cut = [r.getMessage() for r in caplog.records if "longer than --max-length 8" in r.getMessage()]
    assert len(cut) == 2 and all(" of 40 sentences" in m for m in cut), cut  # once per set
