"""End-to-end CLI runs on the tiny model: outputs, schema, and bad input with no partial output."""

import json
import logging
import shutil
from pathlib import Path

import pytest

from align.cli import main
from align.data.bible import build_bucc_demo, build_tatoeba_demo
from align.results import load_result


@pytest.fixture(scope="module")
def tatoeba_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tatoeba_demo(tmp_path_factory.mktemp("tat"), ["de", "fr"], n=40, seed=0)


def _args(ckpt: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "retrieve",
        "--ckpt",
        str(ckpt),
        "--data-dir",
        str(data),
        "--out",
        str(out),
        "--no-cache",
        *extra,
    ]


def test_retrieve_tatoeba_writes_schema(
    tiny_model_dir: Path, tatoeba_dir: Path, tmp_path: Path, capsys
) -> None:
    assert main(_args(tiny_model_dir, tatoeba_dir, tmp_path, "--layers", "0,-1")) == 0
    result = load_result(tmp_path / "retrieve-tatoeba-tiny-xlmr.json")
    for key in (
        "task",
        "model",
        "config",
        "versions",
        "git",
        "created",
        "elapsed_s",
        "scores",
        "seed",
        "timings",
    ):
        assert key in result
    assert result["languages"] == ["deu", "fra"] and result["layers"] == [0, 3]
    assert len(result["model"]["fingerprint"]) == 64
    assert result["config"]["dtype"] == "float32" and result["config"]["device"] == "cpu"
    metrics = {(r["layer"], r["lang"], r["metric"]) for r in result["scores"]}
    assert len(metrics) == 2 * 2 * 3
    lines = (tmp_path / result["examples"]).read_text().splitlines()
    assert len(lines) == 2 * 2 * 2 * 40  # layers x langs x directions x sentences
    examples = [json.loads(line) for line in lines]
    for r in result["scores"]:  # the JSON's accuracies are the JSONL's per-query outcomes
        if r["metric"].startswith("acc_"):
            direction = r["metric"].removeprefix("acc_")
            hits = [
                e["correct"]
                for e in examples
                if (e["lang"], e["layer"], e["direction"]) == (r["lang"], r["layer"], direction)
            ]
            assert len(hits) == 40 and r["value"] == pytest.approx(sum(hits) / 40)
            assert all(e["correct"] == (e["pred"] == e["index"]) for e in examples)
    assert (tmp_path / "retrieve-tatoeba-tiny-xlmr.png").stat().st_size > 1000
    assert "layer" in capsys.readouterr().out


def test_retrieve_bucc(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = build_bucc_demo(tmp_path / "bucc", ["de"], n=30, seed=0)
    assert (
        main(
            _args(
                tiny_model_dir,
                data,
                tmp_path / "out",
                "--task",
                "bucc",
                "--layers",
                "2",
                "--no-plot",
            )
        )
        == 0
    )
    result = json.loads((tmp_path / "out" / "retrieve-bucc-tiny-xlmr.json").read_text())
    metrics = {r["metric"] for r in result["scores"]}
    scored = {"f1", "precision", "recall", "threshold", "f1_dev", "f1_oracle"}
    assert metrics == scored | {"f1_procrustes"}  # beside f1: after a map fit on dev's gold


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _mutate(path: Path, data: bytes) -> None:
    path.write_bytes(data)


BAD_DATA = {
    "misaligned": ("tatoeba.deu-eng.eng", b"one\ntwo\n", "misaligned parallel files"),
    "empty line": ("tatoeba.deu-eng.deu", b"eins\n\nzwei\n", "tatoeba.deu-eng.deu:2: empty line"),
    "utf8": ("tatoeba.deu-eng.deu", b"eins\n\xc3\x28\n", "tatoeba.deu-eng.deu:2: invalid UTF-8"),
    "empty set": ("tatoeba.deu-eng.deu", b"", "file is empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_fails_cleanly(
    case: str, tiny_model_dir: Path, tatoeba_dir: Path, tmp_path: Path, caplog
) -> None:
    data = _copy(tatoeba_dir, tmp_path / "data")
    name, content, message = BAD_DATA[case]
    _mutate(data / name, content)
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR):
        assert main(_args(tiny_model_dir, data, out, "--langs", "deu")) == 2
    assert message in caplog.text
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--langs", "klingon"], "unknown language 'klingon'"),
        (["--layers", "9"], "layer 9 is beyond the model's depth"),
        (["--device", "cuda:3"], "--device cuda:3"),
    ],
)
def test_bad_arguments_fail_cleanly(
    extra, message, tiny_model_dir, tatoeba_dir, tmp_path, caplog
) -> None:
    with caplog.at_level(logging.ERROR):
        assert main(_args(tiny_model_dir, tatoeba_dir, tmp_path / "out", *extra)) == 2
    assert message in caplog.text
    assert not (tmp_path / "out").exists()


