"""The retrieval tasks, one module each, in one registry (as the training tasks have).

Tatoeba and BUCC score each language against English; ``parallel`` scores every pair of
languages of a multi-way set (FLORES+, the Bible) together. A new task is one new module with a
:class:`~align.retrieval.tasks.base.RetrievalTask` subclass, registered here.
"""

from __future__ import annotations

import difflib

from align.errors import AlignError
from align.retrieval.tasks.base import (
    Parallel,
    RetrievalTask,
    TaskOutcomes,
    TaskParams,
)
from align.retrieval.tasks.bucc import Bucc, BuccData
from align.retrieval.tasks.multiway import MultiWay
from align.retrieval.tasks.tatoeba import Tatoeba

_REGISTRY: dict[str, RetrievalTask] = {}


def register(task: RetrievalTask) -> RetrievalTask:
    if task.name in _REGISTRY:
        raise AlignError(f"retrieval task {task.name!r} is already registered")
    _REGISTRY[task.name] = task
    return task


def names() -> list[str]:
    return list(_REGISTRY)


def get(name: str) -> RetrievalTask:
    """The task called ``name``; an unknown name gets the closest known ones suggested."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(name, names(), n=2, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise AlignError(f"task {name!r}: unknown{hint} (known: {', '.join(names())})")


def find(name: str) -> RetrievalTask | None:
    return _REGISTRY.get(name)


register(Tatoeba())
register(Bucc())
register(MultiWay())

__all__ = [
    "Bucc",
    "BuccData",
    "MultiWay",
    "Parallel",
    "RetrievalTask",
    "TaskOutcomes",
    "TaskParams",
    "Tatoeba",
    "find",
    "get",
    "names",
    "register",
]
