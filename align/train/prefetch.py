"""Micro-batches made ahead on a thread of their own, so the device never waits for collation.

``Prefetcher(make, items, depth)`` calls ``make(item)`` for each item in order on a background
thread and keeps at most ``depth`` results waiting; iterating it yields them in order. On CUDA
``make`` returns batches in pinned host memory, whose copies to the device then run without
blocking. An error in ``make`` is raised where the result would have been taken; ``close()``
(or leaving a ``with`` block) stops the thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_DONE = object()


class Prefetcher:
    def __init__(self, make: Callable[[Any], Any], items: Iterable[Any], depth: int = 4) -> None:
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self.stopping = threading.Event()
        self.thread = threading.Thread(
            target=self._run, args=(make, items), name="align-prefetch", daemon=True
        )
        self.thread.start()

    def _put(self, value: Any) -> bool:
        while not self.stopping.is_set():
            try:
                self.queue.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, make: Callable[[Any], Any], items: Iterable[Any]) -> None:
        try:
            for item in items:
                if not self._put((make(item), None)):
                    return
        except BaseException as exc:  # handed to the consumer
            self._put((None, exc))
            return
        self._put((_DONE, None))

    def __iter__(self) -> Iterator[Any]:
        while True:
            value, error = self.queue.get()
            if error is not None:
                raise error
            if value is _DONE:
                return
            yield value

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
