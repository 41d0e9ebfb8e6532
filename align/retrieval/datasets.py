"""Which data a run reads: a data directory in a task's layout, or the Bible demo set.

``resolve`` settles the directory and the languages (the demo set is built once, offline, under
the cache directory); ``read`` reads and validates every language's files through the task, so
every problem with the data is reported before a model is loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from align._io import atomic_dir, cache_dir
from align.data import langs as langcodes
from align.data.bible import changed_files
from align.errors import AlignError
from align.progress import step
from align.retrieval.tasks import RetrievalTask

log = logging.getLogger(__name__)

DEMO_META = "bible_meta.json"


@dataclass
class Dataset:
    """Every language's data of one task, read and checked."""

    task: RetrievalTask
    root: Path
    langs: list[str]
    data: dict[str, Any]
    demo: bool  # the default Bible demo set (no data directory given)
    demo_n: int

    @property
    def bible(self) -> bool:
        """A set built by align from the Bible and unchanged since (checksums verified)."""
        return (self.root / DEMO_META).is_file() and changed_files(self.root) == []

    @property
    def name(self) -> str:
        """How figures and tables name the data: the Bible demo set is not Tatoeba or BUCC."""
        if self.demo:
            return f"Bible demo set ({self.task.name} layout, New Testament, n={self.demo_n})"
        if self.bible:
            return f"Bible set {self.root.name} ({self.task.name} layout)"
        if (self.root / DEMO_META).is_file():
            return f"{self.task.title} ({self.root.name}: a Bible set changed since it was built)"
        return f"{self.task.title} ({self.root.name})"

    def info(self) -> dict[str, Any]:
        meta = self.root / DEMO_META
        return {
            "name": self.name,
            "dir": str(self.root),
            "sizes": {lang: self.task.sizes(self.data[lang]) for lang in self.langs},
            "demo": self.bible,  # a Bible-built set (the default, or align data bible), unchanged
            "meta": meta.name if meta.is_file() else None,
            **self.task.describe_layout(self.root, self.data),
        }


def demo_dir(task: RetrievalTask, langs: list[str], n: int, seed: int) -> Path:
    """The Bible demo set of ``task`` for ``langs``, built once under the cache directory."""
    iso = [langcodes.iso1(code) for code in langs]
    root = cache_dir() / "data" / f"bible-{task.name}-n{n}-seed{seed}-{'_'.join(iso)}"
    if (root / DEMO_META).is_file():
        changed = changed_files(root)
        if changed == []:
            return root
        log.warning(
            "the cached Bible demo set %s %s; building it again",
            root,
            "records no checksums" if changed is None else f"has changed ({', '.join(changed)})",
        )
    what = f"building the Bible demo set ({task.name}, {','.join(iso)}, {n} a language) -> {root}"
    with step(what), atomic_dir(root) as tmp:
        task.build_demo(tmp, iso, n, seed)
    return root


def named_dir(task: RetrievalTask, name: str, langs: list[str]) -> Path:
    """A data set by name, fetched into the cache on first use (``xtreme``: Tatoeba from the
    hub dataset google/xtreme, a language it lacks from mteb/tatoeba-bitext-mining; BUCC is
    refused: the hub holds its gold pairs only)."""
    from align.data import hub

    if name != "xtreme":
        raise AlignError(f"data {name!r}: the one data set known by name is xtreme", param="data")
    if task.hub_refusal is not None:
        raise AlignError(f"data xtreme: {task.hub_refusal}", param="data")
    root = cache_dir() / "data" / "xtreme-tatoeba"
    missing = [lang for lang in langs if lang not in task.available_langs(root)]
    if missing:
        root.mkdir(parents=True, exist_ok=True)
        with step(f"fetching Tatoeba {','.join(missing)} from the hub into {root}"):
            hub.write_tatoeba_from_hub(root, missing)
    return root


def resolve(
    task: RetrievalTask,
    data_dir: Path | None,
    langs: str | None,
    demo_n: int,
    seed: int,
    name: str | None = None,
) -> tuple[Path, list[str]]:
    """(data directory, file-name language codes), validated before any model is loaded."""
    if data_dir is None and name is not None:
        chosen = langcodes.parse_langs(langs or "xtreme", task.lang_codes, hub=True)
        return named_dir(task, name, chosen), chosen
    if data_dir is None:
        chosen = langcodes.parse_langs(langs or task.demo_langs, task.lang_codes)
        chosen = task.demo_languages(chosen)
        return demo_dir(task, chosen, demo_n, seed), chosen
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise AlignError(f"data_dir {data_dir}: not a directory", param="data_dir")
    available = task.available_langs(data_dir)
    if langs is None:
        if not available:
            raise AlignError(
                f"data_dir {data_dir}: no {task.title} files in the XTREME layout found",
                param="data_dir",
            )
        return data_dir, sorted(available)
    return data_dir, langcodes.parse_langs(langs, task.lang_codes, available)


def read(
    task: RetrievalTask,
    data_dir: Path | None,
    langs: str | None,
    demo_n: int,
    seed: int,
    name: str | None = None,
) -> Dataset:
    root, chosen = resolve(task, data_dir, langs, demo_n, seed, name)
    data = {lang: task.read(root, lang) for lang in chosen}
    task.check_set(root, data)
    task.warn_small(data)
    return Dataset(task, root, chosen, data, data_dir is None and name is None, demo_n)
