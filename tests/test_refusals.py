"""Nothing silently wrong, round two (issue 21): each case exits 2 with one line and no
traceback, leaves nothing in --out or the cache, and loads no weights where the problem is
knowable up front; or, where the case is a warning, gives the corrected number."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from conftest import fails_in_one_line, run_with_file_size_limit

import align.models.loading
import align.train.trainer  # imported here: a patch made while it is first imported would stick
from align.cli import main
from align.data.bible import build_tatoeba_demo


@pytest.fixture
def no_weights_loaded(monkeypatch):
    """Any attempt to load weights fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("weights were loaded")

    monkeypatch.setattr(align.models.loading, "load_model_and_tokenizer", refuse)
    monkeypatch.setattr(align.train.trainer, "load_model_and_tokenizer", refuse)


def _retrieve(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["retrieve", "--ckpt", str(model), "--data-dir", str(data), "--out", str(out), *extra]


def _edited_config(source: Path, target: Path, **changes) -> Path:
    shutil.copytree(source, target)
    config = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps(config | changes))
    return target


# 1. weights that disagree with their config
def test_weights_with_more_blocks_than_the_config_are_refused(
    tiny_model_dir, tat, tmp_path, caplog, capsys, no_weights_loaded
) -> None:
    ckpt = _edited_config(tiny_model_dir, tmp_path / "six", num_hidden_layers=2)
    argv = _retrieve(ckpt, tat, tmp_path / "out")
    line = fails_in_one_line(argv, "its weights do not match", caplog, capsys)
    assert line.startswith(f"--ckpt {ckpt}")
    assert "the weights hold 3 blocks, config.json says 2" in line
    assert "unexpected tensor(s): encoder.layer.2." in line
    assert not (tmp_path / "out").exists()
    fewer = _edited_config(tiny_model_dir, tmp_path / "four", num_hidden_layers=4)
    line = fails_in_one_line(
        _retrieve(fewer, tat, tmp_path / "out"), "missing tensor(s)", caplog, capsys
    )
    assert "the weights hold 3 blocks, config.json says 4" in line


def test_a_task_model_checkpoint_loads_its_encoder(tiny_model_dir, tmp_path) -> None:
    """Keys under the base model's prefix beside a head's (the hub's XLM-R: ``roberta.`` and
    ``lm_head.``) are an encoder with its head, not unexpected weights."""
    from transformers import XLMRobertaForMaskedLM

    from align.models import describe_model

    masked = XLMRobertaForMaskedLM.from_pretrained(tiny_model_dir)
    masked.save_pretrained(tmp_path / "mlm")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_model_dir / name, tmp_path / "mlm" / name)
    assert describe_model(str(tmp_path / "mlm")).num_layers == 3


# 15. a truncated checkpoint found before anything is encoded; no temporary folder left behind
def test_a_truncated_checkpoint_is_refused_before_the_base_is_encoded(
    tiny_model_dir, tat, tmp_path, caplog, capsys, monkeypatch
) -> None:
    import align.encode

    cut = tmp_path / "cut"
    shutil.copytree(tiny_model_dir, cut)
    weights = cut / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4096])
    cache = tmp_path / "cache"
    monkeypatch.setenv("ALIGN_CACHE_DIR", str(cache))

    def refuse(*args, **kwargs):
        raise AssertionError("a model was encoded")

    monkeypatch.setattr(align.encode, "_write_layers", refuse)
    for argv in (
        ["cka", "--ckpt", str(tiny_model_dir), "--ckpt-b", str(cut), "--data-dir", str(tat)],
        ["compare", "--base", str(tiny_model_dir), "--ckpt", str(cut), "--data-dir", str(tat)],
    ):
        line = fails_in_one_line(
            [*argv, "--out", str(tmp_path / "out")], "is truncated", caplog, capsys
        )
        assert "model.safetensors is truncated" in line
    assert not (tmp_path / "out").exists()
    assert not list(cache.glob("embeddings/.*.tmp"))


def test_a_failed_load_leaves_no_temporary_folder_in_the_cache(
    tiny_model_dir, tmp_path, monkeypatch
) -> None:
    from align.encode import EncodeOptions, encode_to_store
    from align.errors import AlignError
    from align.models import EncoderHandle, describe_model
    from align.store import EmbeddingCache

    handle = EncoderHandle(describe_model(str(tiny_model_dir)), "cpu")

    def broken(*args, **kwargs):
        raise AlignError("could not be loaded")

    monkeypatch.setattr(align.models.loading, "load_model_and_tokenizer", broken)
    cache = EmbeddingCache(tmp_path / "cache")
    with pytest.raises(AlignError, match="could not be loaded"):
        encode_to_store(handle, ["Hallo Welt", "Guten Tag"], EncodeOptions(), cache, progress=False)
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []


