"""BUCC 2018 from the release archives a user downloaded
(``bucc2018-{lang}-en.{sample,training}-gold.tar.bz2``), unpacked into the release's naming
(``{lang}-en.sample.{lang}``, ...), which every command reads. Each member's size is read from
its header before a byte of it is; errors name ``archive:member``."""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path

from align.data import xtreme
from align.errors import AlignError

MAX_MEMBER_BYTES = 1 << 30  # the largest file of the BUCC 2018 release is under 100 MB
_TAR_ERRORS: tuple[type[BaseException], ...] = (tarfile.TarError, EOFError, OSError, ValueError)


@dataclass(frozen=True)
class BuccArchive:
    """One release archive, named as the release names it."""

    path: Path
    lang: str
    split: str  # sample | training

    def member(self, suffix: str) -> str:
        return f"{self.lang}-en.{self.split}.{suffix}"


def bucc_archive(archive: Path) -> BuccArchive:
    """The language and split a release archive's name gives (checked before it is opened)."""
    name = archive.name
    parts = name.split(".")
    if not (name.startswith("bucc2018-") and len(parts) >= 3 and parts[0][9:].endswith("-en")):
        raise AlignError(
            f"{archive}: not a BUCC 2018 release archive name "
            "(bucc2018-{lang}-en.{sample|training}-gold.tar.bz2)"
        )
    lang, split = parts[0][len("bucc2018-") : -len("-en")], parts[1].removesuffix("-gold")
    if split not in ("sample", "training"):
        raise AlignError(f"{archive}: split {split!r}: expected sample or training (-gold)")
    return BuccArchive(archive, lang, split)


def _bad_archive(archive: Path, exc: BaseException) -> AlignError:
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    return AlignError(f"{archive}: not a readable tar archive, or cut short ({reason})")


def _extract(archive: BuccArchive, out: Path) -> dict[str, str]:
    """The archive's sentence and gold files, streamed into ``out`` (each member's size read
    from its header first); the file names written -> ``archive:member`` (for errors)."""
    import shutil

    wanted = {archive.member(s): s for s in (archive.lang, "en", "gold")}
    found: dict[str, str] = {}
    try:
        with tarfile.open(archive.path, "r:*") as tar:
            for member in tar:
                name = Path(member.name).name
                if not member.isfile() or name not in wanted or name in found:
                    continue
                where = f"{archive.path}:{member.name}"
                if member.size > MAX_MEMBER_BYTES:
                    raise AlignError(
                        f"{where}: {member.size:,} bytes by its header, more than any BUCC 2018 "
                        f"file ({MAX_MEMBER_BYTES:,} at most); not unpacked"
                    )
                source = tar.extractfile(member)
                assert source is not None
                with source, (out / name).open("wb") as target:
                    shutil.copyfileobj(source, target, 1 << 20)
                found[name] = where
    except AlignError:
        raise
    except _TAR_ERRORS as exc:
        raise _bad_archive(archive.path, exc) from exc
    for name in wanted:
        if name not in found:
            raise AlignError(
                f"{archive.path}: no {name} inside (a BUCC 2018 release archive holds it)"
            )
    return found


def pick_archives(archives: list[Path], langs: list[str] | None) -> list[BuccArchive]:
    """The archives of the languages asked for (all when ``langs`` is None); a language asked
    for whose archives were not given is refused, naming the archives there are."""
    named = [bucc_archive(Path(a)) for a in archives]
    if langs is None:
        return named
    have = sorted({a.lang for a in named})
    for lang in langs:
        if lang not in have:
            raise AlignError(
                f"langs: no archive given for {lang!r} (archives given for: {', '.join(have)})",
                param="langs",
            )
    return [a for a in named if a.lang in langs]


def unpack_bucc(out: Path, archives: list[BuccArchive]) -> dict[str, list[str]]:
    """The BUCC 2018 release archives' sentence and gold files in the release's naming
    (``{lang}-en.{sample|training}.{lang|en|gold}``), each checked for and read; errors name
    the archive and its member. The files per archive."""
    written: dict[str, list[str]] = {}
    origin: dict[str, str] = {}
    for archive in archives:
        found = _extract(archive, Path(out))
        origin |= {str(Path(out) / name): where for name, where in found.items()}
        written[str(archive.path)] = sorted(found)
    try:
        for lang in sorted({a.lang for a in archives}):
            for split in xtreme.BUCC_SPLITS:
                if xtreme.bucc_paths(out, lang, split, "bucc2018")["src"].is_file():
                    xtreme.read_bucc(out, lang, split, "bucc2018")  # every file checked as read
    except AlignError as exc:
        message = str(exc)
        for path, where in sorted(origin.items(), key=lambda kv: -len(kv[0])):
            message = message.replace(path, where)
        raise AlignError(message) from exc
    return written
