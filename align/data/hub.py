"""Retrieval data by name: Tatoeba from the hub dataset ``google/xtreme`` (or a local copy laid
out like it), BUCC 2018 from the release archives a user downloaded.

A Tatoeba language that google/xtreme lacks (it holds XTREME's 36) comes from
``mteb/tatoeba-bitext-mining`` (LASER's Tatoeba v1 test sets, as mteb's Tatoeba task reads
them): config ``{lang}-eng``, split ``test``, columns ``sentence1`` (the language) and
``sentence2`` (English), as mteb's task metadata pairs them (``eval_langs``: [lang, eng]); its
rows carry no language column, so which side is English is what the config name says.

Tatoeba: config ``tatoeba.{lang}`` (ISO 639-3, as XTREME names its files), split
``validation``, columns ``source_sentence``, ``target_sentence``, ``source_lang``,
``target_lang``. Which side is English is read from the language columns of every row, not
assumed; the files written are XTREME's layout (``tatoeba.{lang}-eng.{lang}`` /
``tatoeba.{lang}-eng.eng``), read by every command as any other Tatoeba folder. ``--from DIR``
reads ``DIR/tatoeba.{lang}/validation-*.parquet`` (the hub repository's own files: a mirror, a
firewall, the tests) through the same code path as a download, up to the download.

BUCC: the hub's copies hold the gold pairs only (nothing to mine), so BUCC comes from the BUCC
2018 release archives (``bucc2018-{lang}-en.{sample,training}-gold.tar.bz2``), unpacked into
the release's naming (``{lang}-en.sample.{lang}``, ...), which every command reads.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from align.data import xtreme
from align.data.langs import MTEB_TATOEBA, TATOEBA, XTREME_BUCC, XTREME_TATOEBA
from align.errors import AlignError

__all__ = ["XTREME_BUCC", "XTREME_TATOEBA", "tatoeba_from_hub", "unpack_bucc"]
HUB_TATOEBA = "google/xtreme"
HUB_TATOEBA_MTEB = "mteb/tatoeba-bitext-mining"
_ON_XTREME = frozenset(TATOEBA[code] for code in XTREME_TATOEBA)
_ENGLISH = {"eng", "en", "english"}
BUCC_FROM_HUB = (
    "BUCC from the hub is refused: the hub's copies (google/xtreme bucc18.*) hold only the gold "
    "pairs, so there is nothing to mine; download the BUCC 2018 release archives "
    "(bucc2018-{lang}-en.sample-gold.tar.bz2 and .training-gold.tar.bz2, "
    "https://comparable.limsi.fr/bucc2018/) and pass them with --from"
)
DATASETS_EXTRA = "pip install 'align[datasets]'"


def _parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise AlignError(
            f"reading the hub's parquet files needs pyarrow: {DATASETS_EXTRA}"
        ) from exc
    return pq


@dataclass(frozen=True)
class HubConfig:
    """Where one language's Tatoeba pairs are on the hub."""

    repo: str
    config: str
    split: str

    def __str__(self) -> str:
        return f"{self.repo} {self.config} ({self.split})"


def hub_config(lang: str) -> HubConfig:
    """google/xtreme for XTREME's 36 languages, mteb/tatoeba-bitext-mining for the others."""
    if lang in _ON_XTREME:
        return HubConfig(HUB_TATOEBA, f"tatoeba.{lang}", "validation")
    if lang in MTEB_TATOEBA:
        return HubConfig(HUB_TATOEBA_MTEB, f"{lang}-eng", "test")
    raise AlignError(
        f"langs: Tatoeba {lang!r} is in neither {HUB_TATOEBA} nor {HUB_TATOEBA_MTEB}",
        param="langs",
    )


def hub_rows(lang: str, source: Path | None = None) -> tuple[list[dict[str, Any]], str]:
    """The rows of the language's config (:func:`hub_config`) and where they came from: parquet
    files of a local copy of the repository, or the hub (``datasets``, online)."""
    where = hub_config(lang)
    config, split = where.config, where.split
    if source is not None:
        files = sorted((Path(source) / config).glob(f"{split}-*.parquet"))
        if not files:
            raise AlignError(
                f"--from {source}: no {config}/{split}-*.parquet (a copy of the hub "
                f"repository {where.repo} holds one folder per config)"
            )
        pq = _parquet()
        rows = [row for f in files for row in pq.read_table(f).to_pylist()]
        return rows, ", ".join(str(f) for f in files)
    try:
        import datasets
    except ImportError as exc:
        raise AlignError(f"Tatoeba from the hub needs the datasets extra: {DATASETS_EXTRA}") from (
            exc
        )
    try:
        table = datasets.load_dataset(where.repo, config, split=split)
    except Exception as exc:  # the network, the hub: one line, the source named
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise AlignError(
            f"{where.repo} {config}: could not be loaded ({reason}); behind a firewall, pass "
            "a local copy of the repository with --from"
        ) from exc
    return list(table), str(where)


