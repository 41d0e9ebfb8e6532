"""Any model kind (issue 29): tiny randomly initialised Llama-, Qwen2-, Gemma- and MT5-shaped
models built from configs here (no download), each with a tokenizer that has no pad token.

Every layer's pooled embedding of each sentence, batched with padding on the right and on the
left, equals that sentence encoded alone with no padding by a bare transformers call (1e-5,
float32); ``last`` picks the last real token under both paddings; a sentence's embedding does
not depend on the other sentences of its batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import CORPUS, fails_in_one_line

SENTENCES = [
    "In the beginning was the Word.",
    "And the light shineth in darkness.",
    "Blessed are the meek.",
    "He went up into a mountain, and when he was set, his disciples came unto him.",
    "Jesus wept.",
]
POOLINGS = ("last", "weighted-mean", "mean")


def _tokenizer(path: Path, bos: bool):
    """A small BPE tokenizer with beginning/end tokens and no pad token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<unk>", "<bos>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte: no unknown token
    )
    tok.train_from_iterator(CORPUS + SENTENCES, trainer)
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", 1)]
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>"
    )
    fast.save_pretrained(path)
    return fast


def _build(kind: str, root: Path) -> Path:
    import torch
    import transformers as tf

    path = root / f"tiny-{kind}"
    tokenizer = _tokenizer(path, bos=kind != "qwen2")
    vocab = len(tokenizer)
    shape = dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                 bos_token_id=1, eos_token_id=2)  # fmt: skip
    torch.manual_seed(0)
    if kind == "llama":
        model = tf.LlamaModel(tf.LlamaConfig(**shape))
    elif kind == "qwen2":
        model = tf.Qwen2Model(tf.Qwen2Config(**shape))
    elif kind == "gemma":
        model = tf.GemmaModel(tf.GemmaConfig(**shape, head_dim=8))
    else:
        config = tf.MT5Config(vocab_size=vocab, d_model=32, d_kv=8, d_ff=64, num_layers=3,
                              num_decoder_layers=2, num_heads=4, decoder_start_token_id=0,
                              eos_token_id=2, pad_token_id=0)  # fmt: skip
        model = tf.MT5Model(config)
    model.save_pretrained(path, safe_serialization=True)
    return path


@pytest.fixture(scope="module", params=["llama", "qwen2", "gemma", "mt5"])
def tiny(request, tmp_path_factory) -> tuple[str, Path]:
    return request.param, _build(request.param, tmp_path_factory.mktemp("kinds"))


def _alone(model, tokenizer, text: str, pooling: str, kind: str) -> np.ndarray:
    """A bare transformers call on one sentence, no padding: every layer pooled by hand."""
    import torch

    ids = torch.tensor([tokenizer(text)["input_ids"]])
    with torch.no_grad():
        module = model.get_encoder() if kind == "mt5" else model
        states = torch.stack(module(input_ids=ids, output_hidden_states=True).hidden_states)[:, 0]
    n = states.shape[1]
    if pooling == "last":
        return states[:, -1].numpy()
    if pooling == "mean":
        return states.mean(1).numpy()
    weights = torch.arange(1, n + 1, dtype=torch.float32)  # SGPT: position-weighted
    return ((states * weights[None, :, None]).sum(1) / weights.sum()).numpy()


@pytest.mark.parametrize("side", ["right", "left"])
def test_batched_with_padding_equals_each_sentence_alone(tiny, side: str) -> None:
    import torch

    from align.encode import EncodeOptions, forward_states, length_sorted_batches, pool
    from align.models import load_encoder

    kind, path = tiny
    encoder = load_encoder(str(path), device="cpu")
    assert encoder.kind == ("encoder-decoder" if kind == "mt5" else "decoder")
    assert encoder.pad_token_added == "<eos>"  # the tokenizer had none
    for pooling in POOLINGS:
        options = EncodeOptions(pooling=pooling, batch_size=8, padding_side=side)  # type: ignore[arg-type]
        found = {}
        for idx, batch in length_sorted_batches(encoder.tokenizer, SENTENCES, options):
            assert batch["attention_mask"].float().mean() < 1  # the batch is padded
            with torch.no_grad():
                states = torch.stack(forward_states(encoder, batch))
            pooled = pool(states, batch["attention_mask"].bool(), pooling)  # type: ignore[arg-type]
            for row, i in enumerate(idx):
                found[int(i)] = pooled[:, row].numpy()
        for i, text in enumerate(SENTENCES):
            expected = _alone(encoder.model if kind != "mt5" else _full(path), encoder.tokenizer,
                              text, pooling, kind)  # fmt: skip
            np.testing.assert_allclose(found[i], expected, atol=1e-5, rtol=1e-5,
                                       err_msg=f"{kind} {side} {pooling} sentence {i}")  # fmt: skip


