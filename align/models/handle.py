"""A model described from its files whose weights load only when something must be encoded."""

from __future__ import annotations

import logging
import time

from align.models.loading import (
    DType,
    LoadedEncoder,
    ModelRef,
    load_encoder,
    model_fingerprint,
    resolve_device,
    resolve_dtype,
)
from align.progress import step

log = logging.getLogger(__name__)


class EncoderHandle:
    """A described model whose weights load on first use of :meth:`load` and go on
    :meth:`release`. Its identity (name, path, fingerprint, depth, width, dtype, tokenizer hash)
    comes from its files, so a run whose embeddings are all cached never loads the weights."""

    def __init__(self, ref: ModelRef, device: str = "auto", dtype: DType = "auto") -> None:
        self.ref = ref
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self._loaded: LoadedEncoder | None = None
        self._fingerprint: str | None = None
        self.load_s = 0.0  # seconds spent loading weights, every load counted

    name = property(lambda self: self.ref.name)
    path = property(lambda self: self.ref.path)
    num_layers = property(lambda self: self.ref.num_layers)
    hidden_size = property(lambda self: self.ref.hidden_size)
    default_prefix = property(lambda self: self.ref.encoding.prefix)

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = model_fingerprint(self.ref.path)
        return self._fingerprint

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def load(self) -> LoadedEncoder:
        """The model and tokenizer in memory (loaded once until :meth:`release`)."""
        if self._loaded is None:
            what = f"loading {self.name} ({self.ref.num_layers} layers) on {self.device}"
            start = time.perf_counter()
            with step(what):
                self._loaded = load_encoder(self.ref, self.device, self.dtype)  # type: ignore[arg-type]
            self.load_s += time.perf_counter() - start
            self._fingerprint = self._loaded.fingerprint
        return self._loaded

    def release(self) -> None:
        """Let the weights and the tokenizer go (a later :meth:`load` reads them again)."""
        if self._loaded is not None:
            from align._memory import trim_heap

            self._loaded = None
            trim_heap()  # the tokenizer's many small blocks, freed in the middle of the heap