def test_temporary_folders_of_dead_processes_are_swept(tmp_path) -> None:
    """A kill -9 leaves a build or store folder behind; the next one on this host removes those
    whose process is gone (and keeps a live one's, and another host's)."""
    import os
    import socket

    from align._io import atomic_dir, owned_tmpdir

    dead = tmp_path / f".model.{socket.gethostname()}.999999999.abc.tmp"
    live = tmp_path / f".model.{socket.gethostname()}.{os.getpid()}.abc.tmp"
    other = tmp_path / ".model.another-host.999999999.abc.tmp"
    for path in (dead, live, other):
        path.mkdir()
    mine = owned_tmpdir(tmp_path, "store")
    assert mine.name.startswith(f".store.{socket.gethostname()}.{os.getpid()}.")
    assert not dead.exists() and live.exists() and other.exists()
    with atomic_dir(tmp_path / "model") as tmp:
        (tmp / "x").write_text("x")
    assert (tmp_path / "model" / "x").is_file()


# 19. weights wider than their config: the widths named
def test_weights_wider_than_their_config_name_the_widths(
    tiny_model_dir, tat, tmp_path, caplog, capsys, no_weights_loaded
) -> None:
    ckpt = _edited_config(tiny_model_dir, tmp_path / "narrow", hidden_size=16)
    argv = _retrieve(ckpt, tat, tmp_path / "out")
    line = fails_in_one_line(argv, "its weights do not match", caplog, capsys)
    assert "is [" in line and "in the weights" in line and "(hidden_size 16)" in line
    assert not (tmp_path / "out").exists()


# 2. non-finite settings refused in the config layer, before any data is read
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--lr", "inf"], "--lr inf: must be a finite number"),
        (["train", "--lr", "nan"], "--lr nan: must be a finite number"),
        (["train", "--weight-decay", "-1"], "--weight-decay -1.0: must be >= 0"),
        (["train", "--epochs", "inf"], "--epochs inf: must be a finite number"),
        (["train", "--temperature", "0"], "--temperature 0.0: must be > 0"),
        (["probe", "--outlier-factor", "nan"], "--outlier-factor nan: must be a finite number"),
        (["cka", "--sigma-frac", "inf"], "--sigma-frac inf: must be a finite number"),
        (["cka", "--sigma-frac", "nan"], "--sigma-frac nan: must be a finite number"),
        (["compare", "--alpha", "nan"], "--alpha nan: must be a finite number"),
        (["retrieve", "--min-recall", "nan"], "--min-recall nan: must be a finite number"),
        (
            ["data", "bible", "--bucc", "--distractor-ratio", "nan"],
            "--distractor-ratio nan: must be a finite number",
        ),
        (
            ["data", "bible", "--bucc", "--distractor-ratio", "inf"],
            "--distractor-ratio inf: must be a finite number",
        ),
    ],
)
def test_non_finite_settings_are_refused_first(
    argv, message, tmp_path, caplog, capsys, no_weights_loaded, monkeypatch
) -> None:
    import align.commands.data
    import align.retrieval.datasets

    def refuse(*args, **kwargs):
        raise AssertionError("data was read")

    monkeypatch.setattr(align.retrieval.datasets, "read", refuse)
    monkeypatch.setattr(align.commands.data.bible, "build_bucc_demo", refuse)
    fails_in_one_line([*argv, "--out", str(tmp_path / "o")], message, caplog, capsys)
    assert not (tmp_path / "o").exists()


def test_the_config_classes_check_types_in_python_too() -> None:
    from align.commands.retrieve import RetrieveConfig
    from align.errors import AlignError
    from align.train.config import TrainConfig

    with pytest.raises(AlignError, match=r"^batch_size '32': expected an integer"):
        RetrieveConfig(batch_size="32").validate()  # type: ignore[arg-type]
    with pytest.raises(AlignError, match=r"^lr inf: must be a finite number"):
        TrainConfig(lr=float("inf")).validate()
    with pytest.raises(AlignError, match=r"^precision 'fp8': expected one of auto, fp32"):
        TrainConfig(precision="fp8").validate()  # type: ignore[arg-type]


