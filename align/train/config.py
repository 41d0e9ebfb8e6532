"""``align train`` configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from align.train.batching import Sampling

Precision = Literal["fp32", "bf16", "fp16"]


@dataclass
class TrainConfig:
    tasks: str = "bible-paraphrase"  # comma list: multi-task training when several
    data_dir: Path | None = None  # standard task files; None: the hub (needs the datasets extra)
    task_dirs: dict[str, Path] = field(
        default_factory=dict
    )  # per-task override, e.g. translated data
    model: str | None = None  # HF id / local dir; None: the offline default model
    out: Path = Path("ckpts/run")
    max_steps: int = 0  # > 0 overrides epochs
    epochs: float = 1.0
    lr: float = 2e-5
    batch_size: int = 16  # per process
    grad_accum: int = 1
    max_length: int = 128
    seed: int = 0
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    sampling: Sampling = "proportional"
    sampling_cap: int = 2**17
    temperature: float = 2.0
    freeze_embeddings: bool = False  # freeze the word-embedding matrix (most of the parameters)
    mlm_data: Path | None = None  # multilingual text, one sentence per line
    mlm_weight: float = 1.0
    mlm_probability: float = 0.15
    precision: Precision = "fp32"
    device: str = "auto"
    save_steps: int = 100
    keep_checkpoints: int = 1
    resume: bool = False
    group_by_length: bool = True
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    eval_batch_size: int = 64
    log_steps: int = 10
    progress: bool = True

    def task_names(self) -> list[str]:
        return list(dict.fromkeys(t.strip() for t in self.tasks.split(",") if t.strip()))
