"""Atomic file writes and the on-disk cache location."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
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


def follow_umask(path: Path) -> None:
    """Give a file, or a folder and everything in it, the modes a plain open/mkdir would:
    some writers create 0600 files (safetensors' ``save_file`` does), which nobody else on a
    shared machine could read."""
    path = Path(path)
    if path.is_dir():
        _share_like_open(path, directory=True)
        for child in path.rglob("*"):
            _share_like_open(child, directory=child.is_dir())
    elif path.exists():
        _share_like_open(path)


def make_dirs(path: Path) -> list[Path]:
    """``mkdir -p path``; the directories it created, deepest first (to undo on failure)."""
    path = Path(path)
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True)
    return missing


def remove_empty(dirs: list[Path]) -> None:
    """Remove the directories ``make_dirs`` created, where they are still empty."""
    for directory in dirs:
        with contextlib.suppress(OSError):
            directory.rmdir()


def write_error(path: Path, exc: OSError) -> AlignError:
    """A failed write in one line naming the file (disk full, file size limit, permissions)."""
    reason = exc.strerror or str(exc)
    return AlignError(f"{path}: cannot be written ({reason}); nothing was left behind")


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only on success.

    On failure the temporary file, and any directory made for it, are removed; an ``OSError``
    of the write (no space, a file size limit) becomes one :class:`AlignError` naming the file.
    """
    target = Path(target)
    made = make_dirs(target.parent)
    tmp_path = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        if tmp_path.exists():
            _share_like_open(tmp_path)
        os.replace(tmp_path, target)
        made = []
    except OSError as exc:
        raise write_error(target, exc) from exc
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()
        remove_empty(made)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_stale_tmpdirs(parent: Path) -> list[Path]:
    """Remove ``parent``'s temporary folders (``.NAME.HOST.PID.X.tmp``) left by processes of
    this host that are gone (a kill -9 mid-build); another host's, or a live one's, stay."""
    host, removed = socket.gethostname(), []
    for path in Path(parent).glob(".*.tmp"):
        parts = path.name.split(".")
        ours = len(parts) >= 5 and parts[-4] == host and parts[-3].isdigit()
        if ours and not _alive(int(parts[-3])) and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def owned_tmpdir(parent: Path, name: str) -> Path:
    """A new temporary folder in ``parent`` named for this host and process, so that one left
    by a killed process is recognised and swept (:func:`sweep_stale_tmpdirs`, run here)."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_tmpdirs(parent)
    prefix = f".{name}.{socket.gethostname()}.{os.getpid()}."
    return Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=parent))


@contextlib.contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``target``; move it onto ``target`` only on success."""
    target = Path(target)
    tmp = owned_tmpdir(target.parent, target.name)
    try:
        yield tmp
        follow_umask(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _undefined_reason(value: float) -> str:
    return "not a number (NaN)" if value != value else f"{'+' if value > 0 else '-'}infinite"


def strict_json(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by ``null``, so that strict parsers read it
    (JSON has no such numbers). In a dict, the reason goes beside: ``"undefined": {field:
    reason}`` (a reason already there, set where the value was made, is kept)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        given = value.get("undefined")
        reasons = dict(given) if isinstance(given, dict) else {}
        out = {}
        for key, item in value.items():
            if isinstance(item, float) and not math.isfinite(item):
                reasons.setdefault(str(key), _undefined_reason(item))
                out[key] = None
            elif key != "undefined":
                out[key] = strict_json(item)
        if reasons:
            out["undefined"] = reasons
        return out
    if isinstance(value, list | tuple):
        return [strict_json(item) for item in value]
    return value


def restore_undefined(record: dict[str, Any]) -> dict[str, Any]:
    """The inverse on reading: a field recorded as undefined is NaN again (in place)."""
    for key in record.get("undefined") or {}:
        if record.get(key) is None:
            record[key] = float("nan")
    return record


def dumps_strict(obj: Any, **kwargs: Any) -> str:
    return json.dumps(strict_json(obj), ensure_ascii=False, allow_nan=False, **kwargs)


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, dumps_strict(obj, indent=2) + "\n")


def write_jsonl_atomic(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(dumps_strict(row) + "\n")


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
        self._made = make_dirs(self.target.parent)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.target.name}.", suffix=".tmp", dir=self.target.parent
        )
        self._tmp = Path(tmp)
        self._fh = os.fdopen(fd, "w", encoding="utf-8")

    def write(self, rows: Any) -> None:
        try:
            for row in rows:
                if self._fh is None:
                    self._open()
                self._fh.write(dumps_strict(row) + "\n")
                self.rows += 1
        except OSError as exc:
            raise write_error(self.target, exc) from exc

    def commit(self) -> Path:
        try:
            if self._fh is None:
                self._open()
            self._fh.close()
            assert self._tmp is not None
            _share_like_open(self._tmp)
            os.replace(self._tmp, self.target)
        except OSError as exc:
            raise write_error(self.target, exc) from exc
        self._tmp, self._made = None, []
        return self.target

    def discard(self) -> None:
        if self._fh is not None and not self._fh.closed:
            with contextlib.suppress(OSError):
                self._fh.close()
        if self._tmp is not None and self._tmp.exists():
            self._tmp.unlink()
        remove_empty(getattr(self, "_made", []))

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        self.discard()  # after commit there is nothing left to discard


def check_cache_dir() -> Path:
    """The cache directory, checked before any work: a directory (or creatable) and writable."""
    root = cache_dir()
    try:
        check_output_dir(root, "ALIGN_CACHE_DIR")
    except AlignError as exc:
        raise AlignError(
            f"{exc} (the embedding cache and the default model live there; set "
            "ALIGN_CACHE_DIR to a writable directory)"
        ) from None
    return root


class OutputLock:
    """One run per output folder: an exclusive ``flock`` on the folder itself.

    A second run into the same folder is refused in one line while the first holds it; the lock
    goes when the process ends, however it ends. The folder is made if missing, and removed
    again on release if the run left it empty.
    """

    def __init__(self, path: Path, flag: str = "--out") -> None:
        self.path, self.flag = Path(path), flag
        self._fd: int | None = None
        self._made: list[Path] = []

    def acquire(self) -> OutputLock:
        import fcntl

        self._made = make_dirs(self.path)
        self._fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise AlignError(
                f"{self.flag} {self.path}: another align run is writing into it; wait for it "
                "to finish or choose another folder"
            ) from None
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None
        remove_empty(self._made)

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


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
    try:  # access() can say yes where nothing can be made (/proc, a read-only mount, as root)
        fd, probe = tempfile.mkstemp(prefix=".align-probe.", dir=ancestor)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise AlignError(
            f"{flag} {path}: nothing can be written in {ancestor} ({exc.strerror or exc})"
        ) from None
