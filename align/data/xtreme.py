"""Readers and writers for XTREME's Tatoeba and BUCC file layouts, with strict validation.

Tatoeba: ``tatoeba.{lang}-eng.{lang}`` and ``tatoeba.{lang}-eng.eng``, line i aligned.
BUCC: ``{lang}-en.{split}.{lang}`` / ``{lang}-en.{split}.en`` (``id<TAB>sentence``) and
``{lang}-en.{split}.gold`` (``src_id<TAB>trg_id``). XTREME's splits ``dev`` / ``test`` are the
BUCC 2018 release's ``sample`` / ``training``; either naming is read.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from align._io import write_text_atomic
from align.errors import AlignError

BUCC_SPLITS = ("dev", "test")
# split -> file-name split, for each naming users hold
BUCC_LAYOUTS: dict[str, dict[str, str]] = {
    "xtreme": {"dev": "dev", "test": "test"},
    "bucc2018": {"dev": "sample", "test": "training"},
}


@dataclass
class ParallelSet:
    """Aligned sentences: ``src[i]`` translates ``tgt[i]`` (tgt is English)."""

    lang: str
    src: list[str]
    tgt: list[str]


@dataclass
class BuccSplit:
    lang: str
    split: str
    src: dict[str, str]  # id -> sentence (the non-English side)
    tgt: dict[str, str]  # id -> English sentence
    gold: list[tuple[str, str]] | None  # None: no gold file (e.g. a blind test set)


def _blank(text: str) -> bool:
    """No visible character: whitespace, or only format characters (RTL marks, zero-width
    spaces and joiners, BOMs) that render as nothing."""
    return all(ch.isspace() or unicodedata.category(ch) == "Cf" for ch in text)


def _check_regular_file(path: Path) -> None:
    """A readable regular file; otherwise an error saying what is there instead."""
    if path.is_symlink() and not path.exists():
        raise AlignError(f"{path}: a dangling symbolic link (to {os.readlink(path)})")
    if not path.exists():
        raise AlignError(f"{path}: file not found")
    if path.is_dir():
        raise AlignError(f"{path}: is a directory, not a data file")
    if not path.is_file():
        raise AlignError(f"{path}: not a regular file (a FIFO, socket or device?)")


def read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 file; errors name the file and line (missing, non-UTF-8, empty)."""
    _check_regular_file(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AlignError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark is not text
    if not raw:
        raise AlignError(f"{path}: file is empty")
    if b"\r" in raw and b"\n" not in raw:
        raise AlignError(
            f"{path}: lines end in CR only (classic Mac line endings); convert it to LF "
            "(e.g. tr '\\r' '\\n')"
        )
    parts = raw.split(b"\n")
    if parts[-1] == b"":
        parts.pop()
    lines = []
    for number, part in enumerate(parts, start=1):
        try:
            line = part.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as exc:
            raise AlignError(
                f"{path}:{number}: invalid UTF-8 ({exc.reason} at byte {exc.start})"
            ) from exc
        if "\x00" in line:
            raise AlignError(f"{path}:{number}: NUL byte(s) in the line (a binary file?)")
        if _blank(line):
            raise AlignError(
                f"{path}:{number}: empty line (every line must hold a sentence; whitespace, "
                "direction marks and zero-width characters alone do not count)"
            )
        lines.append(line)
    return lines


def _check_sentence(text: str, where: str) -> str:
    if not text.strip() or "\n" in text or "\t" in text:
        raise AlignError(f"{where}: sentence is empty or contains a tab/newline: {text!r}")
    return text


def tatoeba_paths(data_dir: Path, lang: str) -> tuple[Path, Path]:
    base = Path(data_dir) / f"tatoeba.{lang}-eng"
    return base.with_name(base.name + f".{lang}"), base.with_name(base.name + ".eng")


ENGLISH_CODES = ("eng", "en")


def read_tatoeba(data_dir: Path, lang: str) -> ParallelSet:
    src_path, tgt_path = tatoeba_paths(data_dir, lang)
    if lang.lower() in ENGLISH_CODES:
        raise AlignError(
            f"{src_path}: English paired with English; Tatoeba pairs each other language with "
            "English (every score would be English against itself): leave it out of --langs"
        )
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise AlignError(
            f"misaligned parallel files: {src_path} has {len(src)} lines "
            f"but {tgt_path} has {len(tgt)}"
        )
    if src == tgt:
        raise AlignError(
            f"{src_path}: identical to {tgt_path}, line for line: the {lang} side is English "
            "(or a copy of it), so retrieval would score English against itself"
        )
    return ParallelSet(lang, src, tgt)


def write_tatoeba(data_dir: Path, pairs: ParallelSet) -> None:
    if len(pairs.src) != len(pairs.tgt) or not pairs.src:
        raise AlignError(f"{pairs.lang}: need equally many (>0) source and English sentences")
    src_path, tgt_path = tatoeba_paths(data_dir, pairs.lang)
    for path, lines in ((src_path, pairs.src), (tgt_path, pairs.tgt)):
        body = [_check_sentence(s, f"{path} (line {i + 1})") for i, s in enumerate(lines)]
        write_text_atomic(path, "\n".join(body) + "\n")


def _langs_matching(data_dir: Path, pattern: str) -> set[str]:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        return set()
    return {m.group(1) for p in data_dir.iterdir() if (m := re.fullmatch(pattern, p.name))}


def tatoeba_langs(data_dir: Path) -> set[str]:
    """Languages with a ``tatoeba.{lang}-eng.{lang}`` file in ``data_dir``."""
    return _langs_matching(data_dir, r"tatoeba\.(\w+)-eng\.\1")


def bucc_langs(data_dir: Path) -> set[str]:
    """Languages with a ``{lang}-en.{split}.{lang}`` file in ``data_dir``."""
    return _langs_matching(data_dir, r"(\w+)-en\.\w+\.\1")


def bucc_layout(data_dir: Path, lang: str) -> str:
    """Which naming (``xtreme``: dev/test, ``bucc2018``: sample/training) ``data_dir`` holds;
    a directory holding both is refused (which split is which would be a guess)."""
    found = [
        layout
        for layout, names in BUCC_LAYOUTS.items()
        if all(bucc_paths(data_dir, lang, split, layout)["src"].is_file() for split in names)
    ]
    if len(found) > 1:
        names = [bucc_paths(data_dir, lang, "dev", layout)["src"].name for layout in found]
        raise AlignError(
            f"--data-dir {data_dir}: holds BUCC files in both namings for {lang} "
            f"({' and '.join(names)}); keep one (XTREME's dev/test or BUCC 2018's "
            "sample/training)"
        )
    if found:
        return found[0]
    looked = " and ".join(
        f"{lang}-en.{names['dev']}.{lang} + {lang}-en.{names['test']}.{lang}"
        for names in BUCC_LAYOUTS.values()
    )
    raise AlignError(
        f"--data-dir {data_dir}: no BUCC dev/test files for {lang} (looked for {looked})"
    )


def bucc_paths(data_dir: Path, lang: str, split: str, layout: str = "xtreme") -> dict[str, Path]:
    """File paths of one split (``dev`` / ``test``) in the given naming."""
    base = f"{lang}-en.{BUCC_LAYOUTS[layout].get(split, split)}"
    root = Path(data_dir)
    return {
        "src": root / f"{base}.{lang}",
        "tgt": root / f"{base}.en",
        "gold": root / f"{base}.gold",
    }


def _read_id_sentences(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for number, line in enumerate(read_lines(path), start=1):
        sid, sep, text = line.partition("\t")
        if not sep or not sid.strip() or _blank(text):
            raise AlignError(f"{path}:{number}: expected 'id<TAB>sentence', got {line[:80]!r}")
        if "\t" in text:
            raise AlignError(
                f"{path}:{number}: {line.count(chr(9)) + 1} tab-separated fields, expected 2 "
                "('id<TAB>sentence'; a sentence holds no tab)"
            )
        if sid in out:
            raise AlignError(f"{path}:{number}: duplicate sentence id {sid!r}")
        out[sid] = text
    return out


def read_bucc(data_dir: Path, lang: str, split: str, layout: str = "xtreme") -> BuccSplit:
    paths = bucc_paths(data_dir, lang, split, layout)
    src, tgt = _read_id_sentences(paths["src"]), _read_id_sentences(paths["tgt"])
    gold = None
    if paths["gold"].is_file():
        gold = []
        first: dict[tuple[int, str], int] = {}  # (side, id) -> the line that paired it
        for number, line in enumerate(read_lines(paths["gold"]), start=1):
            parts = line.split("\t")
            if len(parts) != 2:
                raise AlignError(f"{paths['gold']}:{number}: expected 'src_id<TAB>trg_id'")
            if parts[0] not in src:
                raise AlignError(
                    f"{paths['gold']}:{number}: id {parts[0]!r} is not in {paths['src']}"
                )
            if parts[1] not in tgt:
                raise AlignError(
                    f"{paths['gold']}:{number}: id {parts[1]!r} is not in {paths['tgt']}"
                )
            for side, name in enumerate(("source", "target")):
                if (side, parts[side]) in first:
                    raise AlignError(
                        f"{paths['gold']}:{number}: {name} id {parts[side]!r} is paired a second "
                        f"time (first on line {first[(side, parts[side])]}); BUCC gold pairs are "
                        "one-to-one"
                    )
                first[(side, parts[side])] = number
            gold.append((parts[0], parts[1]))
    return BuccSplit(lang, split, src, tgt, gold)


def write_bucc(data_dir: Path, split: BuccSplit) -> None:
    paths = bucc_paths(data_dir, split.lang, split.split)
    for side in ("src", "tgt"):
        sentences: dict[str, str] = getattr(split, side)
        if not sentences:
            raise AlignError(f"{paths[side]}: no sentences to write")
        body = [
            f"{sid}\t{_check_sentence(text, f'{paths[side]} id {sid}')}"
            for sid, text in sentences.items()
        ]
        write_text_atomic(paths[side], "\n".join(body) + "\n")
    if split.gold is not None:
        for s, t in split.gold:
            if s not in split.src or t not in split.tgt:
                raise AlignError(f"{paths['gold']}: gold pair ({s}, {t}) names an unknown id")
        write_text_atomic(paths["gold"], "".join(f"{s}\t{t}\n" for s, t in split.gold))


def gold_indices(split: BuccSplit) -> set[tuple[int, int]]:
    """The gold pairs as (source row, target row) positions in the split's id order."""
    src_pos = {sid: i for i, sid in enumerate(split.src)}
    tgt_pos = {sid: i for i, sid in enumerate(split.tgt)}
    return {(src_pos[s], tgt_pos[t]) for s, t in split.gold or []}
