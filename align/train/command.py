"""``align train`` command line: flags -> :class:`TrainConfig` -> :func:`train`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from align.errors import AlignError


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="intermediate-task fine-tuning -> a checkpoint align can analyse"
    )
    p.add_argument(
        "--task", default="bible-paraphrase", help="task name, or a comma list for multi-task"
    )
    p.add_argument("--list-tasks", action="store_true", help="list the registered tasks and exit")
    p.add_argument(
        "--data-dir", type=Path, default=None, help="the tasks' standard files (default: hub)"
    )
    p.add_argument(
        "--task-dir",
        action="append",
        default=[],
        metavar="TASK=DIR",
        help="per-task data directory, e.g. translated files (repeatable)",
    )
    p.add_argument(
        "--model", default=None, help="HF id or local dir (default: offline multilingual-e5-small)"
    )
    p.add_argument("--out", type=Path, default=Path("ckpts/run"))
    p.add_argument("--max-steps", type=int, default=0, help="optimizer steps (overrides --epochs)")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--batch-size", type=int, default=16, help="per process")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--sampling", choices=("proportional", "temperature"), default="proportional")
    p.add_argument("--sampling-cap", type=int, default=2**17, help="examples-proportional cap")
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument(
        "--freeze-embeddings", action="store_true", help="freeze the word-embedding matrix"
    )
    p.add_argument(
        "--mlm-data", type=Path, default=None, help="multilingual text for continued MLM"
    )
    p.add_argument("--mlm-weight", type=float, default=1.0)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--fp16", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--save-steps", type=int, default=100)
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last state"
    )
    p.add_argument("--no-group-by-length", action="store_true")
    p.add_argument("--max-train-examples", type=int, default=None)
    p.add_argument("--max-eval-examples", type=int, default=None)
    p.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    from align.train.config import TrainConfig

    if args.list_tasks:
        from align.train.tasks import REGISTRY

        for spec in REGISTRY.values():
            sys.stdout.write(f"{spec.name:<18}{spec.head:<17}{spec.description}\n")
        return 0
    if args.bf16 and args.fp16:
        raise AlignError("--bf16 and --fp16 exclude each other")
    task_dirs = {}
    for item in args.task_dir:
        task, sep, folder = item.partition("=")
        if not sep or not task or not folder:
            raise AlignError(f"--task-dir {item!r}: expected TASK=DIR")
        task_dirs[task] = Path(folder)
    cfg = TrainConfig(
        tasks=args.task,
        data_dir=args.data_dir,
        task_dirs=task_dirs,
        model=args.model,
        out=args.out,
        max_steps=args.max_steps,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        max_length=args.max_length,
        seed=args.seed,
        warmup_ratio=args.warmup_ratio,
        sampling=args.sampling,
        sampling_cap=args.sampling_cap,
        temperature=args.temperature,
        freeze_embeddings=args.freeze_embeddings,
        mlm_data=args.mlm_data,
        mlm_weight=args.mlm_weight,
        precision="bf16" if args.bf16 else "fp16" if args.fp16 else "fp32",
        device=args.device,
        save_steps=args.save_steps,
        resume=args.resume,
        group_by_length=not args.no_group_by_length,
        max_train_examples=args.max_train_examples,
        max_eval_examples=args.max_eval_examples,
        progress=sys.stderr.isatty(),
    )
    from align.train.trainer import train

    run = train(cfg)
    for task, metrics in run.dev_metrics.items():
        sys.stdout.write(
            f"dev {task}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) + "\n"
        )
    sys.stdout.write(f"checkpoint: {run.out}\n")
    return 0
