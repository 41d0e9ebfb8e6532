"""Multi-way sets and every language pair (issue 28): FLORES+ read from its hub layout, the
Bible in the multi-way layout, every ordered pair scored from tiles of one product per layer,
equal to the Tatoeba task on the same sentences."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import fails_in_one_line

from align.cli import main
from align.data.bible import build_multiway_demo, build_tatoeba_demo
from align.retrieval.pairs import ordered_pairs, pair_outcomes
from align.retrieval.tatoeba import xsim_errors
from align.vectors import top1

SENTENCES = {
    "eng_Latn": ["The cat sleeps on the mat.", "It rains in Paris today.", "We read two books."],
    "deu_Latn": ["Die Katze schläft auf der Matte.", "Heute regnet es in Paris.", "Wir lesen."],
    "fra_Latn": ["Le chat dort sur le tapis.", "Il pleut à Paris aujourd'hui.", "Nous lisons."],
}


def _flores_copy(root: Path) -> Path:
    """A local copy of openlanguagedata/flores_plus as the hub lays it out: ``dev/{code}.jsonl``,
    one JSON object per sentence (``id``, ``text`` and the metadata), rows out of id order."""
    for lang, texts in SENTENCES.items():
        code, script = lang.split("_")
        path = root / "dev" / f"{lang}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [
            {"id": i + 1, "iso_639_3": code, "iso_15924": script, "glottocode": "none",
             "text": texts[i], "url": "https://example.org", "domain": "wikinews",
             "topic": "weather", "has_image": False, "has_hyperlink": False,
             "last_updated": "2.1"}
            for i in (2, 0, 1)
        ]  # fmt: skip
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return root


def _records(path: Path) -> dict:
    result = json.loads(path.read_text(encoding="utf-8"))
    return {
        (r["layer"], r["lang"], r.get("lang_b"), r["metric"]): r["value"] for r in result["scores"]
    }


def test_flores_from_its_hub_layout_equals_the_same_sentences_written_by_hand(
    tiny_model_dir, tmp_path
) -> None:
    source = _flores_copy(tmp_path / "flores_plus")
    assert main(["data", "flores", "--from", str(source), "--langs", ",".join(SENTENCES),
                 "--out", str(tmp_path / "read")]) == 0  # fmt: skip
    by_hand = tmp_path / "by-hand"
    by_hand.mkdir()
    for lang, texts in SENTENCES.items():
        (by_hand / f"{lang}.txt").write_bytes(("\n".join(texts) + "\n").encode("utf-8"))
        assert (tmp_path / "read" / f"{lang}.txt").read_bytes() == (
            by_hand / f"{lang}.txt"
        ).read_bytes()
    found = []
    for name in ("read", "by-hand"):
        argv = ["retrieve", "--task", "parallel", "--ckpt", str(tiny_model_dir), "--data-dir",
                str(tmp_path / name), "--out", str(tmp_path / f"out-{name}"), "--no-cache",
                "--margin-k", "2"]  # fmt: skip
        assert main(argv) == 0
        found.append(_records(tmp_path / f"out-{name}" / "retrieve-parallel-tiny-xlmr.json"))
    assert found[0] == found[1]
    pairs = {(lang, lang_b) for _, lang, lang_b, _ in found[0]}
    assert len(pairs) == 6  # every ordered pair of three languages


def test_pairs_with_english_equal_the_tatoeba_task_record_for_record(
    tiny_model_dir, tmp_path
) -> None:
    multi = build_multiway_demo(tmp_path / "multi", ["de", "fr"], n=40, seed=3)
    tatoeba = build_tatoeba_demo(tmp_path / "tat", ["de", "fr"], n=40, seed=3)
    common = ["--ckpt", str(tiny_model_dir), "--no-cache", "--margin-k", "3"]
    assert main(["retrieve", "--task", "parallel", "--pairs", "english", "--data-dir",
                 str(multi), "--out", str(tmp_path / "p"), *common]) == 0  # fmt: skip
    assert main(["retrieve", "--data-dir", str(tatoeba), "--out", str(tmp_path / "t"),
                 *common]) == 0  # fmt: skip
    pairs = _records(tmp_path / "p" / "retrieve-parallel-tiny-xlmr.json")
    tat = _records(tmp_path / "t" / "retrieve-tatoeba-tiny-xlmr.json")
    names = {"acc_xx2en": ("acc_a2b", False), "acc_en2xx": ("acc_a2b", True),
             "xsim_error": ("xsim_error_a2b", False)}  # fmt: skip
    compared = 0
    for (layer, lang, _, metric), value in tat.items():
        if metric not in names:
            continue
        name, reverse = names[metric]
        a, b = ("eng", lang) if reverse else (lang, "eng")
        assert pairs[(layer, a, b, name)] == value, (layer, lang, metric)
        compared += 1
    assert compared == 3 * 2 * 4  # 3 metrics x 2 languages x 4 layers
    assert {(a, b) for _, a, b, _ in pairs} == {
        ("deu", "eng"), ("eng", "deu"), ("fra", "eng"), ("eng", "fra")
    }  # fmt: skip


def test_every_pair_equals_scoring_that_pair_alone() -> None:
    """Tiles of one product give each ordered pair what the Tatoeba functions give that pair
    (top-1 by cosine, xSIM by ratio margin); identical embeddings retrieve every line."""
    rng = np.random.default_rng(4)
    base = rng.standard_normal((60, 16))
    layer = {lang: base + s * rng.standard_normal((60, 16)) for lang, s in
             (("a", 0.5), ("b", 1.0), ("c", 2.0), ("d", 4.0))}  # fmt: skip
    pairs = ordered_pairs(list(layer))
    found = pair_outcomes(layer, pairs, margin_k=4)
    assert set(found) == set(pairs) and len(pairs) == 12
    for a, b in pairs:
        expected = top1(layer[a], layer[b]).correct
        assert np.array_equal(found[(a, b)].acc, expected), (a, b)
        errors = xsim_errors(layer[a], layer[b], 4)
        assert np.array_equal(found[(a, b)].xsim_error, errors), (a, b)
    same = pair_outcomes({"x": base, "y": base.copy()}, [("x", "y"), ("y", "x")])
    assert all(o.acc.mean() == 1.0 and o.xsim_error.mean() == 0.0 for o in same.values())


def test_the_pairs_named_are_the_pairs_scored() -> None:
    langs = ["deu", "eng", "fra"]
    assert len(ordered_pairs(langs, "all")) == 6
    assert ordered_pairs(langs, "english", "eng") == [
        ("deu", "eng"), ("eng", "deu"), ("fra", "eng"), ("eng", "fra")
    ]  # fmt: skip
    assert ordered_pairs(langs, "deu-fra") == [("deu", "fra"), ("fra", "deu")]


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda d: (d / "fra.txt").write_text("one line\n", "utf-8"), "misaligned multi-way"),
        (lambda d: (d / "fra.txt").write_bytes((d / "deu.txt").read_bytes()), "identical to"),
        (lambda d: (d / "fra.txt").write_bytes(b"\xff\xfe\n" * 40), "invalid UTF-8"),
    ],
)
def test_a_broken_multiway_set_is_one_line(break_it, message, tiny_model_dir, tmp_path, caplog,
                                           capsys) -> None:  # fmt: skip
    data = build_multiway_demo(tmp_path / "multi", ["de", "fr"], n=40, seed=0)
    break_it(data)
    argv = ["retrieve", "--task", "parallel", "--ckpt", str(tiny_model_dir), "--data-dir",
            str(data), "--out", str(tmp_path / "o")]  # fmt: skip
    fails_in_one_line(argv, message, caplog, capsys)


def test_bad_pairs_and_flores_copies_are_one_line(tiny_model_dir, tmp_path, caplog, capsys) -> None:
    data = build_multiway_demo(tmp_path / "multi", ["de", "fr"], n=40, seed=0)
    argv = ["retrieve", "--task", "parallel", "--ckpt", str(tiny_model_dir), "--data-dir",
            str(data), "--out", str(tmp_path / "o")]  # fmt: skip
    fails_in_one_line([*argv, "--pairs", "deu-xyz"], "--pairs 'deu-xyz'", caplog, capsys)
    fails_in_one_line([*argv, "--langs", "deu"], "pairs languages; 1 given", caplog, capsys)
    tat = ["retrieve", "--ckpt", str(tiny_model_dir), "--pairs", "english"]
    fails_in_one_line(tat, "only the parallel task scores pairs", caplog, capsys)
    source = _flores_copy(tmp_path / "flores_plus")
    out = ["--out", str(tmp_path / "f")]
    with (source / "dev" / "fra_Latn.jsonl").open("a", encoding="utf-8") as f:
        f.write("not json\n")
    fails_in_one_line(["data", "flores", "--from", str(source), *out], "fra_Latn.jsonl:4: not a "
                      "JSON object", caplog, capsys)  # fmt: skip
    lines = (source / "dev" / "fra_Latn.jsonl").read_text("utf-8").splitlines()[:2]
    (source / "dev" / "fra_Latn.jsonl").write_text("\n".join(lines) + "\n", "utf-8")
    fails_in_one_line(["data", "flores", "--from", str(source), *out], "its ids differ",
                      caplog, capsys)  # fmt: skip
    fails_in_one_line(["data", "flores", "--from", str(tmp_path), *out], "no dev/ folder",
                      caplog, capsys)  # fmt: skip


def test_flores_without_a_local_copy_or_a_token_says_so(tmp_path, monkeypatch, caplog,
                                                        capsys) -> None:  # fmt: skip
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_TOKEN", "")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    line = fails_in_one_line(["data", "flores", "--out", str(tmp_path / "f")], "is gated",
                             caplog, capsys)  # fmt: skip
    assert "--from" in line


def _synthetic_changes(with_english: bool):
    """Per-sentence changes of every ordered pair of four languages: one sentence in three
    gains where the pair holds English (``with_english``) or where it does not."""
    from align.compare.pairs import _Changes

    langs = ["deu", "eng", "fra", "rus"]
    pairs = ordered_pairs(langs)
    rng = np.random.default_rng(1)
    rows = []
    for pair in pairs:
        gains = ("eng" in pair) == with_english
        rows.append((rng.random(300) < (0.33 if gains else 0.0)).astype(np.float32))
    changes = _Changes(pairs)
    changes.by_layer[5] = np.stack(rows)
    return changes


@pytest.mark.parametrize("with_english", [True, False])
def test_centricity_finds_where_the_change_lies(with_english: bool) -> None:
    from align.compare.deltas import StatsConfig
    from align.compare.pairs import summary_records

    records = summary_records("m", _synthetic_changes(with_english), "eng", StatsConfig(), 500)
    (c,) = [r for r in records if r["metric"] == "english_centricity"]
    assert c["ci_low"] <= c["value"] <= c["ci_high"]
    if with_english:
        assert c["ci_low"] > 0 and c["without_english"] == 0
    else:
        assert c["ci_high"] < 0 and c["with_english"] == 0
    per_lang = {r["lang"]: r for r in records if r["metric"] == "mean_pair_change"}
    assert set(per_lang) == {"deu", "eng", "fra", "rus"}
    english_first = per_lang["eng"]["value"] > per_lang["deu"]["value"]
    assert english_first == with_english


def test_compare_on_pairs_holds_every_pair_change_and_the_centricity(tiny_model_dir,
                                                                     tmp_path) -> None:  # fmt: skip
    from conftest import perturb_block

    data = build_multiway_demo(tmp_path / "multi", ["de", "fr"], n=60, seed=0)
    noisy = perturb_block(tiny_model_dir, tmp_path / "noisy", 2, scale=1.0)
    argv = ["compare", "--task", "parallel", "--base", str(tiny_model_dir), "--ckpt", str(noisy),
            "--data-dir", str(data), "--out", str(tmp_path / "o"), "--no-cache", "--n-boot",
            "200", "--margin-k", "3"]  # fmt: skip
    assert main(argv) == 0
    (path,) = (tmp_path / "o").glob("compare-parallel-*.json")
    result = json.loads(path.read_text(encoding="utf-8"))
    scores = result["scores"]
    changes = [r for r in scores if r["metric"] == "delta_acc_a2b"]
    assert len(changes) == 6 * 4  # ordered pairs x layers
    assert all(r["lang_b"] != r["lang"] and r["ci_method"] for r in changes)
    tested = [r for r in scores if r.get("p_value") is not None]
    assert tested and all(r["p_adjusted"] >= r["p_value"] for r in tested)
    assert len({(r["lang"], r["lang_b"], r["layer"], r["metric"]) for r in tested}) == len(tested)
    centricity = [r for r in scores if r["metric"] == "english_centricity"]
    assert len(centricity) == 4 and all(r["ci_low"] <= r["value"] <= r["ci_high"]
                                        for r in centricity)  # fmt: skip
    assert "noisy" in result["summary"] and "layer" in result["summary"]["noisy"]["pairs"]
    assert result["summary"]["noisy"]["family"].startswith("Holm over 24 pair cells x 2 metrics")
    from align.report.figures import FIGURES
    from align.report.html import render

    for name in ("pair_heatmap", "english_centricity"):
        assert FIGURES[name](result, tmp_path / f"{name}.png").stat().st_size > 10_000
    page = render([path])
    assert "every language pair" in page and page.count("data:image/png;base64") == 2
    assert result["summary"]["noisy"]["pairs"] in page  # the centricity sentence


SYMMETRIC = ("cka_linear", "cka_linear_debiased", "cka_rbf", "svcca", "procrustes_angular",
             "procrustes_distance", "cknna", "rsa")  # fmt: skip


def test_the_symmetric_measures_are_symmetric_in_the_pair() -> None:
    """Measured once per unordered pair, so each must not depend on the order (PWCCA does: it
    weighs by the first side's directions, and is not among them)."""
    from align.metrics import ProbeParams, get

    rng = np.random.default_rng(9)
    x = rng.standard_normal((150, 12)) @ rng.standard_normal((12, 12))
    y = np.hstack([x[:, :6], rng.standard_normal((150, 6))]) + rng.standard_normal((150, 12))
    params = ProbeParams(knn_k=5)
    for name in SYMMETRIC:
        fn = get(name).compute.fn
        rel = 1e-4 if name == "cknna" else 1e-6  # its reference's float32 kernels: ~6e-6 seen
        assert fn(x, y, params) == pytest.approx(fn(y, x, params), rel=rel, abs=1e-9), name
    mknn = get("mknn@k").compute.fn
    assert np.allclose(mknn(x, y, params), mknn(y, x, params))
    pwcca = get("pwcca").compute.fn
    assert pwcca(x, y, params) != pytest.approx(pwcca(y, x, params), rel=1e-6)


def test_cka_and_probe_measure_every_pair_once(tiny_model_dir, tmp_path) -> None:
    data = build_multiway_demo(tmp_path / "multi", ["de", "fr"], n=40, seed=0)
    common = ["--task", "parallel", "--ckpt", str(tiny_model_dir), "--data-dir", str(data),
              "--no-cache", "--layers", "1,2"]  # fmt: skip
    assert main(["cka", *common, "--out", str(tmp_path / "c")]) == 0
    assert main(["probe", *common, "--out", str(tmp_path / "p"), "--knn-k", "3"]) == 0
    cka = _records(tmp_path / "c" / "cka-parallel-tiny-xlmr.json")
    pairs = {(a, b) for _, a, b, m in cka if m == "cka_linear"}
    assert pairs == {("deu", "eng"), ("deu", "fra"), ("eng", "fra")}  # each pair once
    probe = _records(tmp_path / "p" / "probe-parallel-tiny-xlmr.json")
    assert {(a, b) for _, a, b, m in probe if m == "cos_gap"} == pairs
    singles = {a for _, a, b, m in probe if m == "iso_avg_cos" and b is None}
    assert singles == {"deu", "eng", "fra"}
    assert any(a == "all" and m == "langid_acc" for _, a, _, m in probe)
