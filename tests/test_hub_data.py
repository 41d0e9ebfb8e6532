"""Retrieval data by name (issue 22), offline: fixtures laid out like the hub repository
(parquet per config) and like the BUCC 2018 release archives, read through the code path of a
real download up to the download."""

from __future__ import annotations

import io
import json
import logging
import socket
import sys
import tarfile
from pathlib import Path

import pytest

from align.cli import main
from align.data import hub, xtreme
from align.data.langs import XTREME_TATOEBA, parse_langs

# Three languages, the English side given as the hub gives it (target), sentences of the
# Bible demo set so that the tiny model's tokenizer knows them.
PAIRS = {
    "deu": [("Im Anfang war das Wort.", "In the beginning was the Word."),
            ("Und das Licht scheint in der Finsternis.", "And the light shineth in darkness."),
            ("Gott ist Geist.", "God is a Spirit."),
            ("Ich bin der Weg.", "I am the way."),
            ("Selig sind die Sanftmütigen.", "Blessed are the meek.")],
    "fra": [("Au commencement était la Parole.", "In the beginning was the Word."),
            ("La lumière luit dans les ténèbres.", "And the light shineth in darkness."),
            ("Dieu est Esprit.", "God is a Spirit."),
            ("Je suis le chemin.", "I am the way."),
            ("Heureux les débonnaires.", "Blessed are the meek.")],
    "rus": [("В начале было Слово.", "In the beginning was the Word."),
            ("И свет во тьме светит.", "And the light shineth in darkness."),
            ("Бог есть дух.", "God is a Spirit."),
            ("Я есмь путь.", "I am the way."),
            ("Блаженны кроткие.", "Blessed are the meek.")],
}  # fmt: skip


