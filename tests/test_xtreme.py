from pathlib import Path

import pytest

from align.data.xtreme import (
    BuccSplit,
    ParallelSet,
    bucc_langs,
    read_bucc,
    read_tatoeba,
    tatoeba_langs,
    write_bucc,
    write_tatoeba,
)
from align.errors import AlignError


def test_tatoeba_round_trip(tmp_path: Path) -> None:
    pairs = ParallelSet("deu", ["Hallo Welt", "Guten Tag ü"], ["Hello world", "Good day"])
    write_tatoeba(tmp_path, pairs)
    assert (tmp_path / "tatoeba.deu-eng.deu").read_text(
        encoding="utf-8"
    ) == "Hallo Welt\nGuten Tag ü\n"
    back = read_tatoeba(tmp_path, "deu")
    assert back == pairs
    assert tatoeba_langs(tmp_path) == {"deu"}


def test_bucc_round_trip(tmp_path: Path) -> None:
    split = BuccSplit(
        "de",
        "dev",
        {"de-1": "Hallo", "de-2": "Welt"},
        {"en-1": "Hello", "en-9": "x y"},
        [("de-1", "en-1")],
    )
    write_bucc(tmp_path, split)
    assert (tmp_path / "de-en.dev.gold").read_text() == "de-1\ten-1\n"
    assert read_bucc(tmp_path, "de", "dev") == split
    assert bucc_langs(tmp_path) == {"de"}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_misaligned_parallel_files(tmp_path: Path) -> None:
    _write(tmp_path / "tatoeba.fra-eng.fra", b"a\nb\nc\n")
    _write(tmp_path / "tatoeba.fra-eng.eng", b"a\nb\n")
    with pytest.raises(AlignError, match=r"misaligned.*3 lines.*2"):
        read_tatoeba(tmp_path, "fra")


def test_empty_line_names_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path / "tatoeba.fra-eng.fra", b"a\n\nc\n")
    _write(tmp_path / "tatoeba.fra-eng.eng", b"a\nb\nc\n")
    with pytest.raises(AlignError, match=r"tatoeba\.fra-eng\.fra:2: empty line"):
        read_tatoeba(tmp_path, "fra")


def test_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path / "tatoeba.fra-eng.fra", b"a\nb\n")
    _write(tmp_path / "tatoeba.fra-eng.eng", b"a\nb\xff\xfe\n")
    with pytest.raises(AlignError, match=r"tatoeba\.fra-eng\.eng:2: invalid UTF-8"):
        read_tatoeba(tmp_path, "fra")


def test_empty_and_missing_files(tmp_path: Path) -> None:
    _write(tmp_path / "tatoeba.fra-eng.fra", b"")
    _write(tmp_path / "tatoeba.fra-eng.eng", b"a\n")
    with pytest.raises(AlignError, match="file is empty"):
        read_tatoeba(tmp_path, "fra")
    with pytest.raises(AlignError, match="file not found"):
        read_tatoeba(tmp_path, "deu")


def test_bucc_gold_id_absent(tmp_path: Path) -> None:
    _write(tmp_path / "de-en.dev.de", b"de-1\tHallo\n")
    _write(tmp_path / "de-en.dev.en", b"en-1\tHello\n")
    _write(tmp_path / "de-en.dev.gold", b"de-1\ten-1\nde-7\ten-1\n")
    with pytest.raises(AlignError, match=r"de-en\.dev\.gold:2: id 'de-7' is not in"):
        read_bucc(tmp_path, "de", "dev")


def test_bucc_malformed_and_duplicate_ids(tmp_path: Path) -> None:
    _write(tmp_path / "de-en.dev.de", b"de-1\tHallo\nno tab here\n")
    _write(tmp_path / "de-en.dev.en", b"en-1\tHello\n")
    with pytest.raises(AlignError, match=r"de-en\.dev\.de:2: expected 'id<TAB>sentence'"):
        read_bucc(tmp_path, "de", "dev")
    _write(tmp_path / "de-en.dev.de", b"de-1\tHallo\nde-1\tWelt\n")
    with pytest.raises(AlignError, match=r"de-en\.dev\.de:2: duplicate sentence id"):
        read_bucc(tmp_path, "de", "dev")


def test_writer_rejects_bad_sentences(tmp_path: Path) -> None:
    with pytest.raises(AlignError):
        write_tatoeba(tmp_path, ParallelSet("deu", ["a\tb"], ["x"]))
    with pytest.raises(AlignError):
        write_tatoeba(tmp_path, ParallelSet("deu", ["a", "b"], ["x"]))
    assert not any(tmp_path.iterdir())


def test_byte_order_mark_is_not_text(tmp_path: Path) -> None:
    _write(tmp_path / "tatoeba.fra-eng.fra", b"\xef\xbb\xbfBonjour\nb\n")
    _write(tmp_path / "tatoeba.fra-eng.eng", b"Hello\nb\n")
    assert read_tatoeba(tmp_path, "fra").src[0] == "Bonjour"


def test_nul_line_is_rejected(tmp_path: Path) -> None:
    _write(tmp_path / "tatoeba.fra-eng.fra", b"a\n\x00\x00\x00\n")
    _write(tmp_path / "tatoeba.fra-eng.eng", b"a\nb\n")
    with pytest.raises(AlignError, match=r"tatoeba\.fra-eng\.fra:2: NUL byte"):
        read_tatoeba(tmp_path, "fra")


def test_bucc_2018_release_names(tmp_path: Path) -> None:
    from align.data.xtreme import bucc_layout

    for split, name in (("dev", "sample"), ("test", "training")):
        _write(tmp_path / f"de-en.{name}.de", f"de-{split}\tHallo\n".encode())
        _write(tmp_path / f"de-en.{name}.en", f"en-{split}\tHello\n".encode())
        _write(tmp_path / f"de-en.{name}.gold", f"de-{split}\ten-{split}\n".encode())
    assert bucc_layout(tmp_path, "de") == "bucc2018"
    assert bucc_langs(tmp_path) == {"de"}
    split = read_bucc(tmp_path, "de", "test", "bucc2018")
    assert split.gold == [("de-test", "en-test")]
    with pytest.raises(AlignError, match=r"looked for fr-en\.dev\.fr \+ fr-en\.test\.fr and "):
        bucc_layout(tmp_path, "fr")
