"""What kind of model a checkpoint is, read from its ``config.json`` before any weight loads.

- ``encoder``: XLM-R, BERT and kin (every token sees every other; ``mean`` pooling by default);
- ``decoder``: a decoder-only language model (Llama, Qwen2, Gemma, Mistral, BLOOM, GPT-2, ...):
  under its causal mask a token sees only those before it, so the last real token is the one
  that has read the whole sentence (``last`` pooling by default);
- ``encoder-decoder``: mT5, NLLB, mBART, ...: the encoder is used (``mean`` by default).

Anything else (vision, audio, a config without a vocabulary) is refused in one line naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from align.errors import AlignError

ModelKind = Literal["encoder", "decoder", "encoder-decoder"]
KINDS: tuple[ModelKind, ...] = ("encoder", "decoder", "encoder-decoder")

_ENCODER_DECODER = {
    "t5", "mt5", "umt5", "longt5", "bart", "mbart", "m2m_100", "nllb-moe", "marian", "pegasus",
    "plbart", "fsmt", "led", "blenderbot", "switch_transformers",
}  # fmt: skip
_DECODER = {
    "llama", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2", "gemma3_text",
    "mistral", "mixtral", "bloom", "gpt2", "gpt_neox", "gptj", "opt", "xglm", "phi", "phi3",
    "falcon", "olmo", "olmo2", "stablelm", "cohere", "cohere2", "starcoder2", "granite",
}  # fmt: skip
_NOT_TEXT = {
    "vit", "clip", "clip_vision_model", "siglip", "siglip_vision_model", "dinov2", "convnext",
    "resnet", "swin", "beit", "deit", "detr", "sam", "whisper", "wav2vec2", "hubert", "wavlm",
    "llava", "idefics", "paligemma", "qwen2_vl", "mllama",
}  # fmt: skip
_LAYERS = ("num_hidden_layers", "num_layers", "n_layer", "encoder_layers")
_WIDTH = ("hidden_size", "d_model", "n_embd", "n_embed")
_POSITIONS = ("max_position_embeddings", "n_positions")


def kind_of(config: dict[str, Any], where: Path | str) -> ModelKind:
    """The kind of the model ``config`` (its ``config.json``) describes; anything align cannot
    read as text is refused, naming the file and what it found."""
    model_type = str(config.get("model_type", ""))
    archs = [str(a) for a in config.get("architectures") or []]
    shown = f"model_type {model_type!r}" + (f" ({', '.join(archs)})" if archs else "")
    if model_type in _NOT_TEXT or "vision_config" in config or "vocab_size" not in config:
        raise AlignError(
            f"{where}: {shown} is not a text model align can read: it reads encoders (XLM-R, "
            "BERT, ...), decoder-only LMs (Llama, Qwen2, Gemma, Mistral, BLOOM, ...) and the "
            "encoders of encoder-decoders (mT5, NLLB, ...)"
        )
    if config.get("is_encoder_decoder") or model_type in _ENCODER_DECODER:
        return "encoder-decoder"
    if model_type in _DECODER or any(a.endswith("ForCausalLM") for a in archs):
        return "decoder"
    return "encoder"


def dimensions(config: dict[str, Any], where: Path | str) -> tuple[int, int, int]:
    """(layers, width, positions) under whichever names the config uses (``num_layers`` and
    ``d_model`` in T5, ``n_layer`` and ``n_embd`` in GPT-2, ...); positions 512 where the model
    has no absolute positions (T5's relative ones)."""

    def first(names: tuple[str, ...]) -> int | None:
        return next((int(config[n]) for n in names if isinstance(config.get(n), int)), None)

    layers, width = first(_LAYERS), first(_WIDTH)
    missing = [
        name for name, v in (("num_hidden_layers", layers), ("hidden_size", width)) if v is None
    ]
    if missing:
        raise AlignError(f"{where}: missing {', '.join(missing)}")
    return layers, width, first(_POSITIONS) or 512  # type: ignore[return-value]
