"""The optimizer-step loop of ``align train``: micro-batches from a deterministic schedule,
gradient accumulation, autocast, clipping, the LR schedule, and a resumable state saved every
``save_steps``."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from align.train import checkpoint
from align.train.batching import Schedule
from align.train.config import TrainConfig
from align.train.mlm import MLMData

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

    def _batch(self, micro: int) -> tuple[str, dict[str, torch.Tensor]]:
        task, indices = self.schedule[micro]
        share = indices[self.rank * self.cfg.batch_size : (self.rank + 1) * self.cfg.batch_size]
        if len(share) == 0:
            share = indices[:1]
        data = self.tasks[task]
        batch = data.spec.head.collate([data.train_features[i] for i in share], self.pad_id)
        return task, {k: v.to(self.device) for k, v in batch.items()}

    def _micro_loss(self, micro: int) -> torch.Tensor:
        task, batch = self._batch(micro)
        with self.autocast():
            loss = self.model(task, batch)["loss"]
            if self.mlm is not None:
                mlm_batch = self.mlm.batch(micro, self.cfg, self.tokenizer, self.rank)
                mlm_batch = {k: v.to(self.device) for k, v in mlm_batch.items()}
                weight = 1.0 if self.cfg.mlm_weight is None else self.cfg.mlm_weight
                loss = loss + weight * self.model("mlm", mlm_batch)["loss"]
        return loss / self.cfg.grad_accum

    def run(self, start: int, total: int) -> float:
        """Optimizer steps ``start``..``total``; per-step mean losses go to ``self.losses``."""
        from tqdm.auto import tqdm

        began = time.perf_counter()
        bar = tqdm(
            total=total,
            initial=start,
            desc="training",
            disable=not self.cfg.progress or self.rank != 0,
        )
        running = 0.0
        for step in range(start, total):
            step_loss = 0.0
            for k in range(self.cfg.grad_accum):
                micro = step * self.cfg.grad_accum + k
                sync = k == self.cfg.grad_accum - 1 or self.world == 1
                ctx = contextlib.nullcontext() if sync else self.model.no_sync()
                with ctx:
                    loss = self._micro_loss(micro)
                    (self.scaler.scale(loss) if self.scaler else loss).backward()
                step_loss += float(loss.detach())  # losses are already divided by grad_accum
            self.losses.append(step_loss)
            running += step_loss
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
                log.info(
                    "step %d/%d loss %.4f lr %.2e",
                    step + 1,
                    total,
                    running / self.cfg.log_steps,
                    self.scheduler.get_last_lr()[0],
                )
                bar.set_postfix(loss=f"{running / self.cfg.log_steps:.4f}")
                running = 0.0
            if (step + 1) % self.cfg.save_steps == 0 or step + 1 == total:
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
        bar.close()
        return time.perf_counter() - began


def _test_kill_hook(step: int) -> None:
    """Tests simulate ``kill -9`` after a given step: the process vanishes, nothing is flushed."""
    if os.environ.get("ALIGN_TEST_KILL_AFTER_STEP") == str(step):
        os.kill(os.getpid(), signal.SIGKILL)