def write_hub_copy(root: Path, english: str = "target") -> Path:
    """A local copy of google/xtreme's Tatoeba configs: tatoeba.{lang}/validation-*.parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for lang, pairs in PAIRS.items():
        other = "source" if english == "target" else "target"
        table = pa.table(
            {
                f"{other}_sentence": [p[0] for p in pairs],
                f"{english}_sentence": [p[1] for p in pairs],
                f"{other}_lang": [lang] * len(pairs),
                f"{english}_lang": ["eng"] * len(pairs),
            }
        )
        (root / f"tatoeba.{lang}").mkdir(parents=True)
        pq.write_table(table, root / f"tatoeba.{lang}" / "validation-00000-of-00001.parquet")
    return root


def test_no_test_reaches_the_network() -> None:
    """The guard every test runs under bites (a connection off this machine is refused)."""
    from conftest import NetworkAttempted

    with pytest.raises(NetworkAttempted), socket.socket() as sock:
        sock.connect(("huggingface.co", 443))


def test_xtreme_names_its_36_tatoeba_languages() -> None:
    """The list in google-research/xtreme evaluate.py, TASK2LANGS["tatoeba"] (commit 0918248),
    read there and written here as XTREME writes it."""
    from_xtreme = "ar,he,vi,id,jv,tl,eu,ml,ta,te,af,nl,de,el,bn,hi,mr,ur,fa,fr,it,pt,es,bg"
    from_xtreme = f"{from_xtreme},ru,ja,ka,ko,th,sw,zh,kk,tr,et,fi,hu".split(",")
    assert list(XTREME_TATOEBA) == from_xtreme and len(from_xtreme) == 36
    codes = parse_langs("xtreme", "iso639-3")
    assert len(codes) == 36 and codes[:3] == ["ara", "heb", "vie"] and "pes" in codes
    assert "cmn" in codes and "swh" in codes and "tgl" in codes
    assert parse_langs("xtreme", "iso639-1") == ["de", "fr", "ru", "zh"]
    assert parse_langs("xtreme,swe", "iso639-3", hub=True) == [*codes, "swe"]


@pytest.mark.parametrize("english", ["target", "source"])
def test_a_hub_copy_gives_the_files_written_by_hand(english, tmp_path) -> None:
    copy = write_hub_copy(tmp_path / "hub", english)
    out = tmp_path / "from-hub"
    argv = ["data", "tatoeba", "--langs", "deu,fra,rus", "--from", str(copy), "--out", str(out)]
    assert main(argv) == 0
    by_hand = tmp_path / "by-hand"
    by_hand.mkdir()
    for lang, pairs in PAIRS.items():
        src, tgt = (list(side) for side in zip(*pairs, strict=True))
        xtreme.write_tatoeba(by_hand, xtreme.ParallelSet(lang, src, tgt))
    written = sorted(p.name for p in out.iterdir() if p.name != "data_meta.json")
    assert written == sorted(p.name for p in by_hand.iterdir())
    for name in written:
        assert (out / name).read_bytes() == (by_hand / name).read_bytes(), name
    meta = json.loads((out / "data_meta.json").read_text())
    assert meta["read"]["deu"]["english_side"] == english


def test_a_hub_copy_and_the_hand_written_files_retrieve_alike(tiny_model_dir, tmp_path) -> None:
    copy = write_hub_copy(tmp_path / "hub")
    assert main(["data", "tatoeba", "--langs", "deu,fra,rus", "--from", str(copy),
                 "--out", str(tmp_path / "a")]) == 0  # fmt: skip
    by_hand = tmp_path / "b"
    by_hand.mkdir()
    for lang, pairs in PAIRS.items():
        src, tgt = (list(side) for side in zip(*pairs, strict=True))
        xtreme.write_tatoeba(by_hand, xtreme.ParallelSet(lang, src, tgt))
    scores = []
    for data in (tmp_path / "a", by_hand):
        out = tmp_path / f"out-{data.name}"
        argv = ["retrieve", "--ckpt", str(tiny_model_dir), "--data-dir", str(data)]
        assert main([*argv, "--out", str(out), "--no-cache", "--no-plot", "--margin-k", "2"]) == 0
        (path,) = out.glob("retrieve-*.json")
        records = json.loads(path.read_text())["scores"]
        scores.append({(r["lang"], r["layer"], r["metric"]): r["value"] for r in records})
    assert scores[0] == scores[1] and len(scores[0]) > 0


def test_a_hub_copy_with_no_english_side_is_refused(tmp_path) -> None:
    copy = write_hub_copy(tmp_path / "hub")
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = copy / "tatoeba.deu" / "validation-00000-of-00001.parquet"
    table = pq.read_table(path).to_pylist()
    table[2]["target_lang"] = "fra"
    pq.write_table(pa.Table.from_pylist(table), path)
    with pytest.raises(Exception, match=r"row 2: .*expected exactly one English side"):
        hub.tatoeba_from_hub("deu", copy)


SWEDISH = [("I begynnelsen var Ordet.", "In the beginning was the Word."),
           ("Gud är ande.", "God is a Spirit."),
           ("Jag är vägen.", "I am the way.")]  # fmt: skip


def write_mteb_copy(root: Path) -> Path:
    """A local copy of mteb/tatoeba-bitext-mining's swe-eng config: swe-eng/test-*.parquet,
    sentence1 the language, sentence2 English."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"sentence1": [p[0] for p in SWEDISH], "sentence2": [p[1] for p in SWEDISH]})
    (root / "swe-eng").mkdir(parents=True)
    pq.write_table(table, root / "swe-eng" / "test-00000-of-00001.parquet")
    return root


def test_a_language_google_xtreme_lacks_comes_from_mteb(tmp_path) -> None:
    from align.data.langs import MTEB_TATOEBA, TATOEBA

    # mteb's Tatoeba task lists 112 languages, XTREME's 36 among them
    assert len(MTEB_TATOEBA) == 112 and {TATOEBA[c] for c in XTREME_TATOEBA} <= MTEB_TATOEBA
    assert hub.hub_config("deu").repo == "google/xtreme"
    assert str(hub.hub_config("swe")) == "mteb/tatoeba-bitext-mining swe-eng (test)"
    copy = write_mteb_copy(write_hub_copy(tmp_path / "hub"))
    out = tmp_path / "out"
    assert (
        main(["data", "tatoeba", "--langs", "de,swe", "--from", str(copy), "--out", str(out)]) == 0
    )
    by_hand = tmp_path / "by-hand"
    by_hand.mkdir()
    src, tgt = (list(side) for side in zip(*SWEDISH, strict=True))
    xtreme.write_tatoeba(by_hand, xtreme.ParallelSet("swe", src, tgt))
    for name in ("tatoeba.swe-eng.swe", "tatoeba.swe-eng.eng"):
        assert (out / name).read_bytes() == (by_hand / name).read_bytes(), name
    meta = json.loads((out / "data_meta.json").read_text())
    assert meta["read"]["swe"]["repo"] == "mteb/tatoeba-bitext-mining"
    assert meta["read"]["deu"]["repo"] == "google/xtreme"
    assert meta["source"] == "google/xtreme, mteb/tatoeba-bitext-mining"


