"""Where the data commands write: the rules every writing command follows, for data sets.

``--out`` must be new, empty, or a set an align data command wrote (its sidecar says so); a
rerun builds the new set beside it and puts it in place of the whole old one, under the lock
every writing command takes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from align._io import OutputLock, atomic_dir, check_output_dir
from align.data.bible import META_FILE
from align.errors import AlignError

DATA_META = "data_meta.json"  # the sidecar of a set align data tatoeba / bucc wrote


def check_data_out(out: Path) -> None:
    """``--out`` of a data command: new, empty, or a set an align data command wrote (which a
    rerun replaces whole)."""
    check_output_dir(out)
    ours = (out / META_FILE).is_file() or (out / DATA_META).is_file()
    if out.is_dir() and any(out.iterdir()) and not ours:
        raise AlignError(
            f"--out {out}: not empty, and not a set an align data command wrote (no "
            f"{META_FILE} or {DATA_META}); choose an empty or new folder"
        )


def write_set(out: Path, build: Callable[[Path], None]) -> None:
    """``build(folder)`` into a folder beside ``out``, then in place of whatever set was there,
    under the lock every writing command takes."""
    with OutputLock(out), atomic_dir(out) as tmp:
        build(tmp)
