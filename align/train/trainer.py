"""``align train``: intermediate-task (multi-task) fine-tuning with a plain, resumable loop.

One process, or many under ``torchrun --nproc_per_node N`` / ``accelerate launch`` (DDP: gloo
on CPU, NCCL on GPU) with no code change. Batches are length-grouped with dynamic padding;
bf16/fp16 autocast; gradient accumulation; a deterministic schedule so ``--resume`` after a
kill reproduces the uninterrupted run.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from align._io import OutputLock, check_cache_dir, check_output_dir
from align.errors import AlignError
from align.models.kinds import kind_of
from align.models.loading import (
    describe_model,
    ensure_pad_token,
    is_default_model,
    load_model_and_tokenizer,
    model_fingerprint,
    resolve_device,
)
from align.progress import step
from align.results import jsonable, versions
from align.train import checkpoint
from align.train.batching import Schedule, task_probabilities
from align.train.config import TrainConfig, resolve_precision
from align.train.evaluate import dev_metrics, predict
from align.train.loop import Loop, TaskData, autocast
from align.train.mlm import MLMData
from align.train.model import MultiTaskModel
from align.train.tasks import get_task, load_split

log = logging.getLogger(__name__)


@dataclass
class TrainRun:
    out: Path
    steps: int
    dev_metrics: dict[str, dict[str, float]]
    meta: dict[str, Any]
    losses: list[float]  # mean training loss of each optimizer step run in this process


def _distributed() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world


def _load_tasks(cfg: TrainConfig) -> dict[str, TaskData]:
    """Read and validate every task's train and dev files before any model is loaded."""
    out = {}
    for name in cfg.task_names():
        spec = get_task(name)
        data_dir = cfg.task_dirs.get(name, cfg.data_dir)
        train, dev = load_split(spec, data_dir, "train"), load_split(spec, data_dir, "dev")
        if cfg.max_train_examples:
            train = train[: cfg.max_train_examples]
        if cfg.max_eval_examples:
            dev = dev[: cfg.max_eval_examples]
        labels = spec.head.labels(spec.head_options, train)
        source = str(data_dir or ("builtin" if spec.options.get("builtin") else "hub"))
        out[name] = TaskData(spec, train, dev, labels, source)
        log.info(
            "task %s (%s): %d train, %d dev examples", name, spec.head.name, len(train), len(dev)
        )
    return out


