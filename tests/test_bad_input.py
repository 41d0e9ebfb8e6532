"""Bad input fails first: exit status 2, one line naming the argument or file, no traceback,
nothing left in --out, the cache or a training directory, and no model weights loaded where
the model is not needed to decide."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from conftest import fails_in_one_line
from train_fixtures import write_sst2

import align.models.loading
import align.train.loop
import align.train.trainer
from align.cli import main
from align.data.bible import build_bucc_demo, build_tatoeba_demo


def _retrieve(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["retrieve", "--ckpt", str(model), "--data-dir", str(data), "--out", str(out), *extra]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--margin-k", "0"], "--margin-k 0: must be at least 1"),
        (
            ["--margin-k", "41"],
            "--margin-k 41: larger than the smallest set searched (deu pairs: 40 sentences)",
        ),
        (["--max-length", "500"], "--max-length 500: tiny-xlmr takes at most 128 tokens"),
        (["--layers", "9"], "--layers '9': layer 9 is beyond the model's depth"),
        (["--batch-size", "0"], "--batch-size 0: must be at least 1"),
        (["--langs", "deuu"], "did you mean deu"),
    ],
)
def test_retrieve_arguments(
    extra, message, tiny_model_dir, tat, tmp_path, no_weights, caplog, capsys
) -> None:
    fails_in_one_line(
        _retrieve(tiny_model_dir, tat, tmp_path / "out", *extra), message, caplog, capsys
    )
    assert not (tmp_path / "out").exists()


def test_out_must_be_a_writable_directory(
    tiny_model_dir, tat, tmp_path, no_weights, caplog, capsys, monkeypatch
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    fails_in_one_line(
        _retrieve(tiny_model_dir, tat, afile), "exists and is not a directory", caplog, capsys
    )
    fails_in_one_line(_retrieve(tiny_model_dir, tat, afile / "sub"), "is a file", caplog, capsys)
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    fails_in_one_line(
        _retrieve(tiny_model_dir, tat, tmp_path / "ro" / "x"), "not writable", caplog, capsys
    )
    assert afile.read_text() == "x"


def test_unreadable_input_file(
    tiny_model_dir, tat, tmp_path, no_weights, caplog, capsys, monkeypatch
) -> None:
    target = tat / "tatoeba.deu-eng.deu"
    original = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self == target:
            raise PermissionError(13, "Permission denied")
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    msg = f"{target}: cannot be read (Permission denied)"
    fails_in_one_line(_retrieve(tiny_model_dir, tat, tmp_path / "out"), msg, caplog, capsys)


def test_missing_second_model_found_before_encoding(
    tiny_model_dir, tat, tmp_path, no_weights, caplog, capsys
) -> None:
    argv = ["cka", *_retrieve(tiny_model_dir, tat, tmp_path / "out")[1:]]
    fails_in_one_line([*argv, "--ckpt-b", str(tmp_path / "nope")], "does not exist", caplog, capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--batch-size", "0"], "--batch-size 0: must be at least 1"),
        (["--save-steps", "0"], "--save-steps 0: must be at least 1"),
        (["--grad-accum", "0"], "--grad-accum 0: must be at least 1"),
        (["--max-steps", "-1", "--epochs", "0"], "--max-steps -1: must be at least 0"),
        (["--epochs", "0"], "--epochs 0.0: must be > 0"),
        (["--max-length", "4000"], "--max-length 4000: tiny-xlmr takes at most 128 tokens"),
        (["--task", "sst"], "did you mean sst2"),
    ],
)
def test_train_arguments(
    extra, message, tiny_model_dir, tmp_path, no_weights, caplog, capsys
) -> None:
    data = write_sst2(tmp_path / "sst2")
    argv = ["train", "--task", "sst2", "--data-dir", str(data), "--model", str(tiny_model_dir)]
    fails_in_one_line([*argv, "--out", str(tmp_path / "out"), *extra], message, caplog, capsys)
    assert not (tmp_path / "out").exists()


def _train_args(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    base = ["train", "--task", "sst2", "--data-dir", str(data), "--model", str(model)]
    return [*base, "--out", str(out), "--max-steps", "2", "--batch-size", "4", *extra]


def test_train_output_directory_rules(tiny_model_dir, tmp_path, caplog, capsys) -> None:
    data = write_sst2(tmp_path / "sst2")
    fails_in_one_line(
        _train_args(tiny_model_dir, data, tmp_path / "missing", "--resume"),
        "does not exist; drop --resume",
        caplog,
        capsys,
    )
    assert not (tmp_path / "missing").exists()
    unrelated = tmp_path / "unrelated"
    unrelated.mkdir()
    (unrelated / "notes.txt").write_text("mine")
    fails_in_one_line(
        _train_args(tiny_model_dir, data, unrelated), "not an align training run", caplog, capsys
    )
    assert sorted(p.name for p in unrelated.iterdir()) == ["notes.txt"]


def test_crashed_start_blocks_neither_rerun_nor_resume(
    tiny_model_dir, tmp_path, monkeypatch
) -> None:
    data = write_sst2(tmp_path / "sst2")

    def crash(self, start, total):
        raise RuntimeError("simulated crash before the first saved state")

    for extra in ([], ["--resume"]):
        out = tmp_path / f"run{len(extra)}"
        with monkeypatch.context() as m:
            m.setattr(align.train.loop.Loop, "run", crash)
            with pytest.raises(RuntimeError):
                main(_train_args(tiny_model_dir, data, out))
        assert (out / "train_run.json").is_file() and not (out / "checkpoints").exists()
        assert main(_train_args(tiny_model_dir, data, out, *extra)) == 0
        assert (out / "model.safetensors").is_file()


def test_bucc_test_split_without_gold(tiny_model_dir, tmp_path, capsys) -> None:
    data = build_bucc_demo(tmp_path / "bucc", ["de"], n=20, seed=0)
    (data / "de-en.test.gold").unlink()
    out = tmp_path / "out"
    argv = ["retrieve", "--task", "bucc", "--ckpt", str(tiny_model_dir), "--data-dir", str(data)]
    assert main([*argv, "--out", str(out), "--no-cache", "--layers", "1,2"]) == 0
    text = capsys.readouterr().out
    assert "f1_dev" in text and "    1 " in text and "    2 " in text  # a table, not empty
    result = json.loads((out / "retrieve-bucc-tiny-xlmr.json").read_text())
    assert {r["metric"] for r in result["scores"]} == {"threshold", "f1_dev"}
    assert (out / "retrieve-bucc-tiny-xlmr.png").is_file()


def test_interrupt_is_one_line_and_leaves_nothing(
    tiny_model_dir, tat, tmp_path, monkeypatch, caplog, capsys
) -> None:
    import align.commands.retrieve as retrieve_cmd
    from align._io import atomic_path

    target = tmp_path / "out" / "result.json"

    def interrupted(cfg):
        with atomic_path(target) as tmp:
            tmp.write_text("{half")
            raise KeyboardInterrupt

    monkeypatch.setattr(retrieve_cmd, "run", interrupted)
    with caplog.at_level(logging.ERROR):
        assert main(_retrieve(tiny_model_dir, tat, tmp_path / "out")) == 130
    assert caplog.text.count("interrupted") == 1 and "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # not even the folder made for the file


def test_files_and_directories_respect_the_umask(tiny_model_dir, tat, tmp_path) -> None:
    old = os.umask(0o022)
    try:
        out = tmp_path / "shared"
        assert main(_retrieve(tiny_model_dir, tat, out, "--no-cache", "--layers", "1")) == 0
        assert (
            main(["data", "bible", "--langs", "de", "--n", "5", "--out", str(tmp_path / "d")]) == 0
        )
    finally:
        os.umask(old)
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "d" / "tatoeba.deu-eng.deu").stat().st_mode) == 0o644


def test_float16_on_cpu_warns(caplog) -> None:
    from align.models.loading import resolve_dtype

    with caplog.at_level(logging.WARNING):
        assert resolve_dtype("float16", "cpu") == "float16"
    assert "many times slower" in caplog.text


def test_tiny_sets_warn(tiny_model_dir, tmp_path, caplog) -> None:
    data = build_tatoeba_demo(tmp_path / "one", ["de"], n=2, seed=0)
    with caplog.at_level(logging.WARNING):
        assert (
            main(_retrieve(tiny_model_dir, data, tmp_path / "o", "--no-cache", "--margin-k", "1"))
            == 0
        )
    assert "only 2 pairs: a score on so few means little" in caplog.text


def test_damaged_cache_payload_is_recomputed(tiny_encoder, tmp_path: Path) -> None:
    from conftest import CORPUS

    from align.encode import EncodeOptions, cache_fields, encode_layers
    from align.store import EmbeddingCache, key_of

    texts = list(dict.fromkeys(CORPUS))
    cache, opts = EmbeddingCache(tmp_path), EncodeOptions()
    ref = encode_layers(tiny_encoder, texts, opts, cache, progress=False)
    path = cache.path(key_of(cache_fields(tiny_encoder, opts, texts))) / "layer_001.npy"
    raw = bytearray(path.read_bytes())
    raw[-200:] = bytes(200)  # the header is intact, part of the payload is zeroed
    path.write_bytes(bytes(raw))
    assert np.load(path).shape == ref.shape[1:]  # numpy alone would trust it
    again = encode_layers(tiny_encoder, texts, opts, cache, progress=False)
    np.testing.assert_array_equal(again, ref)
    assert path.read_bytes() != bytes(raw)  # rewritten
