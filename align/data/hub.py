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
2018 release archives (:mod:`align.data.bucc_release`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from align.data import xtreme
from align.data.langs import MTEB_TATOEBA, TATOEBA, XTREME_BUCC, XTREME_TATOEBA, iso1
from align.errors import AlignError, install_hint

__all__ = ["XTREME_BUCC", "XTREME_TATOEBA", "tatoeba_from_hub"]
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
DATASETS_EXTRA = install_hint("datasets")
PROBE_SECONDS = 3.0  # how long the hub may take to answer before "no network" is said


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


def _read_parquet(files: list[Path]) -> list[dict[str, Any]]:
    """Every row of the files; a file that is not parquet (or is cut short) is one line."""
    pq = _parquet()
    import pyarrow as pa

    rows: list[dict[str, Any]] = []
    for f in files:
        try:
            rows += pq.read_table(f).to_pylist()
        except (pa.ArrowException, OSError, ValueError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            raise AlignError(f"{f}: not a readable parquet file ({reason})") from exc
    return rows


def hub_unreachable() -> str | None:
    """Why the hub cannot be reached, in a few words; None when it answers. Offline settings
    (``HF_HUB_OFFLINE``, ``HF_DATASETS_OFFLINE``) are read first, then one connection with a
    short timeout: without network the refusal comes in seconds, not after the hub client's
    retries."""
    import os
    import socket
    from urllib.parse import urlparse

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{var} is set"
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urlparse(endpoint)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=PROBE_SECONDS):
            return None
    except OSError as exc:
        return f"{host}:{port} unreachable: {exc.strerror or type(exc).__name__}"


def _load_from_hub(where: HubConfig) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError as exc:
        raise AlignError(f"Tatoeba from the hub needs the datasets extra: {DATASETS_EXTRA}") from (
            exc
        )
    why = hub_unreachable()
    if why is not None:
        raise AlignError(
            f"{where.repo} {where.config}: the hub cannot be reached ({why}); behind a firewall "
            "or offline, pass a local copy of the repository with --from"
        )
    import logging

    quiet = [logging.getLogger(n) for n in ("datasets", "huggingface_hub", "fsspec")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.ERROR)
    try:
        table = datasets.load_dataset(where.repo, where.config, split=where.split)
    except Exception as exc:  # the network, the hub: one line, the source named
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise AlignError(
            f"{where.repo} {where.config}: could not be loaded ({reason}); behind a firewall, "
            "pass a local copy of the repository with --from"
        ) from exc
    finally:
        for q, level in zip(quiet, levels, strict=True):
            q.setLevel(level)
    return list(table)


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
        return _read_parquet(files), ", ".join(str(f) for f in files)
    return _load_from_hub(where), str(where)


def _lang_code(value: Any) -> str:
    """A row's language field as a code: ``afr``, or the suffix of a file name naming it."""
    text = str(value).strip().lower()
    return text.rsplit(".", 1)[-1] if ("/" in text or "." in text) else text


def check_sentences(rows: list[dict[str, Any]], columns: tuple[str, ...], where: str) -> None:
    """Every sentence a string holding text: a NULL, a number, a list or a struct is refused
    naming the column and the first such row (before anything is written)."""
    for column in columns:
        for i, row in enumerate(rows):
            value = row[column]
            if value is None:
                raise AlignError(f"{where}: row {i}: {column} is NULL (a pair needs both sides)")
            if not isinstance(value, str):
                raise AlignError(
                    f"{where}: column {column} holds {type(value).__name__} values (row {i}: "
                    f"{str(value)[:60]!r}); expected sentences (strings)"
                )
            if not value.strip():
                raise AlignError(f"{where}: row {i}: {column} is empty")


def english_side(rows: list[dict[str, Any]], lang: str, where: str) -> str:
    """``source`` or ``target``: the side every row marks as English (checked, not assumed);
    the other side of every row must be ``lang`` (its file code or two-letter name)."""
    if not rows:
        raise AlignError(f"{where}: no rows for tatoeba.{lang}")
    missing = {"source_sentence", "target_sentence", "source_lang", "target_lang"} - set(rows[0])
    if missing:
        raise AlignError(f"{where}: missing column(s) {', '.join(sorted(missing))}")
    check_sentences(rows, ("source_sentence", "target_sentence"), where)
    names = {lang, iso1(lang)}
    sides = set()
    for i, row in enumerate(rows):
        codes = {s: _lang_code(row[f"{s}_lang"]) for s in ("source", "target")}
        english = [s for s, code in codes.items() if code in _ENGLISH]
        if len(english) != 1:
            raise AlignError(
                f"{where}: row {i}: source_lang {row['source_lang']!r}, target_lang "
                f"{row['target_lang']!r}: expected exactly one English side"
            )
        other = "target" if english[0] == "source" else "source"
        if codes[other] not in names:
            raise AlignError(
                f"{where}: row {i}: {other}_lang is {row[f'{other}_lang']!r}, not {lang!r} "
                "(the language asked for)"
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
    check_sentences(rows, ("sentence1", "sentence2"), where)
    src, tgt = [r["sentence1"] for r in rows], [r["sentence2"] for r in rows]
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
        [r[f"{other}_sentence"] for r in rows],
        [r[f"{english}_sentence"] for r in rows],
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