def test_a_diverging_training_stops_and_writes_no_checkpoint(
    tiny_model_dir, tmp_path, caplog, capsys
) -> None:
    from train_fixtures import write_sst2

    data = write_sst2(tmp_path / "data")
    out = tmp_path / "run"
    argv = ["train", "--model", str(tiny_model_dir), "--task", "sst2", "--data-dir", str(data)]
    argv += ["--out", str(out), "--max-steps", "6", "--lr", "1e30", "--warmup-ratio", "0"]
    argv += ["--batch-size", "4", "--max-length", "32", "--log-steps", "2", "--save-steps", "3"]
    line = fails_in_one_line(argv, "training diverged", caplog, capsys)
    assert "at step" in line
    assert not (out / "model.safetensors").exists()
    for state in (out / "checkpoints").glob("step-*") if (out / "checkpoints").exists() else []:
        import torch
        from safetensors.torch import load_file

        weights = load_file(str(state / "model.safetensors"))
        assert all(bool(torch.isfinite(t).all()) for t in weights.values())


# 5. strict JSON: an undefined value is null, with its reason beside it
def test_an_undefined_spearman_is_null_with_its_reason(tiny_model_dir, tat, tmp_path) -> None:
    import math

    from align.results import Result

    twin = tmp_path / "twin"
    shutil.copytree(tiny_model_dir, twin)  # the same weights: every change is 0
    argv = ["compare", "--base", str(tiny_model_dir), "--ckpt", str(twin), "--data-dir", str(tat)]
    argv += ["--out", str(tmp_path / "o"), "--no-cka-matrix", "--n-boot-spearman", "20"]
    argv += ["--knn-k", "5", "--layers", "1,2,3", "--no-cache", "--no-plot"]
    assert main(argv) == 0
    (path,) = (tmp_path / "o").glob("compare-*.json")
    text = path.read_text()
    json.loads(text, parse_constant=lambda name: 1 / 0)  # strict
    raw = json.loads(text)
    spearman = [r for r in raw["scores"] if r["metric"].startswith("spearman_")]
    assert spearman and all(r["value"] is None for r in spearman)
    assert all("no rank correlation" in r["undefined"]["value"] for r in spearman)
    loaded = Result.load(path).records(spearman[0]["metric"])
    assert loaded and all(math.isnan(r["value"]) for r in loaded)


# 6. the summary names a tracker only where its interval and its points support it
def _spearman(value, low, high, n=26):
    return {"model": "m", "lang": "all", "layer": None, "metric": "spearman_acc_xx2en_vs_cos_gap",
            "value": value, "ci_low": low, "ci_high": high, "n_points": n}  # fmt: skip


def _deltas(changed: int, total: int = 26):
    out = []
    for i in range(total):
        for metric in ("delta_acc_xx2en", "delta_cos_gap"):
            value = 0.1 * (i + 1) if i < changed else 0.0
            out.append({"model": "m", "lang": f"l{i % 2}", "layer": i, "metric": metric,
                        "value": value, "base": 0.5, "tuned": 0.5 + value, "ci_low": None,
                        "ci_high": None, "p_adjusted": 1.0})  # fmt: skip
    return out


@pytest.mark.parametrize(
    ("tracker", "changed", "named"),
    [
        (_spearman(0.74, -0.25, 0.74), 26, False),  # the interval spans 0
        (_spearman(0.87, 0.866, 0.866), 1, False),  # one point with a change
        (_spearman(0.90, 0.85, 0.92), 26, True),
        (_spearman(-0.89, -0.93, -0.80), 26, True),  # a negative rho tracks as well
        (_spearman(float("nan"), None, None), 26, False),
    ],
)
def test_the_summary_claims_only_what_its_intervals_support(tracker, changed, named) -> None:
    from align.compare.summary import summarize

    out = summarize([*_deltas(changed), tracker], "acc_xx2en", 0.05)["m"]
    assert (out["best_tracker"] is not None) == named
    text = "\n".join(out["text"])
    assert ("best-tracking alignment metric: cos_gap" in text) == named
    assert ("no alignment metric tracks" in text) == (not named)