def _optimizer(model: torch.nn.Module, cfg: TrainConfig, total_steps: int):
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 or "LayerNorm" in name or "norm" in name else decay).append(
                param
            )
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, fused=_fused_supported(model))
    warmup = int(cfg.warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(warmup, 1)
        return max(0.0, (total_steps - step) / max(total_steps - warmup, 1))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _fused_supported(model: torch.nn.Module) -> bool:
    """Fused AdamW (one kernel per step, step counts on the device: no host read per step) where
    every trainable parameter is a float on a device torch has the fused kernel for."""
    params = [p for p in model.parameters() if p.requires_grad]
    return bool(params) and all(
        p.is_floating_point() and p.device.type in ("cuda", "cpu") for p in params
    )


def _run_record(cfg: TrainConfig, fingerprint: str, world: int) -> dict[str, Any]:
    keys = (
        "tasks",
        "max_steps",
        "epochs",
        "lr",
        "batch_size",
        "grad_accum",
        "max_length",
        "seed",
        "sampling",
        "freeze_embeddings",
        "mlm_weight",
        "precision",
        "group_by_length",
    )
    record = {k: jsonable(getattr(cfg, k)) for k in keys}
    return record | {"model": cfg.model, "model_fingerprint": fingerprint, "world_size": world}


def _total_steps(cfg: TrainConfig, tasks: dict[str, TaskData], world: int) -> int:
    if cfg.max_steps > 0:
        return cfg.max_steps
    examples = sum(len(t.train) for t in tasks.values())
    return max(1, math.ceil(cfg.epochs * examples / (cfg.batch_size * world * cfg.grad_accum)))


def train(cfg: TrainConfig) -> TrainRun:
    """Check everything, train, evaluate on dev, export an HF checkpoint with align_meta.json.

    The checkpoint records the base model's encoding defaults (prefix, pooling), so that it is
    encoded as its base was unless the user says otherwise.
    """
    cfg.validate()
    cfg = replace(cfg, precision=resolve_precision(cfg.precision, resolve_device(cfg.device)))
    rank, _, world = _distributed()
    check_output_dir(cfg.out)  # before the task data is read
    if cfg.resume and not Path(cfg.out).is_dir():  # before the lock makes the folder
        raise AlignError(f"--resume: {cfg.out} does not exist; drop --resume to start a new run")
    if is_default_model(cfg.model):
        check_cache_dir()  # the default model is built there
    # the lock before anything in --out is read or changed: a second run into a live one's
    # folder is refused before it can take the first one's run for a crashed start
    lock = OutputLock(cfg.out).acquire() if rank == 0 else None
    try:
        base = describe_model(cfg.model, "model")
        _check_kind(cfg, base)
        if cfg.max_length > base.max_positions:
            raise AlignError(
                f"--max-length {cfg.max_length}: {base.name} takes at most "
                f"{base.max_positions} tokens"
            )
        fingerprint = model_fingerprint(base.path)
        run = _run_record(cfg, fingerprint, world)
        if rank == 0:
            checkpoint.check_run(cfg.out, run, cfg.resume)
        tasks = _load_tasks(cfg)
        mlm = MLMData.read(cfg.mlm_data) if cfg.mlm_data else None
        return _train(cfg, tasks, mlm, base, fingerprint, run)
    finally:
        if lock is not None:
            lock.release()


def _check_kind(cfg: TrainConfig, base) -> None:
    """A decoder trains the sentence heads (classification, multiple choice), reading its last
    real token; an encoder-decoder is refused (its encoder alone would be trained and saved as
    if it were the whole model)."""
    if base.kind == "encoder":
        return
    if base.kind == "encoder-decoder":
        raise AlignError(
            f"--model {cfg.model}: {base.name} is an encoder-decoder ({base.model_type}); align "
            "train fine-tunes encoders and decoder-only models"
        )
    if cfg.mlm_data:
        raise AlignError(f"--mlm-data: {base.name} is a decoder-only model (no masked LM head)")
    for name in [t.strip() for t in cfg.tasks.split(",") if t.strip()]:
        head = get_task(name).head.name
        if head not in ("classification", "multiple_choice"):
            raise AlignError(
                f"--tasks {name}: a {head} head; a decoder-only model ({base.name}) trains the "
                "sentence heads only (classification, multiple choice), read at its last token"
            )


def _train(cfg: TrainConfig, tasks, mlm, base, fingerprint: str, run: dict) -> TrainRun:
    rank, local_rank, world = _distributed()
    device = _setup_device(cfg.device, local_rank, world)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    model, tokenizer = _build_model(base.path, tasks, mlm is not None, cfg, device)
    for data in tasks.values():
        head = data.spec.head
        data.train_features = head.featurize(data.train, tokenizer, cfg.max_length, data.labels)
        data.dev_features = head.featurize(data.dev, tokenizer, cfg.max_length, data.labels)
    total = _total_steps(cfg, tasks, world)
    loop, probabilities = _make_loop(cfg, tasks, model, tokenizer, mlm, device, total)
    start = _resume(cfg, loop, total)
    if rank == 0:
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        checkpoint.write_run(cfg.out, run)
    elapsed = loop.run(start, total)
    metrics = _evaluate(model, tasks, tokenizer, cfg, device) if rank == 0 else {}
    meta = _meta(
        cfg, base.name, fingerprint, tasks, total, metrics, probabilities, world, elapsed, loop
    ) | {"encoding": asdict(base.encoding)}
    if rank == 0:
        heads = {t: {"head": d.spec.head.name, "labels": d.labels} for t, d in tasks.items()}
        checkpoint.export(cfg.out, model, tokenizer, heads, meta, base.path)
        log.info("checkpoint written to %s", cfg.out)
    if world > 1:
        torch.distributed.barrier()
    return TrainRun(Path(cfg.out), total, metrics, meta, loop.losses)


def _make_loop(cfg, tasks, model, tokenizer, mlm, device: str, total: int):
    """The step loop with its schedule, optimizer, scaler and (under torchrun) DDP wrapper."""
    rank, local_rank, world = _distributed()
    schedule, probabilities = _schedule(cfg, tasks, total, world)
    optimizer, scheduler = _optimizer(model, cfg, total)
    scaler = None
    if cfg.precision == "fp16":  # loss scaling is a CUDA matter: disabled (silently) on the CPU
        kind = "cuda" if device.startswith("cuda") else "cpu"
        scaler = torch.amp.GradScaler(kind, enabled=kind == "cuda")
    wrapped = model
    if world > 1:
        ids = [local_rank] if device.startswith("cuda") else None
        wrapped = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=ids, find_unused_parameters=True
        )
    loop = Loop(
        cfg=cfg,
        tasks=tasks,
        schedule=schedule,
        model=wrapped,
        bare=model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        mlm=mlm,
        tokenizer=tokenizer,
        device=device,
        rank=rank,
        world=world,
    )
    return loop, probabilities


