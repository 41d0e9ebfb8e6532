"""Token tagging: CCG supertags, one ``token<TAB>tag`` per line, sentences split by blank lines."""

from __future__ import annotations

from pathlib import Path

from align.errors import AlignError
from align.train.heads import TAGGING
from align.train.tasks.base import Example, TaskSpec


def read_conll(path: Path, split: str, spec: TaskSpec) -> list[Example]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise AlignError(f"{path}: invalid UTF-8 at byte {exc.start}") from exc
    out: list[Example] = []
    tokens: list[str] = []
    tags: list[str] = []
    for number, line in enumerate([*lines, ""], start=1):
        if not line.strip():
            if tokens:
                out.append({"tokens": tokens, "tags": tags})
                tokens, tags = [], []
            continue
        parts = line.split("\t")
        if len(parts) < 2 or not parts[0] or not parts[-1].strip():
            raise AlignError(f"{path}:{number}: expected 'token<TAB>tag', got {line[:60]!r}")
        tokens.append(parts[0])
        tags.append(parts[-1].strip())
    if not out:
        raise AlignError(f"{path}: no sentences")
    return out


TASKS = [
    TaskSpec(
        name="ccg",
        head=TAGGING,
        description="CCG supertagging (token<TAB>supertag per line, blank line between sentences)",
        files={
            "train": ("ccg.train", "train.txt", "train.tsv"),
            "dev": ("ccg.dev", "dev.txt", "dev.tsv"),
        },
        read=read_conll,
        metric="token_accuracy",
        hub=None,
    ),
]
