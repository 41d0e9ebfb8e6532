import pytest

from align.data.langs import parse_langs, resolve
from align.errors import AlignError
from align.layers import parse_layers


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("all", list(range(13))),
        ("8", [8]),
        ("4-12", list(range(4, 13))),
        ("-1", [12]),
        ("0,6,12", [0, 6, 12]),
        ("-2--1", [11, 12]),
        (" 3 , 3 ", [3]),
    ],
)
def test_parse_layers(spec: str, expected: list[int]) -> None:
    assert parse_layers(spec, 12) == expected


@pytest.mark.parametrize("spec", ["13", "-14", "0-13", "x", "5-3", ""])
def test_parse_layers_rejects(spec: str) -> None:
    with pytest.raises(AlignError, match="--layers"):
        parse_layers(spec, 12)


def test_layer_beyond_depth_message() -> None:
    with pytest.raises(AlignError, match=r"layer 13 is beyond the model's depth \(valid: 0\.\.12"):
        parse_layers("13", 12)


def test_langs() -> None:
    assert parse_langs("de,fra, cmn", "iso639-3") == ["deu", "fra", "cmn"]
    assert parse_langs("deu,zh", "iso639-1") == ["de", "zh"]
    assert resolve("xyz", "iso639-3", available={"xyz"}) == "xyz"
    with pytest.raises(AlignError, match="unknown language 'klingon'"):
        parse_langs("de,klingon", "iso639-3")
    with pytest.raises(AlignError, match="unknown language 'es'"):
        parse_langs("es", "iso639-1")
