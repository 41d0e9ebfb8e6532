"""Which family and script each language belongs to, from a small table shipped with align
(``languages/families.csv``: Glottolog's top-level families, Indo-European by branch; ISO 15924
scripts): the order pair figures and tables give languages in, so that related languages sit
together. A FLORES+ code (``deu_Latn``) is looked up by its ISO 639-3 part, its script taken from
the code; a language the table lacks goes last, alphabetically."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

UNKNOWN = "~"  # sorts after every family name


@dataclass(frozen=True)
class Language:
    code: str
    family: str
    script: str
    name: str


@lru_cache(maxsize=1)
def table() -> dict[str, Language]:
    text = resources.files("align.data").joinpath("languages/families.csv").read_text("utf-8")
    rows = csv.DictReader(io.StringIO("".join(ln for ln in text.splitlines(True)
                                              if not ln.startswith("#"))))  # fmt: skip
    return {r["code"]: Language(r["code"], r["family"], r["script"], r["name"]) for r in rows}


def describe(code: str) -> Language:
    """``code``'s family and script (the script of a FLORES+ code from the code itself)."""
    base, _, script = code.partition("_")
    found = table().get(base)
    if found is None:
        return Language(code, UNKNOWN, script or UNKNOWN, code)
    return Language(code, found.family, script or found.script, found.name)


def ordered(codes: list[str]) -> list[str]:
    """``codes`` by family, then script, then code; unknown languages last."""
    return sorted(codes, key=lambda c: (describe(c).family, describe(c).script, c))
