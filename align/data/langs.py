"""Language codes as XTREME names its files: Tatoeba ISO 639-3, BUCC ISO 639-1."""

from __future__ import annotations

import difflib
from typing import Literal

from align.errors import AlignError

Codes = Literal["iso639-3", "iso639-1"]  # Tatoeba's files use ISO 639-3, BUCC's ISO 639-1
ENGLISH = "eng"  # the English side's name where languages are listed (probes, language ID)

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
# XTREME's 36 Tatoeba languages, in the order of google-research/xtreme evaluate.py
# (TASK2LANGS["tatoeba"], read at commit 0918248): the languages its Tatoeba score averages.
_XTREME_TATOEBA = "ar he vi id jv tl eu ml ta te af nl de el bn hi mr ur fa fr it pt es bg ru ja ka"
XTREME_TATOEBA = tuple(f"{_XTREME_TATOEBA} ko th sw zh kk tr et fi hu".split())
XTREME_BUCC = ("de", "fr", "ru", "zh")  # evaluate.py TASK2LANGS["bucc2018"]
# The languages of the hub dataset mteb/tatoeba-bitext-mining (config "{code}-eng"): the keys of
# _LANGUAGES in embeddings-benchmark/mteb mteb/tasks/BitextMining/multilingual/
# TatoebaBitextMining.py (read at commit 056c09a). Tatoeba from the hub takes a language that
# google/xtreme lacks from there.
_MTEB = """sqi fry kur tur deu nld ron ang ido jav isl slv cym kaz est heb gla mar lat bel pms gle
pes nob bul cbk hun uig rus spa hye tel afr mon arz hrv nov gsw nds ukr uzb lit ina lfn zsm ita
cmn lvs glg ceb bre ben swg arq kab fra por tat oci pol war aze vie nno cha mhr dan ell amh pam
hsb srp epo kzj awa fao mal ile bos cor cat eus yue swe dtp kat jpn csb xho orv ind tuk max swh
hin dsb ber tam slk tgl ast mkd khm ces tzl urd ara kor yid fin tha wuu"""
MTEB_TATOEBA = frozenset(_MTEB.split())
XTREME = "xtreme"  # --langs xtreme: the languages XTREME scores the task on
_BUCC_ALIASES = {"deu": "de", "fra": "fr", "rus": "ru", "cmn": "zh", "zho": "zh"}
_TATOEBA_TO_ISO1 = {v: k for k, v in TATOEBA.items()}


def iso1(code: str) -> str:
    """Two-letter code of a Tatoeba or BUCC code (``deu`` -> ``de``); unknown codes unchanged."""
    return _TATOEBA_TO_ISO1.get(code, _BUCC_ALIASES.get(code, code))


def resolve(lang: str, codes: Codes, available: set[str] | None = None, hub: bool = False) -> str:
    """The file-name code for ``lang`` under ``codes``; a clear error for an unknown language.

    ``available``: codes found in a data directory; such a code is accepted as it is.
    ``hub``: Tatoeba from the hub, which also has mteb/tatoeba-bitext-mining's languages.
    """
    code = lang.strip()
    if codes == "iso639-3":
        table, aliases = TATOEBA, {}
        if code in TATOEBA.values() or (hub and code in MTEB_TATOEBA):
            return code
    else:
        table, aliases = BUCC, _BUCC_ALIASES
        if code in BUCC.values():
            return code
    if code in table:
        return table[code]
    if code in aliases:
        return aliases[code]
    if available and code in available:
        return code
    on_hub = sorted(MTEB_TATOEBA) if hub and codes == "iso639-3" else []
    known = sorted({*table.values(), *on_hub})
    found = f"; found in the data directory: {', '.join(sorted(available))}" if available else ""
    names = list(dict.fromkeys([*table.values(), *table, *on_hub, *(available or ())]))
    close = difflib.get_close_matches(code, names, n=6, cutoff=0.5)
    suggestions = list(dict.fromkeys(table.get(c, c) for c in close))[:3]
    hint = f"; did you mean {' or '.join(suggestions)}?" if suggestions else ""
    raise AlignError(
        f"langs: unknown language {lang!r}{hint} (known: {', '.join(known)}{found})",
        param="langs",
    )


def parse_langs(
    spec: str, codes: Codes, available: set[str] | None = None, hub: bool = False
) -> list[str]:
    """File codes of a comma list; ``xtreme`` (alone or in the list: ``xtreme,swe``) stands for
    the languages XTREME scores (Tatoeba's 36, BUCC's 4); ``hub``: see :func:`resolve`."""
    named = XTREME_TATOEBA if codes == "iso639-3" else XTREME_BUCC
    langs = []
    for part in (p.strip() for p in spec.split(",")):
        langs.extend(named if part.lower() == XTREME else [part] if part else [])
    if not langs:
        raise AlignError("langs: no language given", param="langs")
    return list(dict.fromkeys(resolve(lang, codes, available, hub) for lang in langs))