def test_a_language_on_neither_hub_dataset_is_refused_before_any_work(tmp_path, caplog) -> None:
    out = tmp_path / "out"
    with caplog.at_level(logging.ERROR):
        assert main(["data", "tatoeba", "--langs", "swx", "--out", str(out)]) != 0
    (line,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert "unknown language 'swx'" in line and "swe" in line and "\n" not in line
    assert not out.exists()
    with pytest.raises(Exception, match="no swe-eng/test-"):  # --from names mteb's layout
        hub.tatoeba_from_hub("swe", write_hub_copy(tmp_path / "hub"))


def _release_archive(root: Path, lang: str, split: str, n: int = 6) -> Path:
    """A bucc2018-{lang}-en.{split}-gold.tar.bz2 laid out as the release's."""
    sentences = {
        f"{lang}-en.{split}.{lang}": "".join(f"{lang}-{i:06d}\tSatz {i} hier\n" for i in range(n)),
        f"{lang}-en.{split}.en": "".join(f"en-{i:06d}\tsentence {i} here\n" for i in range(n)),
        f"{lang}-en.{split}.gold": "".join(f"{lang}-{i:06d}\ten-{i:06d}\n" for i in range(n // 2)),
    }
    archive = root / f"bucc2018-{lang}-en.{split}-gold.tar.bz2"
    with tarfile.open(archive, "w:bz2") as tar:
        for name, text in sentences.items():
            data = text.encode()
            info = tarfile.TarInfo(f"bucc2018/{lang}-en/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def test_release_archives_unpack_to_a_set_retrieve_reads(tiny_model_dir, tmp_path) -> None:
    archives = [_release_archive(tmp_path, "de", s) for s in ("sample", "training")]
    out = tmp_path / "bucc"
    argv = ["data", "bucc", "--from", str(archives[0]), "--from", str(archives[1])]
    assert main([*argv, "--out", str(out)]) == 0
    files = [f"de-en.{s}.{x}" for s in ("sample", "training") for x in ("de", "en", "gold")]
    assert sorted(p.name for p in out.iterdir()) == sorted(["data_meta.json", *files])
    argv = ["retrieve", "--task", "bucc", "--ckpt", str(tiny_model_dir), "--data-dir", str(out)]
    assert main([*argv, "--out", str(tmp_path / "o"), "--no-cache", "--no-plot", "--margin-k", "2",
                 "--layers", "1"]) == 0  # fmt: skip


def test_an_archive_missing_a_file_is_refused(tmp_path, caplog) -> None:
    archive = tmp_path / "bucc2018-fr-en.sample-gold.tar.bz2"
    with tarfile.open(archive, "w:bz2") as tar:
        info = tarfile.TarInfo("bucc2018/fr-en/fr-en.sample.fr")
        info.size = 0
        tar.addfile(info, io.BytesIO(b""))
    with caplog.at_level(logging.ERROR):
        assert main(["data", "bucc", "--from", str(archive), "--out", str(tmp_path / "o")]) == 2
    assert "no fr-en.sample.en inside" in caplog.text and not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "bucc", "--source", "xtreme"],
        ["retrieve", "--task", "bucc", "--data", "xtreme"],
    ],
)
def test_bucc_from_the_hub_is_refused_in_one_line(argv, tmp_path, caplog, capsys) -> None:
    with caplog.at_level(logging.ERROR):
        assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0]
    assert "hold only the gold pairs" in errors[0] and "bucc2018-{lang}-en" in errors[0]
    assert "Traceback" not in capsys.readouterr().err


