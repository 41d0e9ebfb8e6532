import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CORPUS

from align.encode import (
    EncodeOptions,
    cache_fields,
    encode_layers,
    encode_to_store,
    length_sorted_batches,
    pool,
)
from align.errors import AlignError
from align.store import EmbeddingCache, LayerWriter, ScratchSpace, key_of

TEXTS = list(dict.fromkeys(CORPUS))


def _single_layer_forward(encoder, texts: list[str], layer: int) -> np.ndarray:
    """Mean-pooled output of a model truncated to ``layer`` blocks, one text at a time."""
    model = copy.deepcopy(encoder.model)
    model.encoder.layer = model.encoder.layer[:layer]
    out = []
    with torch.no_grad():
        for text in texts:
            batch = encoder.tokenizer(text, return_tensors="pt")
            hidden = (
                model(**batch).last_hidden_state if layer else model.embeddings(batch["input_ids"])
            )
            out.append(hidden[0].mean(0).numpy())
    return np.stack(out)


def test_all_layers_equal_single_layer_forward(tiny_encoder) -> None:
    all_layers = encode_layers(tiny_encoder, TEXTS, EncodeOptions(batch_size=3), progress=False)
    assert all_layers.shape == (tiny_encoder.num_layers + 1, len(TEXTS), 32)
    for layer in range(tiny_encoder.num_layers + 1):
        single = _single_layer_forward(tiny_encoder, TEXTS, layer)
        np.testing.assert_allclose(
            all_layers[layer], single, atol=2e-3, rtol=2e-3
        )  # float16 on disk


def test_order_and_batch_size_invariance(tiny_encoder) -> None:
    opts = EncodeOptions(batch_size=1)
    ref = encode_layers(tiny_encoder, TEXTS, opts, progress=False)
    perm = np.random.default_rng(0).permutation(len(TEXTS))
    shuffled = encode_layers(
        tiny_encoder, [TEXTS[i] for i in perm], EncodeOptions(batch_size=4), progress=False
    )
    np.testing.assert_allclose(shuffled, ref[:, perm], atol=2e-3)


def test_pooling_modes() -> None:
    hidden = torch.arange(2 * 1 * 3 * 2, dtype=torch.float32).reshape(2, 1, 3, 2)
    mask = torch.tensor([[True, True, False]])
    assert torch.equal(pool(hidden, mask, "cls"), hidden[:, :, 0])
    assert torch.allclose(pool(hidden, mask, "mean"), hidden[:, :, :2].mean(2))
    assert torch.equal(pool(hidden, mask, "max"), hidden[:, :, 1])  # padding (larger) ignored


def test_exclude_special_changes_mean(tiny_encoder) -> None:
    a = encode_layers(tiny_encoder, TEXTS[:2], EncodeOptions(), progress=False)
    b = encode_layers(tiny_encoder, TEXTS[:2], EncodeOptions(exclude_special=True), progress=False)
    assert not np.allclose(a, b)