def _resume(cfg: TrainConfig, loop: Loop, total: int) -> int:
    """The step to start from: 0, or the last saved state's step with ``--resume``."""
    if not cfg.resume or (state := checkpoint.latest_state(cfg.out)) is None:
        return 0
    start = checkpoint.load_state(
        state, loop.bare, loop.optimizer, loop.scheduler, loop.scaler, loop.rank, loop.world
    )
    log.info("resumed from %s (step %d of %d)", state, start, total)
    return start


def _setup_device(requested: str, local_rank: int, world: int) -> str:
    """The process's device; under torchrun also the process group (NCCL on GPU, gloo on CPU)."""
    device = resolve_device(requested)
    if world > 1:
        if device.startswith("cuda"):
            device = f"cuda:{local_rank}"
            torch.cuda.set_device(local_rank)
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return device


def _schedule(cfg: TrainConfig, tasks: dict[str, TaskData], total: int, world: int):
    sizes = {t: len(d.train_features or []) for t, d in tasks.items()}
    probabilities = task_probabilities(sizes, cfg.sampling, cfg.sampling_cap, cfg.temperature)
    lengths = {t: [f["length"] for f in d.train_features or []] for t, d in tasks.items()}
    schedule = Schedule(
        lengths,
        cfg.batch_size * world,
        total * cfg.grad_accum,
        cfg.seed,
        probabilities,
        cfg.group_by_length,
    )
    return schedule, probabilities


def _build_model(
    model_dir: Path, tasks: dict[str, TaskData], mlm: bool, cfg: TrainConfig, device: str
):
    """Float32 master weights whatever the stored dtype; --bf16/--fp16 only autocast."""
    encoder, tokenizer = load_model_and_tokenizer(model_dir, "float32")
    ensure_pad_token(tokenizer, getattr(encoder.config, "vocab_size", None))
    heads = {t: (d.spec.head, len(d.labels)) for t, d in tasks.items()}
    torch.manual_seed(cfg.seed)  # head initialisation is part of the seeded run
    causal = kind_of(encoder.config.to_dict(), model_dir / "config.json") == "decoder"
    model = MultiTaskModel(encoder, heads, mlm=mlm, causal=causal)
    if cfg.freeze_embeddings:
        encoder.get_input_embeddings().weight.requires_grad_(False)
    return model.to(device).train(), tokenizer


def _evaluate(
    model, tasks: dict[str, TaskData], tokenizer, cfg: TrainConfig, device: str
) -> dict[str, dict]:
    metrics = {}
    for name, data in tasks.items():
        n = len(data.dev_features)
        with step(f"dev evaluation of {name}: {n} examples", n, "ex", cfg.progress) as update:
            outputs = predict(
                model,
                data.spec,
                data.dev_features,
                tokenizer.pad_token_id,
                cfg.eval_batch_size,
                device,
                autocast(cfg.precision, device),
                update,
            )
        metrics[name] = dev_metrics(data.spec, data.dev, data.dev_features, outputs)
        log.info("dev %s: %s", name, ", ".join(f"{k} {v:.4f}" for k, v in metrics[name].items()))
    return metrics


def _meta(
    cfg, name, fingerprint, tasks, total, metrics, probabilities, world, elapsed, loop
) -> dict:
    schedule = loop.schedule
    return {
        "base_model": {"name": name, "fingerprint": fingerprint},
        "tasks": {
            t: {
                "head": d.spec.head.name,
                "train_examples": len(d.train),
                "dev_examples": len(d.dev),
                "data": d.source,
            }
            for t, d in tasks.items()
        },
        "sampling": {
            "mode": cfg.sampling,
            "probabilities": probabilities,
            "micro_batches": schedule.counts(),
        },
        "steps": total,
        "seed": cfg.seed,
        "world_size": world,
        "dev_metrics": metrics,
        "train_seconds": round(elapsed, 2),
        "config": jsonable(asdict(cfg)),
        "versions": versions(),
    }