def _full(path: Path):
    from transformers import AutoModel

    return AutoModel.from_pretrained(path)


def test_last_pooling_picks_the_last_real_token_under_both_paddings() -> None:
    import torch

    from align.encode import pool

    hidden = torch.arange(2 * 4, dtype=torch.float32).reshape(1, 2, 4, 1)  # [layer, batch, t, d]
    right = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]]).bool()
    left = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]]).bool()
    assert pool(hidden, right, "last")[0, :, 0].tolist() == [2.0, 7.0]
    assert pool(hidden, left, "last")[0, :, 0].tolist() == [3.0, 7.0]
    nan = hidden.clone()
    nan[0, 0, 3] = float("nan")  # a padded position's state never enters a pool
    for pooling in ("mean", "weighted-mean", "last"):
        assert torch.isfinite(pool(nan, right, pooling)).all(), pooling  # type: ignore[arg-type]


def test_a_sentence_does_not_depend_on_its_batch(tiny, tmp_path) -> None:
    """Encoded through align's whole path (stores, float16) beside different sentences."""
    from align.encode import EncodeOptions, encode_layers
    from align.models import load_encoder

    _, path = tiny
    encoder = load_encoder(str(path), device="cpu")
    options = EncodeOptions(pooling="last", batch_size=3, padding_side="left")
    one = encode_layers(encoder, SENTENCES, options)
    other = encode_layers(encoder, [SENTENCES[1], "Amen.", *SENTENCES[3:]], options)
    np.testing.assert_allclose(one[:, 1], other[:, 0], atol=2e-3)
    np.testing.assert_allclose(one[:, 3:], other[:, 2:], atol=2e-3)


def test_retrieve_reads_a_decoder_and_records_its_kind(tiny, tmp_path, caplog) -> None:
    import logging

    from align.cli import main
    from align.data.bible import build_tatoeba_demo

    kind, path = tiny
    data = build_tatoeba_demo(tmp_path / "tat", ["de"], n=30, seed=0)
    with caplog.at_level(logging.INFO):
        assert main(["retrieve", "--ckpt", str(path), "--data-dir", str(data), "--out",
                     str(tmp_path / "o"), "--no-cache", "--no-plot"]) == 0  # fmt: skip
    (out,) = (tmp_path / "o").glob("retrieve-*.json")
    result = json.loads(out.read_text(encoding="utf-8"))
    expected = "encoder-decoder" if kind == "mt5" else "decoder"
    assert result["model"]["kind"] == expected
    assert result["model"]["pad_token_added"] == "<eos>"
    pooling = "mean" if kind == "mt5" else "last"
    assert result["config"]["pooling"] in (None, pooling)
    assert result["model"]["encoding_defaults"]["pooling"] == pooling
    said = "a decoder-only model" if kind != "mt5" else "an encoder-decoder"
    assert said in caplog.text


def test_a_kind_align_cannot_read_and_contradicting_poolings_are_one_line(
    tiny, tmp_path, caplog, capsys
) -> None:
    kind, path = tiny
    vision = tmp_path / "vit"
    vision.mkdir()
    (vision / "config.json").write_text(json.dumps({"model_type": "vit", "hidden_size": 32,
                                                    "num_hidden_layers": 2}))  # fmt: skip
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(1, np.float32)}, str(vision / "model.safetensors"))
    line = fails_in_one_line(["retrieve", "--ckpt", str(vision)], "not a text model", caplog,
                             capsys)  # fmt: skip
    assert "model_type 'vit'" in line
    base = ["retrieve", "--ckpt", str(path), "--out", str(tmp_path / "o")]
    fails_in_one_line([*base, "--pooling", "last", "--exclude-special"], "contradicts --pooling "
                      "last", caplog, capsys)  # fmt: skip
    if kind != "mt5":
        fails_in_one_line([*base, "--pooling", "cls"], "decoder-only", caplog, capsys)
    fails_in_one_line([*base, "--prompt", "no slot"], "must hold {text}", caplog, capsys)