def test_bad_checkpoints_fail_cleanly(tiny_model_dir, tatoeba_dir, tmp_path, caplog) -> None:
    corrupt = _copy(tiny_model_dir, tmp_path / "corrupt")
    (corrupt / "model.safetensors").write_bytes(b"\x00" * 64)
    with caplog.at_level(logging.ERROR):
        assert main(_args(tmp_path / "missing", tatoeba_dir, tmp_path / "out")) == 2
        assert main(_args(corrupt, tatoeba_dir, tmp_path / "out")) == 2
    assert "does not exist" in caplog.text
    assert "model.safetensors is not a readable safetensors file" in caplog.text
    assert not (tmp_path / "out").exists()


def test_bucc_gold_absent_fails_cleanly(tiny_model_dir, tmp_path, caplog) -> None:
    data = build_bucc_demo(tmp_path / "bucc", ["de"], n=10, seed=0)
    with (data / "de-en.test.gold").open("a") as fh:
        fh.write("de-test-999999\ten-test-000000\n")
    with caplog.at_level(logging.ERROR):
        assert main(_args(tiny_model_dir, data, tmp_path / "out", "--task", "bucc")) == 2
    assert "de-en.test.gold:11: id 'de-test-999999' is not in" in caplog.text


def test_data_bible_cli(tmp_path: Path) -> None:
    assert (
        main(["data", "bible", "--langs", "de,ru", "--n", "20", "--out", str(tmp_path / "t")]) == 0
    )
    assert (tmp_path / "t" / "tatoeba.rus-eng.rus").read_text().count("\n") == 20
    assert (
        main(
            ["data", "bible", "--langs", "de", "--n", "20", "--bucc", "--out", str(tmp_path / "b")]
        )
        == 0
    )
    assert (tmp_path / "b" / "de-en.test.gold").read_text().count("\n") == 20
    assert main(["data", "bible", "--langs", "zh", "--n", "20", "--out", str(tmp_path / "z")]) == 2
    assert not (tmp_path / "z").exists()


def test_models_cli(capsys) -> None:
    assert main(["models"]) == 0
    assert "multilingual-e5-small" in capsys.readouterr().out


def test_cka_cli_and_matrix(tiny_model_dir: Path, tatoeba_dir: Path, tmp_path: Path) -> None:
    from conftest import make_tiny_model

    assert main(["cka", *_args(tiny_model_dir, tatoeba_dir, tmp_path)[1:]]) == 0
    result = load_result(tmp_path / "cka-tiny-xlmr.json")
    assert {r["metric"] for r in result["scores"]} == {
        "cka_linear",
        "cka_linear_debiased",
        "cka_rbf",
        "svcca",
        "pwcca",
        "procrustes_angular",
        "procrustes_distance",
        "cknna",
        "rsa",
    }
    assert (tmp_path / "cka-tiny-xlmr.png").is_file()
    other = make_tiny_model(tmp_path / "other-xlmr", layers=2, seed=1)
    args = ["cka", *_args(tiny_model_dir, tatoeba_dir, tmp_path)[1:], "--ckpt-b", str(other)]
    assert main(args) == 0
    matrix = load_result(tmp_path / "cka-matrix-tiny-xlmr-vs-other-xlmr.json")
    cells = {(r["layer"], r["layer_b"]) for r in matrix["scores"] if r["metric"] == "cka_linear"}
    assert cells == {(a, b) for a in range(4) for b in range(3)}
    assert matrix["model"]["b"]["num_layers"] == 2
    assert (tmp_path / "cka-matrix-tiny-xlmr-vs-other-xlmr.png").is_file()
    assert (
        main([*args, "--matrix-measures", "svcca,procrustes_angular", "--out", str(tmp_path / "m")])
        == 0
    )
    matrix = load_result(tmp_path / "m" / "cka-matrix-tiny-xlmr-vs-other-xlmr.json")
    for metric in ("svcca", "procrustes_angular"):
        cells = {(r["layer"], r["layer_b"]) for r in matrix["scores"] if r["metric"] == metric}
        assert cells == {(a, b) for a in range(4) for b in range(3)}, metric
    assert not [r for r in matrix["scores"] if r["metric"] == "cka_linear"]  # not asked for
    assert (tmp_path / "m" / "cka-matrix-tiny-xlmr-vs-other-xlmr-procrustes_angular.png").is_file()