@pytest.fixture(scope="module")
def retrieved(tiny_model_dir, tat, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("retrieved")
    argv = _retrieve(tiny_model_dir, tat, out, "--no-cache", "--no-plot", "--layers", "1,2")
    assert main(argv) == 0
    (path,) = out.glob("retrieve-*.json")
    return path


# 7. the same result twice in a report
def test_report_refuses_the_same_result_twice(retrieved, tmp_path, caplog, capsys) -> None:
    copy = tmp_path / "copy.json"
    shutil.copy(retrieved, copy)
    out = tmp_path / "r.html"
    argv = ["report", str(retrieved), str(copy), "--out", str(out)]
    line = fails_in_one_line(argv, "the same result as", caplog, capsys)
    assert line.startswith(f"{copy}: the same result as {retrieved}")
    assert not out.exists()


# 18. report: malformed results named by file and field
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["scores"][0].update(value="0.5"), "scores[0].value: expected a number"),
        (lambda r: r.update(scores={"a": 1}), "scores: expected a list of records"),
        (lambda r: r["scores"][1].update(layer="2"), "scores[1].layer: expected an integer"),
        (lambda r: r.update(model="tiny"), "model: expected an object"),
    ],
)
def test_report_names_the_malformed_field(retrieved, tmp_path, edit, message, caplog, capsys):
    result = json.loads(retrieved.read_text())
    edit(result)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(result))
    line = fails_in_one_line(
        ["report", str(bad), "--out", str(tmp_path / "r.html")], message, caplog, capsys
    )
    assert line.startswith(f"{bad}: ")
    assert not (tmp_path / "r.html").exists()


