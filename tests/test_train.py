"""align train on the tiny model: every head type, checkpoints, sampling, resume, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file
from train_fixtures import (
    write_anli,
    write_ccg,
    write_commonsenseqa,
    write_cosmosqa,
    write_hellaswag,
    write_mnli,
    write_qqp,
    write_squad,
    write_sst2,
)

from align.errors import AlignError
from align.train.batching import Schedule, task_probabilities
from align.train.config import TrainConfig
from align.train.tasks import get_task, load_split
from align.train.tasks.squad import squad_scores
from align.train.trainer import train


def _cfg(model: Path, out: Path, **kw) -> TrainConfig:
    base = {
        "model": str(model),
        "out": out,
        "max_steps": 40,
        "batch_size": 4,
        "lr": 3e-3,
        "warmup_ratio": 0.0,
        "save_steps": 10,
        "progress": False,
        "max_length": 32,
    }
    return TrainConfig(**(base | kw))


WRITERS = {
    "mnli": write_mnli,
    "sst2": write_sst2,
    "hellaswag": write_hellaswag,
    "squad": lambda root: write_squad(root, v2=False),
    "squad_v2": lambda root: write_squad(root, v2=True),
    "ccg": write_ccg,
}


@pytest.mark.parametrize("task", sorted(WRITERS))
def test_every_head_type_learns(task: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    data = WRITERS[task](tmp_path / "data")
    run = train(_cfg(tiny_model_dir, tmp_path / "out", tasks=task, data_dir=data))
    first, last = np.mean(run.losses[:5]), np.mean(run.losses[-5:])
    assert last < 0.7 * first, (first, last)
    assert task in run.dev_metrics and run.meta["steps"] == 40
    heads = json.loads((tmp_path / "out" / "heads.json").read_text())
    assert heads[task]["head"] == get_task(task).head.name


def test_checkpoint_feeds_retrieve(tiny_model_dir: Path, tmp_path: Path) -> None:
    from align.commands.retrieve import RetrieveConfig
    from align.commands.retrieve import run as run_retrieve
    from align.data.bible import build_tatoeba_demo
    from align.models import load_encoder

    out = tmp_path / "ckpt"
    train(
        _cfg(tiny_model_dir, out, tasks="sst2", data_dir=write_sst2(tmp_path / "sst2"), max_steps=5)
    )
    meta = json.loads((out / "align_meta.json").read_text())
    assert meta["base_model"]["fingerprint"] and meta["tasks"]["sst2"]["head"] == "classification"
    encoder = load_encoder(str(out), device="cpu")
    assert encoder.num_layers == 3
    data = build_tatoeba_demo(tmp_path / "tat", ["de"], n=20)
    run = run_retrieve(
        RetrieveConfig(
            ckpt=str(out),
            data_dir=data,
            out=tmp_path / "res",
            plot=False,
            use_cache=False,
            progress=False,
        )
    )
    assert run.result["model"]["name"] == "ckpt"


def test_multitask_sampling_proportions() -> None:
    sizes = {"a": 1000, "b": 3000}
    assert task_probabilities(sizes) == pytest.approx({"a": 0.25, "b": 0.75})
    assert task_probabilities(sizes, cap=1000) == pytest.approx({"a": 0.5, "b": 0.5})
    t = task_probabilities(sizes, "temperature", temperature=2.0)
    assert t["b"] / t["a"] == pytest.approx(np.sqrt(3))
    lengths = {name: list(np.arange(n) % 50 + 5) for name, n in sizes.items()}
    schedule = Schedule(lengths, 8, 8000, seed=0, probabilities=task_probabilities(sizes))
    share = schedule.counts()["b"] / len(schedule)
    assert abs(share - 0.75) < 4 * np.sqrt(0.75 * 0.25 / 8000)
    task, batch = schedule[17]
    assert task in sizes and len(batch) == 8
    again = Schedule(lengths, 8, 8000, seed=0, probabilities=task_probabilities(sizes))
    assert again[17][0] == task and (again[17][1] == batch).all()


def test_length_grouping_reduces_padding() -> None:
    lengths = list(np.random.default_rng(0).integers(5, 120, 4000))
    padded = {}
    for grouped in (True, False):
        schedule = Schedule({"t": lengths}, 16, 250, 0, {"t": 1.0}, group_by_length=grouped)
        padded[grouped] = sum(
            len(b) * max(lengths[i] for i in b) for _, b in (schedule[m] for m in range(250))
        )
    assert padded[True] < 0.75 * padded[False]


def test_multitask_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = _cfg(
        tiny_model_dir,
        tmp_path / "out",
        tasks="sst2,hellaswag",
        max_steps=12,
        task_dirs={
            "sst2": write_sst2(tmp_path / "s"),
            "hellaswag": write_hellaswag(tmp_path / "h"),
        },
    )
    run = train(cfg)
    assert set(run.dev_metrics) == {"sst2", "hellaswag"}
    assert sum(run.meta["sampling"]["micro_batches"].values()) == 12


def test_squad_v2_no_answer_handling(tiny_encoder, tmp_path: Path) -> None:
    spec = get_task("squad_v2")
    examples = load_split(spec, write_squad(tmp_path, v2=True), "train")
    impossible = [e for e in examples if e["impossible"]]
    assert impossible and all(not e["answers"] for e in impossible)
    features = spec.head.featurize(examples, tiny_encoder.tokenizer, 64, [])
    for f in features:
        example = examples[f["example_index"]]
        if example["impossible"]:
            assert (f["start"], f["end"]) == (0, 0)  # <s> marks "no answer"
        else:
            span = example["context"][f["offsets"][f["start"]][0] : f["offsets"][f["end"]][1]]
            assert span == example["answers"][0]["text"]
    perfect = {e["id"]: (e["answers"][0]["text"] if e["answers"] else "") for e in examples}
    assert squad_scores(perfect, examples) == {"exact_match": 1.0, "f1": 1.0}
    assert squad_scores({}, examples)["exact_match"] == pytest.approx(
        len(impossible) / len(examples)
    )


def _sst2_train_args(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    """``-m align.cli train`` arguments for a short SST-2 run (after a python or torchrun)."""
    common = ["--task", "sst2", "--data-dir", str(data), "--model", str(model), "--out", str(out)]
    return ["-m", "align.cli", "-q", "train", *common, "--max-length", "32", *extra]


def _train_cli(
    model: Path, data: Path, out: Path, *extra: str, env: dict | None = None
) -> subprocess.CompletedProcess:
    schedule = ["--max-steps", "16", "--batch-size", "4", "--lr", "1e-3", "--save-steps", "5"]
    args = [sys.executable, *_sst2_train_args(model, data, out, *schedule, *extra)]
    return subprocess.run(
        args, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600
    )


def test_resume_after_kill_reproduces_uninterrupted_run(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    data = write_sst2(tmp_path / "sst2")
    full = _train_cli(tiny_model_dir, data, tmp_path / "full")
    assert full.returncode == 0, full.stderr
    killed = _train_cli(
        tiny_model_dir, data, tmp_path / "killed", env={"ALIGN_TEST_KILL_AFTER_STEP": "13"}
    )
    assert killed.returncode == -9  # SIGKILL after step 13; the last saved state is step 10
    assert (tmp_path / "killed" / "checkpoints" / "latest").read_text().strip() == "step-0000010"
    assert not (tmp_path / "killed" / "model.safetensors").exists()
    again = _train_cli(tiny_model_dir, data, tmp_path / "killed")
    assert again.returncode == 2 and "--resume" in again.stderr  # never silently overwritten
    resumed = _train_cli(tiny_model_dir, data, tmp_path / "killed", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a, b = (
        load_file(str(tmp_path / "full" / "model.safetensors")),
        load_file(str(tmp_path / "killed" / "model.safetensors")),
    )
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-6, err_msg=key)
    ha, hb = (
        load_file(str(tmp_path / "full" / "heads.safetensors")),
        load_file(str(tmp_path / "killed" / "heads.safetensors")),
    )
    for key in ha:
        np.testing.assert_allclose(ha[key], hb[key], atol=1e-6, err_msg=key)


def test_resume_rejects_a_different_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    train(_cfg(tiny_model_dir, out, tasks="sst2", data_dir=write_sst2(tmp_path / "s"), max_steps=3))
    with pytest.raises(AlignError, match="tasks"):
        train(
            _cfg(
                tiny_model_dir,
                out,
                tasks="hellaswag",
                data_dir=write_hellaswag(tmp_path / "h"),
                resume=True,
            )
        )
    from conftest import make_tiny_model

    other = make_tiny_model(tmp_path / "other", seed=5)
    with pytest.raises(AlignError, match="model"):
        train(_cfg(other, out, tasks="sst2", data_dir=tmp_path / "s", max_steps=3, resume=True))


@pytest.mark.parametrize(
    ("writer", "task", "message"),
    [
        (lambda p: write_mnli(p, bad="missing_column"), "mnli", "missing column"),
        (
            lambda p: write_mnli(p, bad="bad_label"),
            "mnli",
            "label 'maybe' is not in task mnli's label set",
        ),
        (lambda p: write_squad(p, v2=False, bad_span=True), "squad", "does not match the context"),
        (lambda p: write_squad(p, v2=True, generic_names=True), "squad", "marked impossible"),
    ],
)
def test_bad_task_files(
    writer, task: str, message: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    data = writer(tmp_path / "data")
    with pytest.raises(AlignError, match=message):
        train(_cfg(tiny_model_dir, tmp_path / "out", tasks=task, data_dir=data))
    assert not (tmp_path / "out").exists()  # nothing written before the data is valid


def test_unknown_task_and_missing_files(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(AlignError, match="unknown task 'mnlii'"):
        train(_cfg(tiny_model_dir, tmp_path / "out", tasks="mnlii"))
    with pytest.raises(AlignError, match="no train file"):
        train(_cfg(tiny_model_dir, tmp_path / "out", tasks="mnli", data_dir=tmp_path))


def test_torchrun_two_processes(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = write_sst2(tmp_path / "sst2")
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
    ]
    run_args = ["--max-steps", "4", "--batch-size", "2", "--device", "cpu"]
    args = [*launcher, *_sst2_train_args(tiny_model_dir, data, tmp_path / "ddp", *run_args)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((tmp_path / "ddp" / "align_meta.json").read_text())
    assert meta["world_size"] == 2
    assert (tmp_path / "ddp" / "model.safetensors").is_file() and (
        tmp_path / "ddp" / "config.json"
    ).is_file()


@pytest.mark.parametrize(
    ("task", "writer", "size"),
    [
        ("qqp", write_qqp, 12),
        ("anli", write_anli, 12),
        ("commonsenseqa", write_commonsenseqa, 10),
        ("cosmosqa", write_cosmosqa, 10),
    ],
)
def test_other_readers(task: str, writer, size: int, tmp_path: Path) -> None:
    spec = get_task(task)
    for split in ("train", "dev"):
        examples = load_split(spec, writer(tmp_path), split)
        assert len(examples) == size
        labels = {e["label"] for e in examples}
        assert labels <= set(range(max(spec.num_labels, 2)))
        if spec.head.name == "multiple_choice":
            assert all(len(e["choices"]) == spec.num_labels for e in examples)


def test_mlm_bf16_and_grad_accum(tiny_model_dir: Path, tmp_path: Path) -> None:
    mlm = tmp_path / "mlm.txt"
    mlm.write_text(
        "\n".join(["the quick brown fox", "der schnelle braune fuchs", "au commencement dieu"] * 4)
    )
    cfg = _cfg(
        tiny_model_dir,
        tmp_path / "out",
        tasks="sst2",
        data_dir=write_sst2(tmp_path / "s"),
        max_steps=6,
        mlm_data=mlm,
        mlm_weight=0.5,
        precision="bf16",
        grad_accum=2,
    )
    run = train(cfg)
    assert len(run.losses) == 6 and all(np.isfinite(run.losses))
    heads = load_file(str(tmp_path / "out" / "heads.safetensors"))
    assert any(k.startswith("mlm_head.") for k in heads)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n\nafter an empty line\n")
    with pytest.raises(AlignError, match=r"bad\.txt:2: empty line"):
        train(
            _cfg(
                tiny_model_dir, tmp_path / "o2", tasks="sst2", data_dir=tmp_path / "s", mlm_data=bad
            )
        )


def test_epochs_set_the_schedule(tiny_model_dir: Path, tmp_path: Path) -> None:
    run = train(
        _cfg(
            tiny_model_dir,
            tmp_path / "out",
            tasks="sst2",
            data_dir=write_sst2(tmp_path / "s", n=24),
            max_steps=0,
            epochs=2.0,
            batch_size=4,
        )
    )
    assert run.steps == 12  # 2 epochs x 24 examples / batch 4


def test_steps_read_nothing_back_from_the_device_between_logging_steps(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    """Inside the step loop no value is read back from the device except where losses are read
    (once per logging step) and where a state is saved; the losses then equal one read per
    step. On the CPU every read is counted (AdamW's step counts would be read each step unless
    the optimizer is fused); with CUDA present the sync debug mode raises on any other
    synchronisation too."""
    from dataclasses import replace

    import torch

    import align.train.loop as loop_module

    allowed, reads, logs = [0], [], []
    cuda = torch.cuda.is_available()

    def permitted(fn, name=None):
        def inner(*args, **kwargs):
            if name:
                logs.append(name)
            allowed[0] += 1
            if cuda:
                torch.cuda.set_sync_debug_mode("default")
            try:
                return fn(*args, **kwargs)
            finally:
                allowed[0] -= 1
                if cuda and not allowed[0]:
                    torch.cuda.set_sync_debug_mode("error")

        return inner

    recording = [False]
    for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            if recording[0] and not allowed[0]:
                reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    run_steps = loop_module.Loop._steps

    def steps(self, *args):
        recording[0] = True
        if cuda:
            torch.cuda.set_sync_debug_mode("error")
        try:
            return run_steps(self, *args)
        finally:
            recording[0] = False
            if cuda:
                torch.cuda.set_sync_debug_mode("default")

    monkeypatch.setattr(loop_module.Loop, "_steps", steps)
    read_losses = permitted(loop_module.Loop.read_losses, "read")
    monkeypatch.setattr(loop_module.Loop, "read_losses", read_losses)
    save_state = permitted(loop_module.checkpoint.save_state)
    monkeypatch.setattr(loop_module.checkpoint, "save_state", save_state)
    data = write_sst2(tmp_path / "data")
    cfg = _cfg(tiny_model_dir, tmp_path / "out", tasks="sst2", data_dir=data, max_steps=12)
    run = train(replace(cfg, log_steps=4, save_steps=100, grad_accum=2))
    assert reads == []  # nothing read back outside the loss reads and the saved state
    assert len(run.losses) == 12 and all(np.isfinite(run.losses))
    assert logs.count("read") >= 12 // 4  # at each logging step (and before the final save)


def test_fused_adamw_and_precision_follow_the_device(tiny_model_dir: Path, tmp_path: Path) -> None:
    """fp32 stays the CPU's default; the optimizer is fused wherever torch has the kernel."""
    import torch

    from align.train import trainer as trainer_module
    from align.train.config import resolve_precision

    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    data = write_sst2(tmp_path / "data")
    run = train(_cfg(tiny_model_dir, tmp_path / "out", tasks="sst2", data_dir=data, max_steps=2))
    assert run.meta["config"]["precision"] == "fp32"
    model = torch.nn.Linear(3, 2)
    optimizer, _ = trainer_module._optimizer(model, _cfg(tiny_model_dir, tmp_path), 10)
    assert optimizer.defaults["fused"] is True
