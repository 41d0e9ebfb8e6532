"""Keeping the forward pass busy while batches reach the disk.

Encoding hands each batch's pooled layers (float16, on the model's device) to a
:class:`BackgroundWriter`: on CUDA the copy to the host goes into a pinned buffer without
blocking (an event marks when it has landed), and a writer thread appends the rows to the layer
files behind a bounded queue, so the next forward pass runs while the last batch is written and
the GPU never waits for the host. On the CPU the pooled tensor is already in host memory and
the thread only writes. A slow disk holds up encoding only once the queue is full.

A failure anywhere (the writer's, the forward pass's, Ctrl-C) stops the thread before the
caller lets go of the store's directory: nothing is written after the caller's clean-up.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import numpy as np

from align.store import LayerWriter

QUEUE_DEPTH = 4  # batches in flight between the forward pass and the disk
_STOP = object()


class _PinnedBuffers:
    """Reusable page-locked host buffers for device-to-host copies (CUDA); one is handed out
    per batch in flight and comes back once the writer has taken its rows."""

    def __init__(self, count: int) -> None:
        self.free: queue.Queue = queue.Queue()
        self.count = count
        self.made = 0

    def take(self, numel: int):
        """A buffer of at least ``numel`` float16 values (waits while every one is in flight)."""
        import torch

        while True:
            try:
                buf = self.free.get_nowait() if self.made < self.count else self.free.get()
            except queue.Empty:
                self.made += 1
                return torch.empty(numel, dtype=torch.float16, pin_memory=True)
            if buf.numel() >= numel:
                return buf
            self.made -= 1  # too small for this batch: let it go, and make one larger
            numel = max(numel, buf.numel() * 3 // 2)

    def give(self, buf) -> None:
        self.free.put(buf)


class BackgroundWriter:
    """Writes pooled batches into ``writer`` on a thread of its own, behind a bounded queue.

    ``put(positions, pooled)`` takes the batch's input positions and its float16 ``[layers,
    batch, d]`` tensor on any device; it returns as soon as the batch is queued (blocking only
    while ``depth`` batches wait). ``close()`` waits for every batch to be written; the writer's
    first error is raised from the next ``put`` or from ``close``. Used as a context manager, an
    exception in the block stops the thread without writing the batches still queued.
    """

    def __init__(self, writer: LayerWriter, depth: int = QUEUE_DEPTH) -> None:
        self.writer = writer
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self.error: BaseException | None = None
        self.stopping = threading.Event()
        self.pinned = _PinnedBuffers(depth + 2)
        self.thread = threading.Thread(target=self._run, name="align-layer-writer", daemon=True)
        self.thread.start()

    def put(self, positions: np.ndarray, pooled: Any) -> None:
        self._raise()
        if pooled.device.type == "cuda":
            import torch

            host = self.pinned.take(pooled.numel())
            view = host[: pooled.numel()].view(pooled.shape)
            view.copy_(pooled, non_blocking=True)
            landed = torch.cuda.Event()
            landed.record()
            item = (positions, view, landed, host)
        else:
            item = (positions, pooled, None, None)
        while not self._offer(item):
            self._raise()

    def _offer(self, item) -> bool:
        try:
            self.queue.put(item, timeout=0.1)
            return True
        except queue.Full:
            return False

    def _run(self) -> None:
        while (item := self.queue.get()) is not _STOP:
            if self.stopping.is_set() or self.error is not None:
                continue  # drain without writing
            positions, pooled, landed, host = item
            try:
                if landed is not None:
                    landed.synchronize()
                rows = pooled.numpy()
                self.writer.write(positions, rows.copy() if host is not None else rows)
            except BaseException as exc:  # raised in the caller's thread by put/close
                self.error = exc
            finally:
                if host is not None:
                    self.pinned.give(host)

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Every queued batch written (and the writer's error, if any, raised)."""
        self.queue.put(_STOP)
        self.thread.join()
        self._raise()

    def abort(self) -> None:
        """Stop without writing what is still queued; returns once the thread has ended."""
        self.stopping.set()
        self.queue.put(_STOP)
        self.thread.join()

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
