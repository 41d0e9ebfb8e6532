"""Language codes as XTREME names its files: Tatoeba ISO 639-3, BUCC ISO 639-1."""

from __future__ import annotations

import difflib
from typing import Literal

from align.errors import AlignError

Task = Literal["tatoeba", "bucc"]

# XTREME's 36 Tatoeba languages (+ a few the Bible corpus has): two-letter alias -> file code.
TATOEBA: dict[str, str] = {
    "af": "afr",
    "ar": "ara",
    "az": "aze",
    "bg": "bul",
    "bn": "ben",
    "de": "deu",
    "el": "ell",
    "es": "spa",
    "et": "est",
    "eu": "eus",
    "fa": "pes",
    "fi": "fin",
    "fr": "fra",
    "he": "heb",
    "hi": "hin",
    "hu": "hun",
    "id": "ind",
    "it": "ita",
    "ja": "jpn",
    "jv": "jav",
    "ka": "kat",
    "kk": "kaz",
    "ko": "kor",
    "ml": "mal",
    "mr": "mar",
    "nl": "nld",
    "pl": "pol",
    "pt": "por",
    "ro": "ron",
    "ru": "rus",
    "sw": "swh",
    "ta": "tam",
    "te": "tel",
    "th": "tha",
    "tl": "tgl",
    "tr": "tur",
    "uk": "ukr",
    "ur": "urd",
    "vi": "vie",
    "zh": "cmn",
}
BUCC: dict[str, str] = {"de": "de", "fr": "fr", "ru": "ru", "zh": "zh"}
_BUCC_ALIASES = {"deu": "de", "fra": "fr", "rus": "ru", "cmn": "zh", "zho": "zh"}
_TATOEBA_TO_ISO1 = {v: k for k, v in TATOEBA.items()}


def iso1(code: str) -> str:
    """Two-letter code of a Tatoeba or BUCC code (``deu`` -> ``de``); unknown codes unchanged."""
    return _TATOEBA_TO_ISO1.get(code, _BUCC_ALIASES.get(code, code))


def resolve(lang: str, task: Task, available: set[str] | None = None) -> str:
    """The file-name code for ``lang`` in ``task``; a clear error for an unknown language.

    ``available``: codes found in a data directory; such a code is accepted as it is.
    """
    code = lang.strip()
    if task == "tatoeba":
        if code in TATOEBA.values():
            return code
        if code in TATOEBA:
            return TATOEBA[code]
    else:
        if code in BUCC:
            return code
        if code in _BUCC_ALIASES:
            return _BUCC_ALIASES[code]
    if available and code in available:
        return code
    known = sorted(TATOEBA.values()) if task == "tatoeba" else sorted(BUCC)
    found = f"; found in the data directory: {', '.join(sorted(available))}" if available else ""
    aliases = list(TATOEBA) + list(TATOEBA.values()) if task == "tatoeba" else list(BUCC)
    close = difflib.get_close_matches(code, [*aliases, *(available or ())], n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise AlignError(
        f"--langs: unknown {task} language {lang!r}{hint} (known: {', '.join(known)}{found})"
    )


def parse_langs(spec: str, task: Task, available: set[str] | None = None) -> list[str]:
    langs = [s for s in (p.strip() for p in spec.split(",")) if s]
    if not langs:
        raise AlignError("--langs: no language given")
    return list(dict.fromkeys(resolve(lang, task, available) for lang in langs))
