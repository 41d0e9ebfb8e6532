"""``align train``: intermediate-task fine-tuning -> a checkpoint the other commands analyse."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from align.commands.base import RunResult, option
from align.train.config import TrainConfig

HELP = "intermediate-task fine-tuning -> a checkpoint align can analyse"


@dataclass
class TrainCommandConfig(TrainConfig):
    list_tasks: bool = option(False, "list the registered tasks and exit")


Config = TrainCommandConfig


def task_listing() -> str:
    from align.train.tasks import REGISTRY

    return "\n".join(
        f"{spec.name:<18}{spec.head.name:<17}{spec.description}" for spec in REGISTRY.values()
    )


def run(cfg: TrainCommandConfig) -> RunResult:
    if cfg.list_tasks:
        return RunResult({"tasks": task_listing().splitlines()}, None, text=task_listing())
    from align.train.trainer import train

    settings = TrainConfig(**{k: v for k, v in asdict(cfg).items() if k != "list_tasks"})
    run_ = train(settings)
    lines = [
        f"dev {task}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        for task, metrics in run_.dev_metrics.items()
    ]
    lines.append(f"encoding defaults recorded: {run_.meta['encoding']}")
    return RunResult(run_.meta, run_.out, text="\n".join(lines))
