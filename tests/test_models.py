import json
import shutil
from pathlib import Path

import pytest

from align.errors import AlignError
from align.models import load_encoder, model_fingerprint
from align.models.charsmap import compile_rules, decode


def test_missing_checkpoint_dir(tmp_path: Path) -> None:
    with pytest.raises(AlignError, match="does not exist"):
        load_encoder(str(tmp_path / "nope"))


def test_checkpoint_without_config_or_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    bad = tmp_path / "ckpt"
    bad.mkdir()
    with pytest.raises(AlignError, match=r"has no config\.json"):
        load_encoder(str(bad))
    shutil.copy(tiny_model_dir / "config.json", bad / "config.json")
    with pytest.raises(AlignError, match="has no safetensors weights"):
        load_encoder(str(bad))
    (bad / "config.json").write_text("{not json")
    with pytest.raises(AlignError, match="not valid JSON"):
        load_encoder(str(bad))


def test_corrupt_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    bad = tmp_path / "corrupt"
    shutil.copytree(tiny_model_dir, bad)
    weights = bad / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])  # cut inside the header
    with pytest.raises(AlignError, match=r"model\.safetensors is not a readable safetensors"):
        load_encoder(str(bad))
    shutil.copy(tiny_model_dir / "model.safetensors", weights)
    weights.write_bytes(weights.read_bytes()[:-1000])  # cut in the data
    with pytest.raises(AlignError, match=r"model.safetensors is truncated \(.* bytes; its header"):
        load_encoder(str(bad))


def test_fingerprint_tracks_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    assert model_fingerprint(copy) == model_fingerprint(tiny_model_dir)
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(data))
    assert model_fingerprint(copy) != model_fingerprint(tiny_model_dir)


def test_unknown_device() -> None:
    from align.models.loading import resolve_device

    with pytest.raises(AlignError, match="--device"):
        resolve_device("tpu")


def test_charsmap_compile_decode_round_trip() -> None:
    rules = {"Ａ": "A", "ﬁ": "fi", "\u00a0": " ", "e\u0301": "é", "\u200b": "", "Ⅻ": "XII"}
    compiled = compile_rules(rules)
    assert decode(compiled) == rules


def test_describe_reads_depth_positions_and_defaults(tiny_model_dir: Path) -> None:
    from align.models import describe_model

    ref = describe_model(str(tiny_model_dir))
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert ref.num_layers == config["num_hidden_layers"] == 3
    assert ref.max_positions == config["max_position_embeddings"] - 2  # XLM-R: after padding_idx
    assert ref.encoding.prefix == "" and ref.encoding_source == "none"


def _mapped_rss_kb(path: Path) -> int:
    """Resident KB of this process's mappings of ``path`` (from /proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5:  # a mapping's header line
            inside = line.endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(head[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").is_file(), reason="needs Linux /proc")
def test_weights_are_read_in_at_load(tmp_path: Path) -> None:
    """A mapped weight a forward pass has not touched is resident after the read-in."""
    import torch

    from align.models.loading import _read_in_weights

    path = tmp_path / "weights.bin"
    path.write_bytes(b"\0" * (64 * 4096))
    mapped = torch.from_file(str(path), shared=True, size=64 * 1024, dtype=torch.float32)
    model = torch.nn.Linear(1, 1)
    model.weight = torch.nn.Parameter(mapped.view(1024, 64), requires_grad=False)
    assert _mapped_rss_kb(path) < 64 * 4
    _read_in_weights(model)
    assert _mapped_rss_kb(path) == 64 * 4