class _CountingModel(torch.nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model, self.config, self.calls = model, model.config, 0

    def forward(self, *args, **kwargs):
        self.calls += 1
        return self.model(*args, **kwargs)


def test_cache_reused_and_invalidated(tiny_encoder, tmp_path: Path) -> None:
    enc = copy.copy(tiny_encoder)
    enc.model = _CountingModel(tiny_encoder.model)
    cache = EmbeddingCache(tmp_path)
    opts = EncodeOptions(batch_size=64)
    first = encode_layers(enc, TEXTS, opts, cache, progress=False)
    assert enc.model.calls == 1
    again = encode_layers(enc, TEXTS, opts, cache, progress=False)
    assert enc.model.calls == 1  # reused: no forward pass
    np.testing.assert_array_equal(first, again)  # cached and fresh runs agree exactly
    for changed in (
        EncodeOptions(batch_size=64, prefix="query: "),
        EncodeOptions(batch_size=64, pooling="cls"),
        EncodeOptions(batch_size=64, max_length=4),
    ):
        encode_layers(enc, TEXTS, changed, cache, progress=False)
    assert enc.model.calls == 4
    encode_layers(enc, TEXTS[:-1], opts, cache, progress=False)  # different texts
    assert enc.model.calls == 5
    other = copy.copy(enc)
    other.fingerprint = "0" * 64  # different weights -> different key
    assert key_of(cache_fields(other, opts, TEXTS)) != key_of(cache_fields(enc, opts, TEXTS))
    same = cache_fields(enc, EncodeOptions(batch_size=1), TEXTS)
    assert key_of(same) == key_of(cache_fields(enc, opts, TEXTS))  # batch size: same numbers


def test_tokenizer_is_part_of_the_key(tiny_encoder, tmp_path: Path) -> None:
    """A checkpoint whose tokenizer changed (same weights) must not hit the old entry."""
    import dataclasses

    enc = copy.copy(tiny_encoder)
    enc.model = _CountingModel(tiny_encoder.model)
    cache = EmbeddingCache(tmp_path)
    encode_layers(enc, TEXTS, EncodeOptions(), cache, progress=False)
    edited = copy.copy(enc)
    edited.ref = dataclasses.replace(enc.ref, tokenizer_hash="f" * 64)
    encode_layers(edited, TEXTS, EncodeOptions(), cache, progress=False)
    assert enc.model.calls == 2


def test_a_store_copied_under_another_key_is_refused(tiny_encoder, tmp_path: Path, caplog) -> None:
    import shutil

    enc = copy.copy(tiny_encoder)
    enc.model = _CountingModel(tiny_encoder.model)
    cache = EmbeddingCache(tmp_path)
    a, b = EncodeOptions(), EncodeOptions(prefix="query: ")
    encode_layers(enc, TEXTS, a, cache, progress=False)
    target = cache.path(key_of(cache_fields(enc, b, TEXTS)))
    shutil.copytree(cache.path(key_of(cache_fields(enc, a, TEXTS))), target)
    out = encode_layers(enc, TEXTS, b, cache, progress=False)
    assert enc.model.calls == 2 and "written for other inputs" in caplog.text
    fresh = encode_layers(enc, TEXTS, b, None, progress=False)
    np.testing.assert_array_equal(out, fresh)


def test_corrupt_cache_file_is_recomputed(tiny_encoder, tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    opts = EncodeOptions()
    ref = encode_layers(tiny_encoder, TEXTS, opts, cache, progress=False)
    path = cache.path(key_of(cache_fields(tiny_encoder, opts, TEXTS))) / "layer_002.npy"
    path.write_bytes(b"not a numpy file")
    np.testing.assert_array_equal(
        encode_layers(tiny_encoder, TEXTS, opts, cache, progress=False), ref
    )
    assert np.load(path).shape == ref.shape[1:]  # rewritten
    assert not list(tmp_path.glob("*.tmp"))


def test_each_layer_is_a_file_of_its_own(tiny_encoder, tmp_path: Path) -> None:
    with ScratchSpace() as scratch:
        store = encode_to_store(tiny_encoder, TEXTS, EncodeOptions(batch_size=3), None, scratch)
        files = sorted(p.name for p in store.root.glob("layer_*.npy"))
        assert files == [f"layer_{i:03d}.npy" for i in range(tiny_encoder.num_layers + 1)]
        whole = encode_layers(tiny_encoder, TEXTS, EncodeOptions(batch_size=7), progress=False)
        for layer in store.layers:
            on_disk = np.load(store.root / f"layer_{layer:03d}.npy")  # readable on its own
            assert on_disk.dtype == np.float16
            np.testing.assert_array_equal(on_disk.astype(np.float32), whole[layer])


def test_batches_equal_what_the_tokenizer_pads(tiny_encoder) -> None:
    tok = tiny_encoder.tokenizer
    opts = EncodeOptions(batch_size=5, max_length=9)
    for idx, batch in length_sorted_batches(tok, TEXTS, opts):
        enc = tok(
            [TEXTS[i] for i in idx], truncation=True, max_length=9, return_special_tokens_mask=True
        )
        features = [{k: enc[k][j] for k in enc} for j in range(len(idx))]
        expected = tok.pad(features, return_tensors="pt")
        for key in ("input_ids", "attention_mask", "special_tokens_mask"):
            assert torch.equal(batch[key], expected[key]), key


def test_writer_refuses_a_set_with_rows_missing(tmp_path: Path) -> None:
    writer = LayerWriter(tmp_path / "w", 3, 2, [0])
    writer.write(np.array([0, 2]), np.zeros((1, 2, 2), np.float16))
    with pytest.raises(AlignError, match="every position"):
        writer.finish()


def test_empty_input_and_bad_options(tiny_encoder) -> None:
    with pytest.raises(AlignError, match="empty"):
        encode_layers(tiny_encoder, [], EncodeOptions())
    with pytest.raises(AlignError, match="pooling"):
        EncodeOptions(pooling="sum")  # type: ignore[arg-type]
    with pytest.raises(AlignError, match="batch_size"):
        EncodeOptions(batch_size=0)


def test_a_handle_loads_weights_only_on_a_cache_miss(
    tiny_model_dir: Path, tiny_encoder, tmp_path: Path, monkeypatch
) -> None:
    """A model described from its files has the loaded model's identity; encoding through it
    loads the weights on a miss, and a later hit (after ``release``) loads nothing."""
    import align.models.handle as handle_module
    from align.encode import EncodeOptions, encode_to_store
    from align.models import EncoderHandle, describe_model

    handle = EncoderHandle(describe_model(str(tiny_model_dir)), "cpu")
    assert not handle.loaded
    assert handle.fingerprint == tiny_encoder.fingerprint
    assert (handle.num_layers, handle.hidden_size) == (
        tiny_encoder.num_layers,
        tiny_encoder.hidden_size,
    )
    cache = EmbeddingCache(tmp_path / "cache")
    first = encode_to_store(handle, CORPUS, EncodeOptions(), cache, progress=False)
    assert handle.loaded and handle.load_s > 0
    handle.release()
    assert not handle.loaded

    def refuse(*args, **kwargs):
        raise AssertionError("weights loaded on a cache hit")

    monkeypatch.setattr(handle_module, "load_encoder", refuse)
    again = encode_to_store(handle, CORPUS, EncodeOptions(), cache, progress=False)
    assert not handle.loaded and again.root == first.root
    np.testing.assert_array_equal(again.layer(2), first.layer(2))
    with pytest.raises(AssertionError, match="cache hit"):
        encode_to_store(handle, CORPUS[:3], EncodeOptions(), cache, progress=False)
