"""The optimizer-step loop of ``align train``: micro-batches from a deterministic schedule,
gradient accumulation, autocast, clipping, the LR schedule, and a resumable state saved every
``save_steps``.

Between two logging steps the loop never reads a value back from the device: micro-batches
are collated ahead on a thread (pinned on CUDA, copied without blocking), losses are summed on
the device and read once per logging step, and the optimizer is fused AdamW (its step counts
live on the device too). Saving a state (every ``save_steps``) reads the weights, as it must.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from align.errors import AlignError
from align.train import checkpoint
from align.train.batching import Schedule
from align.train.config import TrainConfig
from align.train.mlm import MLMData
from align.train.prefetch import Prefetcher

log = logging.getLogger(__name__)


@dataclass
class TaskData:
    spec: Any
    train: list[dict]
    dev: list[dict]
    labels: list[str]
    source: str  # the data directory read, "builtin" or "hub"
    train_features: list[dict] | None = None
    dev_features: list[dict] | None = None


PREFETCH = 4  # micro-batches collated ahead of the step that uses them


def autocast(precision: str, device: str):
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.split(":")[0], dtype=dtype)


@dataclass
class Loop:
    """The optimizer-step loop; ``model`` may be DDP-wrapped, ``bare`` never is."""

    cfg: TrainConfig
    tasks: dict[str, TaskData]
    schedule: Schedule
    model: torch.nn.Module
    bare: torch.nn.Module
    optimizer: Any
    scheduler: Any
    scaler: Any
    mlm: MLMData | None
    tokenizer: Any
    device: str
    rank: int
    world: int
    losses: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.pad_id = self.tokenizer.pad_token_id
        self.autocast = autocast(self.cfg.precision, self.device)
        self.pinned = self.device.startswith("cuda")
        self.pending: list[torch.Tensor] = []  # step losses on the device, not yet read
        self.start_step = 0  # self.losses[i] is the loss of step start_step + i + 1

    def host_batch(self, micro: int) -> tuple[str, dict, dict | None]:
        """Micro-batch ``micro`` collated on the host (pinned on CUDA): (task, batch, MLM
        batch); a pure function of the seed and ``micro``, so it may be made ahead."""
        task, indices = self.schedule[micro]
        share = indices[self.rank * self.cfg.batch_size : (self.rank + 1) * self.cfg.batch_size]
        if len(share) == 0:
            share = indices[:1]
        data = self.tasks[task]
        batch = data.spec.head.collate([data.train_features[i] for i in share], self.pad_id)
        mlm = None
        if self.mlm is not None:
            mlm = self.mlm.batch(micro, self.cfg, self.tokenizer, self.rank)
        if self.pinned:
            batch = {k: v.pin_memory() for k, v in batch.items()}
            mlm = {k: v.pin_memory() for k, v in mlm.items()} if mlm is not None else None
        return task, batch, mlm

    def _on_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def _micro_loss(self, host: tuple[str, dict, dict | None]) -> torch.Tensor:
        task, batch, mlm_batch = host
        with self.autocast():
            loss = self.model(task, self._on_device(batch))["loss"]
            if mlm_batch is not None:
                weight = 1.0 if self.cfg.mlm_weight is None else self.cfg.mlm_weight
                loss = loss + weight * self.model("mlm", self._on_device(mlm_batch))["loss"]
        return loss / self.cfg.grad_accum

    def read_losses(self) -> None:
        """The step losses summed on the device since the last read, into ``self.losses``
        (one read back for all of them); a non-finite one stops training, naming its step."""
        if self.pending:
            values = torch.stack(self.pending).float().cpu().tolist()
            self.pending = []
            for i, value in enumerate(values):
                if not math.isfinite(value):
                    step = self.start_step + len(self.losses) + i + 1
                    raise AlignError(
                        f"training diverged: the loss is {value} at step {step}; no checkpoint "
                        "of these weights was written (lower --lr?)"
                    )
            self.losses += values

    def run(self, start: int, total: int) -> float:
        """Optimizer steps ``start``..``total``; per-step mean losses go to ``self.losses``."""
        from tqdm.auto import tqdm

        began = time.perf_counter()
        self.start_step = start - len(self.losses)  # self.losses[i] is step start_step + i + 1
        bar = tqdm(
            total=total,
            initial=start,
            desc="training",
            disable=not self.cfg.progress or self.rank != 0,
        )
        accum = self.cfg.grad_accum
        micros = range(start * accum, total * accum)
        with Prefetcher(self.host_batch, micros, PREFETCH) as batches:
            self._steps(start, total, iter(batches), bar)
        bar.close()
        return time.perf_counter() - began

    def _steps(self, start: int, total: int, batches, bar) -> None:
        logged = len(self.losses)  # the losses read up to the last logging step
        for step in range(start, total):
            step_loss = torch.zeros((), device=self.device)
            for k in range(self.cfg.grad_accum):
                sync = k == self.cfg.grad_accum - 1 or self.world == 1
                ctx = contextlib.nullcontext() if sync else self.model.no_sync()
                with ctx:
                    loss = self._micro_loss(next(batches))
                    (self.scaler.scale(loss) if self.scaler else loss).backward()
                step_loss += loss.detach()  # losses are already divided by grad_accum
            self.pending.append(step_loss)
            if self.scaler:
                self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.bare.parameters(), 1.0)
            if self.scaler:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            bar.update(1)
            if (step + 1) % self.cfg.log_steps == 0:
                self.read_losses()
                mean = sum(self.losses[logged:]) / max(len(self.losses) - logged, 1)
                logged = len(self.losses)
                log.info(
                    "step %d/%d loss %.4f lr %.2e",
                    step + 1,
                    total,
                    mean,
                    self.scheduler.get_last_lr()[0],
                )
                bar.set_postfix(loss=f"{mean:.4f}")
            if (step + 1) % self.cfg.save_steps == 0 or step + 1 == total:
                self.read_losses()
                checkpoint.save_state(
                    self.cfg.out,
                    step + 1,
                    self.bare,
                    self.optimizer,
                    self.scheduler,
                    self.scaler,
                    self.rank,
                    self.world,
                    self.cfg.keep_checkpoints,
                )
            _test_kill_hook(step + 1)
        self.read_losses()


def _test_kill_hook(step: int) -> None:
    """Tests simulate ``kill -9`` after a given step: the process vanishes, nothing is flushed."""
    if os.environ.get("ALIGN_TEST_KILL_AFTER_STEP") == str(step):
        os.kill(os.getpid(), signal.SIGKILL)
