"""``align train`` configuration: every field with its help, checked before any work."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from align.errors import AlignError
from align.options import check_fields, check_seed, option, require_at_least
from align.train.batching import Sampling

Precision = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS: tuple[Precision, ...] = ("auto", "fp32", "bf16", "fp16")


def resolve_precision(precision: Precision, device: str) -> Precision:
    """``auto``: bf16 autocast on a CUDA device that supports it, fp32 elsewhere (the CPU has
    no fast half-precision kernels)."""
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_bf16_supported():
            return "bf16"
    return "fp32"


def parse_task_dir(item: str) -> tuple[str, Path]:
    """``TASK=DIR`` -> (task, Path(DIR))."""
    task, sep, folder = item.partition("=")
    if not sep or not task.strip() or not folder.strip():
        raise AlignError(f"--task-dir {item!r}: expected TASK=DIR")
    return task.strip(), Path(folder)


@dataclass
class TrainConfig:
    tasks: str = option(
        "bible-paraphrase",
        "task name, or a comma list for multi-task training",
        flag="--task",
        metavar="TASK",
    )
    data_dir: Path | None = option(
        None,
        "the tasks' standard files (tasks with built-in data, such as bible-paraphrase, need "
        "none; others without it load the hub dataset: the datasets extra and network)",
    )
    task_dirs: dict[str, Path] = option(
        {},
        "per-task data directory, e.g. translated files (repeatable)",
        flag="--task-dir",
        metavar="TASK=DIR",
        append=True,
        parse=parse_task_dir,
        collect=dict,
    )
    model: str | None = option(
        None, "base model: HF id or local dir (default: offline multilingual-e5-small)"
    )
    out: Path = option(Path("ckpts/run"), "checkpoint directory (new, empty, or a run to resume)")
    max_steps: int = option(0, "optimizer steps; > 0 overrides --epochs")
    epochs: float = option(
        1.0, "passes over the training data (when --max-steps is 0)", low=0, high=10**6
    )
    lr: float = option(2e-5, "peak learning rate (linear warm-up, then linear decay)", above=0)
    batch_size: int = option(16, "examples per process and micro-batch")
    grad_accum: int = option(1, "micro-batches per optimizer step")
    max_length: int = option(128, "tokens per example")
    seed: int = option(0, "seed of initialisation, batches and sampling")
    warmup_ratio: float = option(0.1, "share of the steps spent warming up", low=0, below=1)
    weight_decay: float = option(0.01, "AdamW weight decay (not on biases and norms)", low=0)
    sampling: Sampling = option("proportional", "multi-task sampling")
    sampling_cap: int = option(2**17, "examples-proportional sampling: cap per task")
    temperature: float = option(2.0, "temperature sampling: p ~ n^(1/T)", above=0)
    freeze_embeddings: bool = option(False, "freeze the word-embedding matrix (most parameters)")
    mlm_data: Path | None = option(None, "multilingual text, one sentence per line, for MLM")
    mlm_weight: float | None = option(
        None, "weight of the MLM loss (with --mlm-data; default 1)", above=0
    )
    mlm_probability: float = option(0.15, "share of tokens masked for MLM", above=0, below=1)
    precision: Precision = option(
        "auto",
        "autocast precision: auto = bf16 on a CUDA device that supports it, fp32 on the CPU "
        "(weights stay float32 either way)",
        aliases={"--bf16": "bf16", "--fp16": "fp16"},
    )
    device: str = option("auto", "auto | cpu | cuda | cuda:N")
    save_steps: int = option(100, "save a resumable training state every this many steps")
    keep_checkpoints: int = option(1, "training states kept on disk")
    resume: bool = option(False, "continue the run in --out from its last saved state")
    group_by_length: bool = option(
        True, "batch examples in random order (no length grouping)", flag="--no-group-by-length"
    )
    max_train_examples: int | None = option(None, "use only the first N training examples")
    max_eval_examples: int | None = option(None, "use only the first N dev examples")
    eval_batch_size: int = option(64, "examples per evaluation batch")
    log_steps: int = option(10, "log the loss every this many steps")
    progress: bool = option(True, "progress bar (the CLI shows it on a terminal)", cli=False)

    def task_names(self) -> list[str]:
        return list(dict.fromkeys(t.strip() for t in self.tasks.split(",") if t.strip()))

    def validate(self) -> None:
        """One-line errors for arguments that would train nothing or crash later."""
        check_fields(self)
        require_at_least(
            ("--batch-size", self.batch_size, 1),
            ("--grad-accum", self.grad_accum, 1),
            ("--save-steps", self.save_steps, 1),
            ("--keep-checkpoints", self.keep_checkpoints, 1),
            ("--eval-batch-size", self.eval_batch_size, 1),
            ("--log-steps", self.log_steps, 1),
            ("--max-length", self.max_length, 8),
            ("--max-steps", self.max_steps, 0),
            ("--sampling-cap", self.sampling_cap, 1),
        )
        if self.max_steps == 0 and not self.epochs > 0:
            raise AlignError(f"--epochs {self.epochs}: must be > 0 when --max-steps is 0")
        if not self.lr > 0:
            raise AlignError(f"--lr {self.lr}: must be > 0")
        if not 0 <= self.warmup_ratio < 1:
            raise AlignError(f"--warmup-ratio {self.warmup_ratio}: must lie in [0, 1)")
        if not 0 < self.mlm_probability < 1:
            raise AlignError(f"--mlm-probability {self.mlm_probability}: must lie in (0, 1)")
        if self.precision not in PRECISIONS:
            raise AlignError(f"--precision {self.precision!r}: expected {', '.join(PRECISIONS)}")
        for flag, value in (
            ("--max-train-examples", self.max_train_examples),
            ("--max-eval-examples", self.max_eval_examples),
        ):
            if value is not None and value < 1:
                raise AlignError(f"{flag} {value}: must be at least 1")
        if self.mlm_weight is not None and self.mlm_data is None:
            raise AlignError(f"--mlm-weight {self.mlm_weight}: needs --mlm-data")
        if self.mlm_weight is not None and not self.mlm_weight > 0:
            raise AlignError(f"--mlm-weight {self.mlm_weight}: must be > 0")
        check_seed(self.seed)
        if not self.task_names():
            raise AlignError("--task: no task given")
        unknown = set(self.task_dirs) - set(self.task_names())
        if unknown:
            raise AlignError(f"--task-dir {', '.join(sorted(unknown))}: not a task of this run")
