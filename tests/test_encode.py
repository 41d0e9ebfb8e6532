import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CORPUS

from align.encode import EmbeddingCache, EncodeOptions, cache_key, encode_layers, pool
from align.errors import AlignError

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
    assert cache_key(other, opts, TEXTS) != cache_key(enc, opts, TEXTS)
    assert cache_key(enc, EncodeOptions(batch_size=1), TEXTS) == cache_key(enc, opts, TEXTS)


def test_corrupt_cache_file_is_recomputed(tiny_encoder, tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    opts = EncodeOptions()
    ref = encode_layers(tiny_encoder, TEXTS, opts, cache, progress=False)
    path = cache.path(cache_key(tiny_encoder, opts, TEXTS))
    path.write_bytes(b"not a numpy file")
    np.testing.assert_array_equal(
        encode_layers(tiny_encoder, TEXTS, opts, cache, progress=False), ref
    )
    assert np.load(path).shape == ref.shape  # rewritten
    assert not list(tmp_path.glob("*.tmp"))


def test_empty_input_and_bad_options(tiny_encoder) -> None:
    with pytest.raises(AlignError, match="empty"):
        encode_layers(tiny_encoder, [], EncodeOptions())
    with pytest.raises(AlignError, match="--pooling"):
        EncodeOptions(pooling="sum")  # type: ignore[arg-type]
    with pytest.raises(AlignError, match="--batch-size"):
        EncodeOptions(batch_size=0)
