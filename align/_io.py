"""Atomic file writes and the on-disk cache location."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from align.errors import AlignError


def cache_dir() -> Path:
    """Root of align's caches: ``$ALIGN_CACHE_DIR`` or ``~/.cache/align``."""
    root = os.environ.get("ALIGN_CACHE_DIR")
    if root:
        return Path(root).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "align"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _share_like_open(path: Path, directory: bool = False) -> None:
    """mkstemp/mkdtemp create 0600/0700; give the result the mode a plain open/mkdir would."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            _share_like_open(tmp_path)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``target``; move it onto ``target`` only on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        _share_like_open(tmp, directory=True)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl_atomic(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


class JsonlWriter:
    """Rows streamed to a temporary file beside ``target``; renamed onto it by :meth:`commit`.

    Used as a context manager, a block that raises leaves nothing behind.
    """

    def __init__(self, target: Path) -> None:
        self.target = Path(target)
        self._tmp: Path | None = None
        self._fh: Any = None
        self.rows = 0

    def _open(self) -> None:
        """The temporary file is made at the first row (or the commit): a run that fails
        before producing anything leaves no file or directory."""
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.target.name}.", suffix=".tmp", dir=self.target.parent
        )
        self._tmp = Path(tmp)
        self._fh = os.fdopen(fd, "w", encoding="utf-8")

    def write(self, rows: Any) -> None:
        for row in rows:
            if self._fh is None:
                self._open()
            self._fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            self.rows += 1

    def commit(self) -> Path:
        if self._fh is None:
            self._open()
        self._fh.close()
        assert self._tmp is not None
        _share_like_open(self._tmp)
        os.replace(self._tmp, self.target)
        self._tmp = None
        return self.target

    def discard(self) -> None:
        if self._fh is not None and not self._fh.closed:
            self._fh.close()
        if self._tmp is not None and self._tmp.exists():
            self._tmp.unlink()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        self.discard()  # after commit there is nothing left to discard


def check_output_dir(path: Path, flag: str = "--out") -> None:
    """Fail now, before any work, if ``path`` cannot become a directory we write into."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise AlignError(f"{flag} {path}: exists and is not a directory")
    ancestor = path
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise AlignError(f"{flag} {path}: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise AlignError(f"{flag} {path}: {ancestor} is not writable")