def test_the_missing_extra_is_named_in_one_line(tmp_path, monkeypatch, caplog) -> None:
    import builtins

    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith(("pyarrow", "datasets")):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    copy = write_hub_copy(tmp_path / "hub")
    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with caplog.at_level(logging.ERROR):
        argv = ["data", "tatoeba", "--langs", "deu", "--from", str(copy)]
        assert main([*argv, "--out", str(tmp_path / "o")]) == 2
        assert main(["data", "tatoeba", "--langs", "deu", "--out", str(tmp_path / "p")]) == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2 and all("pip install 'align[datasets]'" in e for e in errors)
    assert all('in a clone: pip install -e ".[datasets]"' in e for e in errors)  # both forms
    assert not (tmp_path / "o").exists() and not (tmp_path / "p").exists()


# --- issue 26, item 1: the hub reader refuses what it cannot use, before writing anything ---


def _rewrite(copy: Path, lang: str, **columns) -> None:
    """Replace columns of the copy's tatoeba.{lang} parquet file (pyarrow infers the types)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = copy / f"tatoeba.{lang}" / "validation-00000-of-00001.parquet"
    table = pq.read_table(path).to_pydict()
    table.update(columns)
    pq.write_table(pa.table(table), path)


def _data_argv(copy: Path, out: Path, langs: str = "deu,fra") -> list[str]:
    return ["data", "tatoeba", "--langs", langs, "--from", str(copy), "--out", str(out)]


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("source_sentence", list(range(5)), "column source_sentence holds int values (row 0"),
        ("target_sentence", [["a"], ["b"], ["c"], ["d"], ["e"]], "holds list values (row 0"),
        ("source_sentence", [{"t": "x"}] * 5, "column source_sentence holds dict values (row 0"),
        ("target_sentence", ["a", "b", None, "d", "e"], "row 2: target_sentence is NULL"),
        ("source_sentence", [None, "b", "c", "d", "e"], "row 0: source_sentence is NULL"),
        ("source_lang", ["deu", "deu", "deu", "fra", "deu"], "row 3: source_lang is 'fra', not"),
    ],
)
def test_the_hub_reader_refuses_rows_it_cannot_use(
    column, values, message, tmp_path, caplog, capsys
) -> None:
    from conftest import fails_in_one_line

    copy = write_hub_copy(tmp_path / "hub")
    _rewrite(copy, "fra" if column != "source_lang" else "deu", **{column: values})
    if column == "source_lang":
        message = "row 3: source_lang is 'fra', not 'deu'"
    out = tmp_path / "out"
    line = fails_in_one_line(_data_argv(copy, out), message, caplog, capsys)
    assert "validation-00000-of-00001.parquet" in line
    assert not out.exists()


@pytest.mark.parametrize("damage", ["not parquet", "truncated"])
def test_a_file_that_is_not_parquet_is_one_line(damage, tmp_path, caplog, capsys) -> None:
    from conftest import fails_in_one_line

    copy = write_hub_copy(tmp_path / "hub")
    path = copy / "tatoeba.fra" / "validation-00000-of-00001.parquet"
    data = path.read_bytes()
    bad = b"id,sentence\n1,hello\n" if damage == "not parquet" else data[: len(data) // 2]
    path.write_bytes(bad)
    out = tmp_path / "out"
    line = fails_in_one_line(_data_argv(copy, out), "not a readable parquet file", caplog, capsys)
    assert str(path) in line and not out.exists()


def test_without_network_the_hub_is_refused_in_seconds(
    tmp_path, monkeypatch, caplog, capsys
) -> None:
    """No --from and no network: one line at once (a failed name lookup, as offline), without
    the hub client's retries; with HF_HUB_OFFLINE set, the line says so."""
    import time
    import types

    from conftest import fails_in_one_line

    def never(*args, **kwargs):
        raise AssertionError("the hub client was called although the hub cannot be reached")

    # the datasets extra as installed (a stand-in where it is not: CI installs only [dev])
    stand_in = types.ModuleType("datasets")
    stand_in.load_dataset = never  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "datasets", stand_in)
    out = tmp_path / "out"
    argv = ["data", "tatoeba", "--langs", "deu", "--out", str(out)]
    fails_in_one_line(argv, "HF_HUB_OFFLINE is set", caplog, capsys)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE")

    def no_dns(*args, **kwargs):
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    started = time.perf_counter()
    line = fails_in_one_line(argv, "the hub cannot be reached", caplog, capsys)
    assert time.perf_counter() - started < 5
    assert "huggingface.co:443 unreachable" in line and "--from" in line
    assert not out.exists()