def test_the_transplant_sweep_equals_encoding_every_variant_from_scratch(tiny, tmp_path) -> None:
    from conftest import perturb_block

    from align.compare import transplant
    from align.encode import EncodeOptions, encode_layers
    from align.models import load_encoder
    from align.store import ScratchSpace

    kind, path = tiny
    base = load_encoder(str(path), device="cpu")
    tuned = load_encoder(str(perturb_block(path, tmp_path / "tuned", 2, scale=0.5)), device="cpu")
    options = EncodeOptions(pooling="mean" if kind == "mt5" else "last", batch_size=2)
    with ScratchSpace() as scratch:
        stores = transplant.sweep(base, tuned, SENTENCES, options, scratch)
        assert transplant.changed_blocks(base, tuned) == [2] and stores.noop == [1, 3]
        for variant_kind in ("graft", "restore"):
            variant = transplant.variant_encoder(base, tuned, 2, variant_kind)  # type: ignore[arg-type]
            expected = encode_layers(variant, SENTENCES, options, progress=False)
            found = stores.variant(variant_kind, 2)  # type: ignore[arg-type]
            for layer in range(2, base.num_layers + 1):
                np.testing.assert_array_equal(
                    found.layer(layer), expected[layer].astype(np.float16)
                )
        np.testing.assert_array_equal(
            stores.tuned.layer(3), encode_layers(tuned, SENTENCES, options)[3].astype(np.float16)
        )


def test_train_runs_on_a_decoder_and_its_checkpoint_feeds_retrieve_and_compare(tiny, tmp_path):
    from align.cli import main
    from align.data.bible import build_tatoeba_demo

    kind, path = tiny
    ckpt = tmp_path / "ckpt"
    argv = ["train", "--task", "bible-paraphrase", "--model", str(path), "--out", str(ckpt),
            "--max-steps", "2", "--batch-size", "4", "--max-length", "48",
            "--max-train-examples", "16", "--max-eval-examples", "8"]  # fmt: skip
    if kind == "mt5":
        assert main(argv) == 2  # an encoder-decoder is not trained (its encoder alone would be)
        return
    assert main(argv) == 0
    meta = json.loads((ckpt / "align_meta.json").read_text(encoding="utf-8"))
    assert meta["encoding"]["pooling"] == "last"  # the base's default, carried by the checkpoint
    data = build_tatoeba_demo(tmp_path / "tat", ["de"], n=24, seed=0)
    common = ["--data-dir", str(data), "--no-cache", "--no-plot", "--layers", "1,3"]
    assert main(["retrieve", "--ckpt", str(ckpt), "--out", str(tmp_path / "r"), *common]) == 0
    assert main(["compare", "--base", str(path), "--ckpt", str(ckpt), "--out", str(tmp_path / "c"),
                 "--transplant", "--transplant-max-n", "12", "--n-boot", "100",
                 "--n-boot-spearman", "20", "--knn-k", "3", *common]) == 0  # fmt: skip
    (result,) = (tmp_path / "c").glob("compare-*.json")
    records = json.loads(result.read_text(encoding="utf-8"))["scores"]
    assert any(r["metric"] == "delta_acc_xx2en" for r in records)
    assert any(r["metric"].startswith("graft_delta_") for r in records)  # the sweep ran


def test_a_decoder_trains_only_the_sentence_heads(tiny, tmp_path, caplog, capsys) -> None:
    kind, path = tiny
    if kind == "mt5":
        return
    from conftest import fails_in_one_line

    argv = ["train", "--task", "squad", "--model", str(path), "--out", str(tmp_path / "o")]
    fails_in_one_line(argv, "sentence heads only", caplog, capsys)


def test_a_preset_names_no_layer_for_a_kind_it_was_not_written_for(tiny, caplog, capsys):
    kind, path = tiny
    line = fails_in_one_line(["retrieve", "--ckpt", str(path), "--preset", "xtreme"],
                             "names no layer for it", caplog, capsys)  # fmt: skip
    assert ("decoder-only" if kind != "mt5" else "encoder-decoder") in line