def english_side(rows: list[dict[str, Any]], lang: str, where: str) -> str:
    """``source`` or ``target``: the side every row marks as English (checked, not assumed)."""
    if not rows:
        raise AlignError(f"{where}: no rows for tatoeba.{lang}")
    missing = {"source_sentence", "target_sentence", "source_lang", "target_lang"} - set(rows[0])
    if missing:
        raise AlignError(f"{where}: missing column(s) {', '.join(sorted(missing))}")
    sides = set()
    for i, row in enumerate(rows):
        english = [s for s in ("source", "target") if str(row[f"{s}_lang"]).lower() in _ENGLISH]
        if len(english) != 1:
            raise AlignError(
                f"{where}: row {i}: source_lang {row['source_lang']!r}, target_lang "
                f"{row['target_lang']!r}: expected exactly one English side"
            )
        sides.add(english[0])
    if len(sides) != 1:
        raise AlignError(f"{where}: English is the source in some rows, the target in others")
    return sides.pop()


def _mteb_pairs(rows: list[dict[str, Any]], lang: str, where: str) -> xtreme.ParallelSet:
    """mteb/tatoeba-bitext-mining's rows: ``sentence1`` the language, ``sentence2`` English."""
    if not rows:
        raise AlignError(f"{where}: no rows for {lang}-eng")
    missing = {"sentence1", "sentence2"} - set(rows[0])
    if missing:
        raise AlignError(f"{where}: missing column(s) {', '.join(sorted(missing))}")
    src, tgt = [str(r["sentence1"]) for r in rows], [str(r["sentence2"]) for r in rows]
    return xtreme.ParallelSet(lang, src, tgt)


def tatoeba_from_hub(lang: str, source: Path | None = None) -> tuple[xtreme.ParallelSet, dict]:
    """One language's pairs (``src`` the other language, ``tgt`` English) and what was read."""
    rows, where = hub_rows(lang, source)
    repo = hub_config(lang).repo
    if repo == HUB_TATOEBA_MTEB:
        info = {"repo": repo, "read": where, "english_side": "sentence2", "pairs": len(rows)}
        return _mteb_pairs(rows, lang, where), info
    english = english_side(rows, lang, where)
    other = "target" if english == "source" else "source"
    pairs = xtreme.ParallelSet(
        lang,
        [str(r[f"{other}_sentence"]) for r in rows],
        [str(r[f"{english}_sentence"]) for r in rows],
    )
    return pairs, {"repo": repo, "read": where, "english_side": english, "pairs": len(rows)}


def tatoeba_codes(langs: list[str]) -> list[str]:
    """XTREME's file codes (ISO 639-3) of two-letter or three-letter language names."""
    return [TATOEBA.get(code, code) for code in langs]


def write_tatoeba_from_hub(out: Path, langs: list[str], source: Path | None = None) -> dict:
    """Every language's files in XTREME's layout under ``out``; the sources read, per language."""
    read = {}
    for lang in tatoeba_codes(langs):
        pairs, info = tatoeba_from_hub(lang, source)
        xtreme.write_tatoeba(out, pairs)
        read[lang] = info
    return read


def _member(tar: tarfile.TarFile, name: str, archive: Path) -> bytes:
    for member in tar.getmembers():
        if member.isfile() and Path(member.name).name == name:
            data = tar.extractfile(member)
            assert data is not None
            return data.read()
    raise AlignError(f"{archive}: no {name} inside (a BUCC 2018 release archive holds it)")


def _open_tar(archive: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(archive, "r:*")
    except (OSError, tarfile.TarError) as exc:
        raise AlignError(f"{archive}: not a readable tar archive ({exc})") from exc


def unpack_bucc(out: Path, archives: list[Path]) -> dict[str, list[str]]:
    """The BUCC 2018 release archives' sentence and gold files in the release's naming
    (``{lang}-en.{sample|training}.{lang|en|gold}``), each checked for; the files per archive."""
    written: dict[str, list[str]] = {}
    for archive in archives:
        archive = Path(archive)
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
        with _open_tar(archive) as tar:
            files = []
            for suffix in (lang, "en", "gold"):
                target = f"{lang}-en.{split}.{suffix}"
                (Path(out) / target).write_bytes(_member(tar, target, archive))
                files.append(target)
        written[str(archive)] = files
    for lang in {f.split("-")[0] for files in written.values() for f in files}:
        for split in xtreme.BUCC_SPLITS:
            if xtreme.bucc_paths(out, lang, split, "bucc2018")["src"].is_file():
                xtreme.read_bucc(out, lang, split, "bucc2018")  # every file checked as read
    return written