def test_probe_cli(tiny_model_dir: Path, tatoeba_dir: Path, tmp_path: Path) -> None:
    assert main(["probe", *_args(tiny_model_dir, tatoeba_dir, tmp_path)[1:], "--knn-k", "5"]) == 0
    result = load_result(tmp_path / "probe-tiny-xlmr.json")
    metrics = {r["metric"] for r in result["scores"]}
    expected = {
        "pair_cos",
        "random_cos",
        "cos_gap",
        "mknn@5",
        "acc_centered_xx2en",
        "acc_centered_en2xx",
        "iso_avg_cos",
        "iso_top_pc_share",
        "iso_n_outlier_dims",
        "iso_max_dim_ratio",
        "langid_acc",
    }
    expected |= {f"acc_{t}_{d}" for t in ("whitened", "procrustes", "linear")
                 for d in ("xx2en", "en2xx")}  # fmt: skip
    expected |= {"linear_ridge_xx2en", "linear_ridge_en2xx"}  # the penalties the maps chose
    assert metrics == expected
    assert {r["lang"] for r in result["scores"]} == {"deu", "fra", "eng", "all"}
    assert (tmp_path / "probe-tiny-xlmr.png").is_file()


def test_cka_matrix_books_both_models_encoding_as_encoding(
    tiny_model_dir: Path, tatoeba_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    import time

    from conftest import make_tiny_model

    import align.commands.prepared as prepared

    real, clock, skipped = prepared.encode_to_store, time.perf_counter, [0.0]

    def slow(*args, **kwargs):  # every encoding "takes" 100 s more on the process's clock
        skipped[0] += 100.0
        return real(*args, **kwargs)

    monkeypatch.setattr(time, "perf_counter", lambda: clock() + skipped[0])
    monkeypatch.setattr(prepared, "encode_to_store", slow)
    other = make_tiny_model(tmp_path / "b-xlmr", seed=2)
    args = ["cka", *_args(tiny_model_dir, tatoeba_dir, tmp_path)[1:], "--ckpt-b", str(other)]
    assert main([*args, "--no-plot"]) == 0
    result = load_result(tmp_path / "cka-matrix-tiny-xlmr-vs-b-xlmr.json")
    assert result["timings"]["encode_s"] >= 200.0  # one encoding per model
    assert result["timings"]["score_s"] < 100.0  # no encoding booked as scoring


def test_plots_name_the_dataset_and_keep_language_colours(
    tiny_model_dir: Path, tatoeba_dir: Path, tmp_path: Path
) -> None:
    from align.report import plots

    assert main(["probe", *_args(tiny_model_dir, tatoeba_dir, tmp_path)[1:], "--knn-k", "5"]) == 0
    result = load_result(tmp_path / "probe-tiny-xlmr.json")
    assert plots.dataset_title(result).startswith("Bible set")
    plt = plots._pyplot()
    fig, (a, b) = plt.subplots(1, 2)
    looks = plots.language_styles(sorted({r["lang"] for r in result["scores"]}))
    plots._draw_curves(a, result, "cos_gap", looks=looks)  # deu, fra
    plots._draw_curves(b, result, "iso_avg_cos", looks=looks)  # deu, eng, fra
    colour_of = [{line.get_label(): line.get_color() for line in ax.lines} for ax in (a, b)]
    assert colour_of[0]["fra"] == colour_of[1]["fra"] and colour_of[0]["deu"] == colour_of[1]["deu"]
    plt.close(fig)
