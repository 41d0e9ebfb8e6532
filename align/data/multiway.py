"""Multi-way parallel sets: one file per language, ``{code}.txt``, line i of every file the same
sentence (FLORES+, the Bible). English is one language among the others.

Readers check every file as the Tatoeba reader does (missing, empty, non-UTF-8, NUL bytes,
empty lines: named by file and line) and that every file has the same number of lines.

FLORES+ (``openlanguagedata/flores_plus`` on the Hugging Face hub, gated: its terms must be
accepted and a token used to download it) keeps one JSON-lines file per language and split,
``{split}/{iso639_3}_{Script}.jsonl`` (e.g. ``dev/eng_Latn.jsonl``, ``devtest/npi_Deva.jsonl``),
each row an object whose ``id`` is the sentence's number (the same across languages) and whose
``text`` is the sentence, beside metadata (``iso_639_3``, ``iso_15924``, ``glottocode``, ``url``,
``domain``, ``topic``, ...). The layout was read from public scripts that download those files
by name; a local copy laid out the same way is read with ``--from``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from align._io import write_text_atomic
from align.data.xtreme import _check_sentence, read_lines
from align.errors import AlignError

FLORES_REPO = "openlanguagedata/flores_plus"
FLORES_SPLITS = ("dev", "devtest")
SUFFIX = ".txt"
_CODE = re.compile(r"[A-Za-z]{2,3}(_[A-Za-z]{4})?")


@dataclass(frozen=True)
class MultiWay:
    """Every language's sentences (line i of each translates line i of the others)."""

    root: Path
    texts: dict[str, list[str]]

    @property
    def langs(self) -> list[str]:
        return list(self.texts)

    def __len__(self) -> int:
        return len(next(iter(self.texts.values())))


def path_of(root: Path, lang: str) -> Path:
    return Path(root) / f"{lang}{SUFFIX}"


def langs_in(root: Path) -> set[str]:
    """The languages with a ``{code}.txt`` file in ``root``."""
    root = Path(root)
    if not root.is_dir():
        return set()
    return {p.stem for p in root.glob(f"*{SUFFIX}") if _CODE.fullmatch(p.stem)}


def read_language(root: Path, lang: str) -> list[str]:
    return read_lines(path_of(root, lang))


def check_aligned(texts: dict[str, list[str]], root: Path) -> None:
    """Every language the same number of lines; two languages not copies of each other."""
    sizes = {lang: len(lines) for lang, lines in texts.items()}
    first = next(iter(sizes))
    for lang, n in sizes.items():
        if n != sizes[first]:
            raise AlignError(
                f"misaligned multi-way files: {path_of(root, first)} has {sizes[first]} lines "
                f"but {path_of(root, lang)} has {n}"
            )
    seen: dict[tuple[str, ...], str] = {}
    for lang, lines in texts.items():
        key = tuple(lines)
        if key in seen:
            raise AlignError(
                f"{path_of(root, lang)}: identical to {path_of(root, seen[key])}, line for "
                "line: every pair of them would score a language against itself"
            )
        seen[key] = lang


def read_multiway(root: Path, langs: list[str]) -> MultiWay:
    texts = {lang: read_language(root, lang) for lang in langs}
    check_aligned(texts, Path(root))
    return MultiWay(Path(root), texts)


def write_multiway(root: Path, texts: dict[str, list[str]]) -> None:
    """One ``{code}.txt`` per language (atomic writes), after the alignment checks."""
    if not texts or not all(texts.values()):
        raise AlignError("a multi-way set needs at least one language with sentences")
    check_aligned(texts, Path(root))
    for lang, lines in texts.items():
        if not _CODE.fullmatch(lang):
            raise AlignError(f"language code {lang!r}: expected e.g. deu or deu_Latn")
        path = path_of(root, lang)
        body = [_check_sentence(s, f"{path} (line {i + 1})") for i, s in enumerate(lines)]
        write_text_atomic(path, "\n".join(body) + "\n")


# ------------------------------------------------------------------------------ FLORES+
def flores_langs(source: Path, split: str) -> list[str]:
    """The languages of one split of a local FLORES+ copy (``{split}/{code}.jsonl``)."""
    folder = _flores_split(source, split)
    return sorted(p.stem for p in folder.glob("*.jsonl") if _CODE.fullmatch(p.stem))


def _flores_split(source: Path, split: str) -> Path:
    if split not in FLORES_SPLITS:
        raise AlignError(f"--split {split!r}: FLORES+ has {' and '.join(FLORES_SPLITS)}")
    folder = Path(source) / split
    if not folder.is_dir():
        raise AlignError(
            f"--from {source}: no {split}/ folder; expected a copy of {FLORES_REPO} laid out as "
            f"the hub keeps it ({split}/eng_Latn.jsonl, ...)"
        )
    return folder


def read_flores_language(source: Path, split: str, lang: str) -> dict[int, str]:
    """One language's sentences by id; errors name the file and line."""
    path = _flores_split(source, split) / f"{lang}.jsonl"
    if not path.is_file():
        known = ", ".join(flores_langs(source, split)[:8])
        raise AlignError(f"{path}: no such file (languages found: {known}, ...)")
    by_id: dict[int, str] = {}
    for number, line in enumerate(read_lines(path), start=1):
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AlignError(f"{where}: not a JSON object ({exc.msg})") from exc
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise AlignError(f"{where}: expected an object with a string field 'text'")
        key = row.get("id")
        if isinstance(key, bool) or not isinstance(key, int | str):
            raise AlignError(f"{where}: expected an 'id' (the sentence's number)")
        try:
            key = int(key)
        except ValueError as exc:
            raise AlignError(f"{where}: id {key!r} is not a number") from exc
        if key in by_id:
            raise AlignError(f"{where}: id {key} appears twice in the file")
        by_id[key] = _check_sentence(row["text"].strip(), where)
    return by_id


def read_flores(source: Path, split: str, langs: list[str]) -> dict[str, list[str]]:
    """The languages' sentences of one split, in id order; every language must hold the same
    ids (one line names a language that lacks some)."""
    by_lang = {lang: read_flores_language(source, split, lang) for lang in langs}
    first = langs[0]
    ids = sorted(by_lang[first])
    for lang, rows in by_lang.items():
        if set(rows) != set(ids):
            gone = sorted(set(ids) - set(rows))[:3] or sorted(set(rows) - set(ids))[:3]
            raise AlignError(
                f"{Path(source) / split / (lang + '.jsonl')}: its ids differ from {first}'s "
                f"(e.g. {gone}); every language of a split holds the same sentences"
            )
    return {lang: [rows[i] for i in ids] for lang, rows in by_lang.items()}