# --- issue 26, item 6: BUCC archives ---


def test_data_bucc_picks_languages_as_data_tatoeba_does(tmp_path, caplog, capsys) -> None:
    from conftest import fails_in_one_line

    archives = [_release_archive(tmp_path, lang, s) for lang in ("de", "fr")
                for s in ("sample", "training")]  # fmt: skip
    argv = ["data", "bucc", *[x for a in archives for x in ("--from", str(a))]]
    out = tmp_path / "bucc"
    assert main([*argv, "--langs", "fr", "--out", str(out)]) == 0
    assert sorted({p.name.split("-")[0] for p in out.iterdir() if p.name != "data_meta.json"}) == [
        "fr"
    ]
    line = fails_in_one_line([*argv, "--langs", "de,ru", "--out", str(tmp_path / "o")],
                             "--langs", caplog, capsys)  # fmt: skip
    assert "no archive given for 'ru'" in line and "de, fr" in line
    assert not (tmp_path / "o").exists()


def test_an_archive_error_names_the_archive_and_its_member(tmp_path, caplog, capsys) -> None:
    from conftest import fails_in_one_line

    archive = tmp_path / "bucc2018-de-en.sample-gold.tar.bz2"
    members = {
        "de-en.sample.de": "de-000000\tSatz\nde-000001\tnoch einer\n",
        "de-en.sample.en": "en-000000\tsentence\nen-000001\tanother\n",
        "de-en.sample.gold": "de-000000\ten-000000\nde-000009\ten-000001\n",
    }
    with tarfile.open(archive, "w:bz2") as tar:
        for name, text in members.items():
            info = tarfile.TarInfo(f"bucc2018/de-en/{name}")
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    out = tmp_path / "o"
    argv = ["data", "bucc", "--from", str(archive), "--out", str(out)]
    line = fails_in_one_line(argv, "id 'de-000009' is not in", caplog, capsys)
    assert f"{archive}:bucc2018/de-en/de-en.sample.gold:2" in line, line
    assert f"{archive}:bucc2018/de-en/de-en.sample.de" in line and ".tmp/" not in line
    assert not out.exists()


@pytest.mark.parametrize("damage", ["truncated", "not a tar"])
def test_a_damaged_archive_is_one_line(damage, tmp_path, caplog, capsys) -> None:
    from conftest import fails_in_one_line

    archive = _release_archive(tmp_path, "de", "sample", n=400)
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"PK\x03\x04zip")
    out = tmp_path / "o"
    argv = ["data", "bucc", "--from", str(archive), "--out", str(out)]
    line = fails_in_one_line(argv, "not a readable tar archive", caplog, capsys)
    assert line.startswith(str(archive)) and not out.exists()


def test_an_oversized_member_is_refused_from_its_header(tmp_path, caplog, capsys) -> None:
    """A member whose header claims 64 GiB: refused before a byte of it is read (the archive
    holds the header only, so reading it would fail differently)."""
    from conftest import fails_in_one_line

    archive = tmp_path / "bucc2018-de-en.sample-gold.tar.bz2"
    info = tarfile.TarInfo("bucc2018/de-en/de-en.sample.de")
    info.size = 64 << 30
    archive.write_bytes(info.tobuf(format=tarfile.GNU_FORMAT))
    out = tmp_path / "o"
    argv = ["data", "bucc", "--from", str(archive), "--out", str(out)]
    line = fails_in_one_line(argv, "by its header", caplog, capsys)
    assert f"{archive}:bucc2018/de-en/de-en.sample.de" in line and "68,719,476,736" in line
    assert not out.exists()
