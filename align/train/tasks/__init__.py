"""The intermediate-task registry. Adding a task = one small module + its ``TASKS`` list here."""

from __future__ import annotations

import difflib
import logging
from pathlib import Path

from align.errors import AlignError, install_hint
from align.train.tasks import bible_paraphrase, choice, classification, squad, tagging
from align.train.tasks.base import Example, TaskSpec, find_file

log = logging.getLogger(__name__)

REGISTRY: dict[str, TaskSpec] = {}


def register(spec: TaskSpec) -> TaskSpec:
    """Add a task; a second task under one name is refused."""
    if spec.name in REGISTRY:
        raise AlignError(f"task {spec.name!r} is registered twice")
    REGISTRY[spec.name] = spec
    return spec


for _module in (classification, choice, squad, tagging, bible_paraphrase):
    for _spec in _module.TASKS:
        register(_spec)


def get_task(name: str) -> TaskSpec:
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, list(REGISTRY), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise AlignError(
            f"--task: unknown task {name!r}{hint} (known: {', '.join(sorted(REGISTRY))})"
        )
    return REGISTRY[name]


def load_split(spec: TaskSpec, data_dir: Path | None, split: str) -> list[Example]:
    """Examples of one split: the builtin corpus, files in ``data_dir``, or the hub (online)."""
    if spec.options.get("builtin"):
        return spec.read(None, split, spec)  # type: ignore[arg-type]
    if data_dir is not None:
        return spec.read(find_file(Path(data_dir), spec, split), split, spec)
    return _from_hub(spec, split)


def _from_hub(spec: TaskSpec, split: str) -> list[Example]:
    if spec.hub is None or spec.from_hub is None:
        raise AlignError(
            f"task {spec.name}: pass --data-dir with its files (no hub dataset is known)"
        )
    try:
        import datasets
    except ImportError as exc:
        raise AlignError(
            f"task {spec.name}: no --data-dir given; loading {spec.hub[0]} from the hub needs the "
            f"'datasets' extra ({install_hint('datasets')}) and network access"
        ) from exc
    from align.data.hub import hub_unreachable

    why = hub_unreachable()
    if why is not None:
        raise AlignError(
            f"task {spec.name}: {spec.hub[0]} cannot be loaded: the hub cannot be reached "
            f"({why}); pass --data-dir with the task's files"
        )
    hub_split = spec.options.get(f"hub_{split}", "validation" if split == "dev" else "train")
    try:
        rows = datasets.load_dataset(spec.hub[0], spec.hub[1], split=hub_split)
    except Exception as exc:
        raise AlignError(
            f"task {spec.name}: could not load {spec.hub[0]} from the hub ({exc})"
        ) from exc
    assert spec.from_hub is not None
    return spec.from_hub(rows, spec)


__all__ = ["REGISTRY", "Example", "TaskSpec", "get_task", "load_split", "register"]
