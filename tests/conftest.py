"""Shared fixtures: a private cache directory and a tiny random XLM-R with a fresh tokenizer."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "der schnelle braune fuchs springt über den faulen hund",
    "le renard brun rapide saute par-dessus le chien paresseux",
    "in the beginning god created the heaven and the earth",
    "im anfang schuf gott die himmel und die erde",
    "au commencement dieu créa les cieux et la terre",
    "a short one",
    "ein kurzer",
] * 4


def _refuse_constant(name: str) -> None:
    raise AssertionError(f"non-standard JSON constant {name} written")


class NetworkAttempted(AssertionError):
    pass


def _local(address) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    return isinstance(host, str) and (
        host in ("localhost", "::1", "") or host.startswith("127.") or host.startswith("/")
    )


@pytest.fixture(autouse=True, scope="session")
def _no_network() -> None:
    """No test opens a connection off this machine: the hub, a registry or any other host
    (loopback stays open: the distributed tests talk through it)."""
    import socket

    original = socket.socket.connect, socket.socket.connect_ex

    def guarded(method):
        def connect(self, address):
            if self.family != socket.AF_UNIX and not _local(address):
                raise NetworkAttempted(f"a test tried to connect to {address!r}")
            return method(self, address)

        return connect

    mp = pytest.MonkeyPatch()
    mp.setattr(socket.socket, "connect", guarded(original[0]))
    mp.setattr(socket.socket, "connect_ex", guarded(original[1]))
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("HF_DATASETS_OFFLINE", "1")
    yield
    mp.undo()


@pytest.fixture(autouse=True, scope="session")
def _strict_json_everywhere() -> None:
    """Every JSON file align writes in the test suite (results, sidecars, run records) parses
    with a strict parser: no NaN or Infinity tokens (issue 21)."""
    import json

    import align._io

    original = align._io.write_text_atomic

    def checked(path, text):
        if str(path).endswith(".json"):
            json.loads(text, parse_constant=_refuse_constant)
        return original(path, text)

    mp = pytest.MonkeyPatch()
    mp.setattr(align._io, "write_text_atomic", checked)
    yield
    mp.undo()


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep every test away from ~/.cache/align (the default model is built once per session)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("ALIGN_CACHE_DIR", str(tmp_path_factory.mktemp("align-cache")))
    yield
    mp.undo()


def make_tiny_model(
    path: Path,
    layers: int = 3,
    seed: int = 0,
    prefix: str | None = None,
    hidden: int = 32,
    corpus: list[str] | None = None,
    vocab_size: int = 120,
) -> Path:
    """A random XLM-R with a tokenizer trained on the spot (on ``corpus``, by default a few
    Latin-script sentences); ``prefix``: its encoding default."""
    import torch
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=specials, unk_token="<unk>"
    )
    tok.train_from_iterator(corpus or CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    fast = XLMRobertaTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        cls_token="<s>",
        sep_token="</s>",
    )
    torch.manual_seed(seed)
    config = XLMRobertaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=130,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    model = XLMRobertaModel(config, add_pooling_layer=False)
    model.save_pretrained(path, safe_serialization=True)
    fast.save_pretrained(path)
    meta: dict = {"tiny": True}
    if prefix is not None:
        meta["encoding"] = {"prefix": prefix, "pooling": "mean"}
    (path / "align_meta.json").write_text(json.dumps(meta))
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-xlmr")


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model_dir: Path):
    from align.models import load_encoder

    return load_encoder(str(tiny_model_dir), device="cpu")


def perturb_block(
    source: Path, target: Path, block: int, scale: float = 0.5, seed: int = 0
) -> Path:
    """A copy of the model at ``source`` with Gaussian noise on block ``block`` (1-based) only."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, target)
    state = load_file(str(target / "model.safetensors"))
    generator = torch.Generator().manual_seed(seed)
    where = next(w for w in ("encoder.layer", "layers", "h", "encoder.block")
                 if any(k.startswith(f"{w}.") for k in state))  # fmt: skip
    prefix = f"{where}.{block - 1}."
    for key in state:
        if key.startswith(prefix):
            state[key] = state[key] + scale * torch.randn(state[key].shape, generator=generator)
    save_file(state, str(target / "model.safetensors"), {"format": "pt"})
    return target


@pytest.fixture
def no_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to load model weights fails the test: the check must come first."""

    import align.models.loading as align_models_loading
    import align.train.trainer as align_train_trainer

    def refuse(*args, **kwargs):
        raise AssertionError("model weights were loaded before the argument was checked")

    monkeypatch.setattr(align_models_loading, "load_model_and_tokenizer", refuse)
    monkeypatch.setattr(align_train_trainer, "load_model_and_tokenizer", refuse)


@pytest.fixture(scope="module")
def tat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small Bible Tatoeba set (German, 40 pairs) in the XTREME layout."""
    from align.data.bible import build_tatoeba_demo

    return build_tatoeba_demo(tmp_path_factory.mktemp("tat"), ["de"], n=40, seed=0)


def fails_in_one_line(argv: list[str], message: str, caplog, capsys) -> str:
    """Run ``align argv``: exit status 2, exactly one error line holding ``message``, no
    traceback; the line."""
    from align.cli import main

    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert main(argv) == 2
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    line = errors[0].getMessage()
    assert message in line and "\n" not in line, line
    assert "Traceback" not in caplog.text + capsys.readouterr().err
    return line


def run_with_file_size_limit(argv: list[str], limit: int = 20000) -> subprocess.CompletedProcess:
    """Run ``align argv`` in a child process that may not write a file past ``limit`` bytes
    (``ulimit -f``: a full disk, without filling one)."""
    code = (
        "import resource, sys; from align.cli import main; "
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
        f"sys.exit(main({argv!r}))"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
