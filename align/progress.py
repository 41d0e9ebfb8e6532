"""What a long stage says while it runs: a progress bar on a terminal, two log lines elsewhere.

Every stage that can take more than a few seconds (encoding a set, scoring layers, mining,
intervals, the transplant sweep, a CKA matrix, training's evaluation) runs inside one
:func:`step`. With ``progress`` (the CLI sets it when stderr is a terminal) it draws a tqdm bar;
without, it logs one INFO line when the stage starts (what, how much, which model) and one when
it ends, with its time, so that a log of a run without a terminal shows where the time went.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator

log = logging.getLogger("align")


def _silent(n: int = 1) -> None:
    """The update of a stage without a bar."""


@contextlib.contextmanager
def step(
    what: str,
    total: int | None = None,
    unit: str = "it",
    progress: bool = False,
) -> Iterator[Callable[[int], object]]:
    """Run a stage: yields ``update(n)`` to advance its bar (a no-op without one)."""
    if progress:
        from tqdm.auto import tqdm

        with tqdm(total=total, desc=what, unit=unit, leave=False) as bar:
            yield bar.update
        return
    log.info("%s ...", what)
    start = time.perf_counter()
    yield _silent
    log.info("%s: done in %.1f s", what, time.perf_counter() - start)
