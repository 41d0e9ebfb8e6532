"""Encoders: the offline default model, local checkpoints and hub ids."""

from align.models.default_model import DEFAULT_MODEL, build_default_model
from align.models.handle import EncoderHandle
from align.models.loading import (
    OFFLINE_MODELS,
    EncodingDefaults,
    LoadedEncoder,
    ModelRef,
    describe_model,
    load_encoder,
    model_fingerprint,
    resolve_model_path,
)

__all__ = [
    "DEFAULT_MODEL",
    "OFFLINE_MODELS",
    "EncoderHandle",
    "EncodingDefaults",
    "LoadedEncoder",
    "ModelRef",
    "build_default_model",
    "describe_model",
    "load_encoder",
    "model_fingerprint",
    "resolve_model_path",
]