# 3. a checkpoint whose tokenizer differs from its base's
def test_compare_refuses_another_tokenizer_and_records_the_hashes(
    tiny_model_dir, tat, tmp_path, caplog, capsys, no_weights_loaded
) -> None:
    swapped = tmp_path / "swapped"
    shutil.copytree(tiny_model_dir, swapped)
    tok = json.loads((swapped / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    vocab[10], vocab[11] = vocab[11], vocab[10]  # two pieces swapped
    (swapped / "tokenizer.json").write_text(json.dumps(tok))
    argv = ["compare", "--base", str(tiny_model_dir), "--ckpt", str(swapped)]
    argv += ["--data-dir", str(tat), "--out", str(tmp_path / "o")]
    line = fails_in_one_line(argv, "its tokenizer differs", caplog, capsys)
    assert "--allow-tokenizer-mismatch" in line and line.startswith(f"--ckpt {swapped}")
    assert not (tmp_path / "o").exists()


def test_results_record_the_tokenizer(retrieved) -> None:
    result = json.loads(retrieved.read_text())
    assert len(result["model"]["tokenizer_sha256"]) == 64


# 4. sentences cut to nothing; a warning (and a count in the result) whenever any is cut
@pytest.mark.parametrize(
    ("extra", "taken"),
    [(["--max-length", "2"], 2), (["--prefix", "a b c d", "--max-length", "4"], 4)],
)
def test_a_max_length_that_leaves_no_sentence_is_refused(
    extra, taken, tiny_model_dir, tat, tmp_path, caplog, capsys, no_weights_loaded
) -> None:
    argv = _retrieve(tiny_model_dir, tat, tmp_path / "o", *extra)
    line = fails_in_one_line(argv, "leaves no token of any", caplog, capsys)
    assert line.startswith(f"--max-length {extra[-1]}: leaves no token of any sentence")
    assert not (tmp_path / "o").exists()


def test_cut_sentences_are_a_warning_and_counted_in_the_result(
    tiny_model_dir, tat, tmp_path, caplog
) -> None:
    with caplog.at_level(logging.WARNING):
        argv = _retrieve(tiny_model_dir, tat, tmp_path / "o", "--max-length", "6", "--no-cache")
        assert main([*argv, "--no-plot", "--layers", "1"]) == 0
    assert "were cut" in caplog.text
    (path,) = (tmp_path / "o").glob("retrieve-*.json")
    truncated = json.loads(path.read_text())["truncated"]
    assert truncated["tiny-xlmr"]["deu.src"] > 0


# 11. cka of a model against itself under another spelling of its path
def test_cka_refuses_the_same_model_twice(tiny_model_dir, tat, tmp_path, caplog, capsys) -> None:
    argv = ["cka", "--ckpt", str(tiny_model_dir), "--ckpt-b", f"{tiny_model_dir}/"]
    line = fails_in_one_line([*argv, "--data-dir", str(tat), "--out", str(tmp_path / "o")],
                  "the same model as --ckpt", caplog, capsys)  # fmt: skip
    assert line.startswith("--ckpt-b ")
    assert not (tmp_path / "o").exists()


# 8. an edited file in a Bible set: not used as the demo set, not labelled as one
def test_an_edited_demo_set_is_rebuilt_and_an_edited_bible_set_is_not_labelled_as_one(
    tiny_model_dir, tmp_path, monkeypatch, caplog
) -> None:
    from align.data.bible import changed_files
    from align.retrieval import datasets, tasks

    monkeypatch.setenv("ALIGN_CACHE_DIR", str(tmp_path / "cache"))
    task = tasks.get("tatoeba")
    root = datasets.demo_dir(task, ["de"], 20, 0)
    assert changed_files(root) == []
    edited = root / "tatoeba.deu-eng.deu"
    original = edited.read_text()
    edited.write_text("x" + original)  # one verse edited
    with caplog.at_level(logging.WARNING):
        again = datasets.demo_dir(task, ["de"], 20, 0)
    assert "has changed (tatoeba.deu-eng.deu); building it again" in caplog.text
    assert again == root and edited.read_text() == original and changed_files(root) == []
    mine = tmp_path / "mine"
    assert main(["data", "bible", "--langs", "de", "--n", "20", "--out", str(mine)]) == 0
    data = datasets.read(task, mine, None, 20, 0)
    assert data.info()["demo"] and data.name.startswith("Bible set")
    lines = (mine / "tatoeba.deu-eng.eng").read_text().splitlines()
    (mine / "tatoeba.deu-eng.eng").write_text("\n".join(reversed(lines)) + "\n")
    data = datasets.read(task, mine, None, 20, 0)
    assert not data.info()["demo"] and "changed since it was built" in data.name


# 9. align data follows the rules of every other writing command
def test_data_bible_refuses_what_it_should(tmp_path, caplog, capsys) -> None:
    unrelated = tmp_path / "unrelated"
    unrelated.mkdir()
    (unrelated / "notes.txt").write_text("mine")
    cases = [
        (["--out", str(unrelated)], "not empty, and not a set an align data command wrote"),
        (["--seed", "-1", "--out", str(tmp_path / "a")], "--seed -1: must be an integer in 0.."),
        (["--seed", "4294967296", "--out", str(tmp_path / "b")], "--seed 4294967296"),
        (["--langs", "en", "--out", str(tmp_path / "c")], "--langs en: English is the other"),
    ]
    for extra, message in cases:
        fails_in_one_line(["data", "bible", "--n", "5", *extra], message, caplog, capsys)
    assert (unrelated / "notes.txt").read_text() == "mine" and len(list(unrelated.iterdir())) == 1
    assert not any((tmp_path / d).exists() for d in "abc")


def test_a_second_data_bible_replaces_the_whole_set(tmp_path) -> None:
    out = tmp_path / "set"
    assert main(["data", "bible", "--langs", "de,fr", "--n", "5", "--out", str(out)]) == 0
    assert main(["data", "bible", "--langs", "ru", "--n", "5", "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["bible_meta.json", "tatoeba.rus-eng.eng", "tatoeba.rus-eng.rus"]
    assert not list(tmp_path.glob(".*.tmp"))


# 10. BUCC gold is one-to-one; --margin-k is bounded by the sets searched
def test_bucc_gold_pairing_a_sentence_twice_is_refused(tiny_model_dir, tmp_path, caplog, capsys):
    from align.data.bible import build_bucc_demo

    data = build_bucc_demo(tmp_path / "bucc", ["de"], n=10, seed=0)
    gold = data / "de-en.test.gold"
    lines = gold.read_text().splitlines()
    other_target = lines[1].split("\t")[1]
    lines.append(f"{lines[0].split(chr(9))[0]}\t{other_target}")  # source of line 1, again
    gold.write_text("\n".join(lines) + "\n")
    argv = _retrieve(tiny_model_dir, data, tmp_path / "o", "--task", "bucc")
    line = fails_in_one_line(argv, "is paired a second time", caplog, capsys)
    assert line.startswith(f"{gold}:11: source id ") and "(first on line 1)" in line


def test_margin_k_is_bounded_by_the_sets_searched_not_the_gold_count(
    tiny_model_dir, tmp_path, caplog, capsys
) -> None:
    from align.data.bible import build_bucc_demo

    data = build_bucc_demo(tmp_path / "bucc", ["de"], n=10, seed=0)  # 10 gold, 20 a side
    argv = _retrieve(tiny_model_dir, data, tmp_path / "o", "--task", "bucc", "--no-cache")
    assert main([*argv, "--margin-k", "15", "--layers", "1", "--no-plot"]) == 0
    message = "larger than the smallest set searched (de dev_src: 20"
    fails_in_one_line([*argv, "--margin-k", "21"], message, caplog, capsys)


# 12. a Tatoeba pair that appears twice: warned about and counted in the result
def test_duplicate_tatoeba_pairs_are_warned_about_and_counted(tiny_model_dir, tmp_path, caplog):
    data = build_tatoeba_demo(tmp_path / "tat", ["de"], n=40, seed=0)
    for suffix in ("deu", "eng"):
        path = data / f"tatoeba.deu-eng.{suffix}"
        lines = path.read_text().splitlines()
        path.write_text("\n".join([*lines, lines[3]]) + "\n")
    with caplog.at_level(logging.WARNING):
        argv = _retrieve(tiny_model_dir, data, tmp_path / "o", "--no-cache", "--no-plot")
        assert main([*argv, "--layers", "1"]) == 0
    assert "1 pair(s) appear more than once (lines 4 and 41" in caplog.text
    (path,) = (tmp_path / "o").glob("retrieve-*.json")
    assert json.loads(path.read_text())["data"]["duplicate_pairs"] == {"deu": 1}


# 13. results of two different models never share a file name in one --out
def test_two_checkpoints_of_one_name_do_not_overwrite_each_others_results(
    tiny_model_dir, tat, tmp_path, caplog
) -> None:
    from conftest import perturb_block

    run_a, run_b = tmp_path / "runA" / "final", tmp_path / "runB" / "final"
    shutil.copytree(tiny_model_dir, run_a)
    perturb_block(tiny_model_dir, run_b, block=1)
    out = tmp_path / "X"
    for ckpt in (run_a, run_b, run_a):  # the rerun of A replaces A's own file
        argv = _retrieve(ckpt, tat, out, "--no-cache", "--no-plot", "--layers", "1")
        with caplog.at_level(logging.WARNING):
            assert main(argv) == 0
    results = sorted(out.glob("retrieve-*.json"))
    assert len(results) == 2, results
    fingerprints = {json.loads(p.read_text())["model"]["fingerprint"] for p in results}
    assert len(fingerprints) == 2
    examples = sorted(out.glob("*.examples.jsonl"))
    assert [p.name.split(".examples")[0] for p in examples] == [p.stem for p in results]
    assert "holds the result of other weights" in caplog.text


# 14. the cache directory a file; a damaged default model
def test_models_refuses_a_cache_dir_that_is_a_file(tmp_path, monkeypatch, caplog, capsys) -> None:
    blocker = tmp_path / "cachefile"
    blocker.write_text("x")
    monkeypatch.setenv("ALIGN_CACHE_DIR", str(blocker))
    fails_in_one_line(["models"], "ALIGN_CACHE_DIR", caplog, capsys)


@pytest.mark.slow
def test_a_damaged_default_model_is_built_again(tmp_path, monkeypatch, caplog) -> None:
    from align.models import build_default_model

    monkeypatch.setenv("ALIGN_CACHE_DIR", str(tmp_path / "cache"))
    built = build_default_model()
    weights = built / "model.safetensors"
    size = weights.stat().st_size
    with weights.open("r+b") as fh:
        fh.truncate(size // 2)
    with caplog.at_level(logging.WARNING):
        again = build_default_model()
    assert again == built and weights.stat().st_size == size
    assert "does not match its checksums (fingerprint: damaged?); building it again" in caplog.text
    assert not list((tmp_path / "cache" / "models").glob(".*.tmp"))


# 16. a second training into a live run's folder takes nothing from it
def test_a_second_training_into_a_live_run_changes_nothing(
    tiny_model_dir, tmp_path, caplog, capsys
) -> None:
    from train_fixtures import write_sst2

    from align._io import OutputLock

    out = tmp_path / "run"
    out.mkdir()
    (out / "train_run.json").write_text("{}")  # the live run's record, no state saved yet
    (out / "checkpoints").mkdir()
    data = write_sst2(tmp_path / "data")
    argv = ["train", "--model", str(tiny_model_dir), "--task", "sst2", "--data-dir", str(data)]
    with OutputLock(out):  # the first run holds its folder
        fails_in_one_line(
            [*argv, "--out", str(out)], "another align run is writing into it", caplog, capsys
        )
    assert (out / "train_run.json").is_file() and (out / "checkpoints").is_dir()
    assert "starting again" not in caplog.text


# 17. every file of a checkpoint follows the umask
def test_checkpoint_files_follow_the_umask(tiny_model_dir, tmp_path) -> None:
    import os
    import stat

    from train_fixtures import write_sst2

    from align.train.config import TrainConfig
    from align.train.trainer import train

    old = os.umask(0o022)
    try:
        data = write_sst2(tmp_path / "data")
        out = tmp_path / "run"
        cfg = TrainConfig(model=str(tiny_model_dir), tasks="sst2", data_dir=data, out=out,
                          max_steps=2, save_steps=1, batch_size=4, max_length=32,
                          progress=False)  # fmt: skip
        train(cfg)
    finally:
        os.umask(old)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert any(p.name == "heads.safetensors" for p in files)
    assert any(p.parent.name.startswith("step-") for p in files)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


# 20. the Python API names what is wrong
def test_the_python_api_refuses_what_it_cannot_mean(retrieved, tiny_encoder) -> None:
    from align.compare import stats
    from align.encode import EncodeOptions, encode_layers
    from align.errors import AlignError
    from align.results import Result

    result = Result.load(retrieved)
    with pytest.raises(AlignError, match="unknown metric 'no_such_metric'"):
        result.records(metric="no_such_metric")
    assert result.records(metric="cka_linear") == []  # a real metric this result lacks
    with pytest.raises(AlignError, match=r"1\.5 is not a probability"):
        stats.adjust([1.5, -0.1])
    with pytest.raises(AlignError, match=r"paired 1-D arrays, got shapes \(2,\) and \(3,\)"):
        stats.spearman([1, 2], [1, 2, 3])
    with pytest.raises(AlignError, match=r"texts\[1\]: expected a string, got NoneType"):
        encode_layers(tiny_encoder, ["Hallo", None], EncodeOptions(), progress=False)


# 21. smaller ones
def test_an_out_where_nothing_can_be_written_names_the_flag(
    tiny_model_dir, tat, tmp_path, caplog, capsys, no_weights_loaded
) -> None:
    message = "--out /proc/align-x: "  # as root access() says yes; a probe file says no
    line = fails_in_one_line(
        _retrieve(tiny_model_dir, tat, Path("/proc/align-x")), message, caplog, capsys
    )
    assert ".tmp" not in line and ("nothing can be written in /proc" in line or "writable" in line)


def test_cls_pooling_with_exclude_special_is_refused(
    tiny_model_dir, tat, tmp_path, caplog, capsys, no_weights_loaded
) -> None:
    argv = _retrieve(tiny_model_dir, tat, tmp_path / "o", "--pooling", "cls", "--exclude-special")
    fails_in_one_line(argv, "--exclude-special: has no effect with --pooling cls", caplog, capsys)
    assert not (tmp_path / "o").exists()


def test_a_full_disk_while_writing_a_store_names_the_file(tmp_path, monkeypatch) -> None:
    import numpy as np

    from align.errors import AlignError
    from align.store import LayerWriter

    writer = LayerWriter(tmp_path / "store", 4, 3, [0, 1])
    real_open = Path.open

    def full(self, *args, **kwargs):
        if self.name.startswith("rows_001"):
            raise OSError(28, "No space left on device")
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", full)
    writer.write(np.arange(4), np.zeros((2, 4, 3), np.float16))
    with pytest.raises(AlignError, match=r"rows_001\.0\.f16: cannot be written \(No space left"):
        writer.flush()


# 18. train under a file-size limit: one line, not a SafetensorError traceback
def test_train_under_a_file_size_limit_fails_in_one_line(tiny_model_dir, tmp_path) -> None:
    from train_fixtures import write_sst2

    data = write_sst2(tmp_path / "data")
    argv = ["train", "--model", str(tiny_model_dir), "--task", "sst2", "--data-dir", str(data)]
    argv += ["--out", str(tmp_path / "run"), "--max-steps", "2", "--save-steps", "1"]
    argv += ["--batch-size", "4", "--max-length", "32"]
    proc = run_with_file_size_limit(argv)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "cannot be written" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "run").rglob("step-*"))


def test_train_checks_out_before_reading_task_data(
    tiny_model_dir, tmp_path, caplog, capsys, monkeypatch
) -> None:
    import align.train.trainer

    def refuse(*args, **kwargs):
        raise AssertionError("task data read before --out was checked")

    monkeypatch.setattr(align.train.trainer, "_load_tasks", refuse)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    argv = ["train", "--model", str(tiny_model_dir), "--task", "sst2", "--out", str(blocker)]
    fails_in_one_line(argv, f"--out {blocker}: exists and is not a directory", caplog, capsys)


def test_a_cache_where_nothing_can_be_written_is_refused_before_the_default_model_builds(
    tat, tmp_path, caplog, capsys, monkeypatch
) -> None:
    import align.models.default_model

    def refuse(*args, **kwargs):
        raise AssertionError("the default model started building")

    monkeypatch.setattr(align.models.default_model, "read_image", refuse)
    monkeypatch.setenv("ALIGN_CACHE_DIR", "/proc/align-cache")
    argv = ["retrieve", "--data-dir", str(tat), "--out", str(tmp_path / "o")]
    line = fails_in_one_line(argv, "ALIGN_CACHE_DIR /proc/align-cache", caplog, capsys)
    assert "set ALIGN_CACHE_DIR to a writable directory" in line


# --- round three (issue 26) ---


# 5. a Tatoeba "pair" of English with English scores 1.000 and means nothing
@pytest.mark.parametrize("case", ["identical files", "English as the language"])
def test_a_language_compared_with_itself_is_refused(
    case, tiny_model_dir, tmp_path, caplog, capsys, no_weights_loaded
) -> None:
    data = build_tatoeba_demo(tmp_path / "tat", ["de"], n=40, seed=0)
    english = (data / "tatoeba.deu-eng.eng").read_bytes()
    if case == "identical files":
        (data / "tatoeba.deu-eng.deu").write_bytes(english)
        langs, message = "deu", "identical to"
    else:
        (data / "tatoeba.eng-eng.eng").write_bytes(english)
        langs, message = "eng", "English paired with English"
    out = tmp_path / "o"
    argv = _retrieve(tiny_model_dir, data, out, "--langs", langs, "--no-cache")
    fails_in_one_line(argv, message, caplog, capsys)
    assert not out.exists() or not any(out.iterdir())


# 2. the published table is read and checked before any model loads
_PUBLISHED_HEADER = (
    "model,task,lang,metric,convention,split,direction,threshold,max_length,value,source"
)
_GOOD_ROW = "m,tatoeba,deu,acc_en2xx,xtreme,all,en->xx,,,57.3,A Paper Table 9"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("missing", "file not found"),
        ("directory", "is a directory"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "a binary file"),
        (b"model,task\n\xff\xfe\n", "not UTF-8 text"),
        (f"{_PUBLISHED_HEADER}\nm,tatoeba,deu,acc_en2xx,xtreme\n", ":2: 5 fields, expected 11"),
        (f"# c\n{_PUBLISHED_HEADER}\n{_GOOD_ROW.replace('57.3', 'high')}\n", ":3: value 'high'"),
        (f"{_PUBLISHED_HEADER}\n{_GOOD_ROW.replace('57.3', 'nan')}\n", "expected points in"),
        (f"{_PUBLISHED_HEADER}\n{_GOOD_ROW.replace('57.3', 'inf')}\n", "expected points in"),
        (f"{_PUBLISHED_HEADER}\n{_GOOD_ROW}\n{_GOOD_ROW}\n", ":3: the same number as line 2"),
        (f"{_PUBLISHED_HEADER}\n{_GOOD_ROW.replace('en->xx', 'xx->en')}\n", "direction"),
    ],
)
def test_a_bad_published_table_is_refused_before_any_model_loads(
    content, message, tiny_model_dir, tat, tmp_path, monkeypatch, caplog, capsys, no_weights_loaded
) -> None:
    table = tmp_path / "published.csv"
    if content == "directory":
        table.mkdir()
    elif isinstance(content, bytes):
        table.write_bytes(content)
    elif content != "missing":
        table.write_text(content)
    monkeypatch.setenv("ALIGN_PUBLISHED", str(table))
    out = tmp_path / "o"
    line = fails_in_one_line(_retrieve(tiny_model_dir, tat, out, "--no-cache"), message, caplog,
                             capsys)  # fmt: skip
    assert line.startswith(f"ALIGN_PUBLISHED {table}")
    assert not out.exists()


def test_matrix_measures_are_checked_before_any_model_loads(tiny_model_dir, caplog, capsys):
    """An unknown layer x layer measure, or one asked for without a second model: one line."""
    base = ["cka", "--ckpt", str(tiny_model_dir), "--data-dir", "."]
    line = fails_in_one_line(
        [*base, "--ckpt-b", str(tiny_model_dir), "--matrix-measures", "cka_linear,mknn@k"],
        "not a layer x layer measure",
        caplog,
        capsys,
    )
    assert "svcca" in line
    fails_in_one_line([*base, "--matrix-measures", "svcca"], "needs --ckpt-b", caplog, capsys)
