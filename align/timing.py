"""Where a run's time goes: seconds per named stage, recorded by the library as it works.

A command opens one :func:`recording` around its work; library code marks its stages with
``with stage("bootstrap"):`` and pays nothing when no recording is open. Stages nest and are
counted exclusively (an inner stage's seconds are not counted again in the outer one), so the
stages of a run add up to the time spent inside them.

    with recording() as seconds:
        compare_models(...)
    seconds  # {"outcomes_s": 12.1, "bootstrap_s": 30.5, "resampled_cka_s": 4.2, ...}
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

_ACTIVE: ContextVar[_Recorder | None] = ContextVar("align_timing", default=None)


class _Recorder:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.inner: list[float] = []  # per open stage: seconds spent in its inner stages


@contextlib.contextmanager
def recording() -> Iterator[dict[str, float]]:
    """Record the stages run inside the block into the dict it yields (``{name}_s`` keys)."""
    recorder = _Recorder()
    token = _ACTIVE.set(recorder)
    try:
        yield recorder.seconds
    finally:
        _ACTIVE.reset(token)


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Count the block's seconds, less those of the stages inside it, to ``{name}_s``."""
    recorder = _ACTIVE.get()
    if recorder is None:
        yield
        return
    recorder.inner.append(0.0)
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        inner = recorder.inner.pop()
        key = f"{name}_s"
        recorder.seconds[key] = recorder.seconds.get(key, 0.0) + elapsed - inner
        if recorder.inner:
            recorder.inner[-1] += elapsed
