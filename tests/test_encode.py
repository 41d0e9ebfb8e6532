import copy
import itertools
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


def _store_bytes(store) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(store.root.iterdir()) if p.suffix == ".npy"}


def test_a_slow_writer_does_not_hold_up_the_forward_pass(tiny_encoder, monkeypatch) -> None:
    """Layer files are written on a thread of their own: the first batch's write is held until
    the forward pass has run the next batches (a serial loop would wait here until the timeout
    and fail), and the store is byte for byte the serial path's."""
    import threading

    import align.encode as encode_module
    from align.store import LayerWriter

    opts = EncodeOptions(batch_size=2)  # 4 batches
    forwards, held = [], threading.Event()
    forward = encode_module._forward_all_layers

    def counted(*args, **kwargs):
        forwards.append(1)
        if len(forwards) >= 3:
            held.set()
        return forward(*args, **kwargs)

    write = LayerWriter.write
    released = []

    def slow_write(self, positions, pooled):
        if not released:
            released.append(held.wait(timeout=20))  # False: the forward pass was held up
        return write(self, positions, pooled)

    monkeypatch.setattr(encode_module, "_forward_all_layers", counted)
    monkeypatch.setattr(LayerWriter, "write", slow_write)
    with ScratchSpace() as scratch:
        background = encode_to_store(tiny_encoder, TEXTS, opts, None, scratch, progress=False)
        assert released == [True] and len(forwards) == -(-len(TEXTS) // 2)
        released.clear()
        serial = encode_to_store(
            tiny_encoder, TEXTS, opts, None, scratch, progress=False, queue_depth=0
        )
        assert serial.root != background.root
        assert _store_bytes(serial) == _store_bytes(background)
        assert serial.meta["sha256"] == background.meta["sha256"]


def test_a_failing_writer_fails_the_encoding_and_leaves_nothing(
    tiny_encoder, tmp_path: Path, monkeypatch
) -> None:
    from align.store import LayerWriter

    def full_disk(self, positions, pooled):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(LayerWriter, "write", full_disk)
    cache = EmbeddingCache(tmp_path / "cache")
    with pytest.raises(OSError, match="No space"):
        encode_to_store(tiny_encoder, TEXTS, EncodeOptions(batch_size=2), cache, progress=False)
    assert list((tmp_path / "cache").iterdir()) == []  # no store, no scratch folder


def test_non_finite_embeddings_are_refused_after_the_last_batch(tiny_encoder, tmp_path) -> None:
    """The NaN/inf check accumulates on the device and is read once; the store is not kept."""
    import align.encode as encode_module

    forward = encode_module._forward_all_layers
    calls = []

    def one_bad_batch(*args, **kwargs):
        pooled = forward(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            pooled[3, 0, 1] = float("inf")
        return pooled

    cache = EmbeddingCache(tmp_path / "cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(encode_module, "_forward_all_layers", one_bad_batch)
        with pytest.raises(AlignError, match="NaN/inf"):
            encode_to_store(tiny_encoder, TEXTS, EncodeOptions(batch_size=2), cache, progress=False)
    assert list((tmp_path / "cache").iterdir()) == []


@pytest.mark.parametrize("budget", [40, 100, 10**6])
def test_token_budget_batches(tiny_encoder, budget) -> None:
    """Batches by padded tokens: length-sorted, each within the budget at its first (longest)
    width (or one sentence), every text once; the numbers equal sentence batches' to float16."""
    from align.encode import batch_bounds, tokenize

    opts = EncodeOptions(batch_tokens=budget, max_length=32)
    tok = tokenize(tiny_encoder.tokenizer, TEXTS, opts)
    order = np.argsort(-tok.lengths, kind="stable")
    bounds = batch_bounds(tok.lengths[order], opts)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(TEXTS)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    for start, stop in bounds:
        width = tok.lengths[order[start]]
        assert stop - start == 1 or (stop - start) * width <= budget
        assert stop == len(TEXTS) or (stop - start + 1) * width > budget
    batches = length_sorted_batches(tiny_encoder.tokenizer, TEXTS, opts)
    seen = np.concatenate([idx for idx, _ in batches])
    assert sorted(seen.tolist()) == list(range(len(TEXTS)))
    one_by_one = EncodeOptions(batch_size=1, max_length=32)
    ref = encode_layers(tiny_encoder, TEXTS, one_by_one, progress=False)
    got = encode_layers(tiny_encoder, TEXTS, opts, progress=False)
    np.testing.assert_allclose(got, ref, atol=2e-3)
    with pytest.raises(AlignError, match="batch_tokens"):
        EncodeOptions(batch_tokens=-1)


def test_pooling_one_layer_at_a_time_equals_pooling_their_stack() -> None:
    """The per-layer pool (no stacked copy of every token state) is bit for bit the stacked
    one, in float32 and bf16, for every pooling, and rounds to float16 as numpy does."""
    from align.encode import pool_layers

    gen = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16):
        states = [(torch.randn(6, 17, 24, generator=gen) * 4).to(dtype) for _ in range(5)]
        mask = torch.rand(6, 17, generator=gen) > 0.3
        mask[:, 0] = True
        for pooling in ("mean", "max", "cls"):
            stacked = pool(torch.stack(states), mask, pooling).float().numpy().astype(np.float16)
            one_by_one = pool_layers(states, mask, pooling).numpy()
            assert one_by_one.dtype == np.float16
            np.testing.assert_array_equal(one_by_one.view(np.uint16), stacked.view(np.uint16))


def test_the_4d_padding_mask_attends_as_the_2d_one(tiny_encoder) -> None:
    """The mask CUDA encoding and training hand the model (no read back per forward pass)
    gives the states of transformers' own 2-D route on a padded batch."""
    from align.models.attention import padding_mask_4d

    model = tiny_encoder.model
    assert model.config._attn_implementation == "sdpa"
    batch = tiny_encoder.tokenizer(TEXTS, padding=True, return_tensors="pt")
    assert not batch["attention_mask"].all()  # padding present
    mask = padding_mask_4d(model, batch["attention_mask"])
    assert mask.shape == (len(TEXTS), 1, 1, batch["input_ids"].shape[1])
    with torch.no_grad():
        plain = model(**batch, output_hidden_states=True).hidden_states
        four = model(batch["input_ids"], attention_mask=mask, output_hidden_states=True)
    keep = batch["attention_mask"].bool()
    for a, b in zip(plain, four.hidden_states, strict=True):
        torch.testing.assert_close(a[keep], b[keep], rtol=1e-5, atol=1e-5)
    eager = type("Eager", (), {"config": type("C", (), {"_attn_implementation": "eager"})()})()
    assert padding_mask_4d(eager, batch["attention_mask"]) is batch["attention_mask"]


def test_a_prompt_needs_its_slot_and_wraps_the_prefixed_text() -> None:
    with pytest.raises(AlignError, match="must hold"):
        EncodeOptions(prompt="no slot")
    with pytest.raises(AlignError, match="padding_side"):
        EncodeOptions(padding_side="middle")  # type: ignore[arg-type]
    options = EncodeOptions(prefix="query: ", prompt='This sentence : "{text}" means')
    assert options.text_of("a b") == 'This sentence : "query: a b" means'
    assert EncodeOptions(prefix="query: ").text_of("a b") == "query: a b"
