"""``align models``: the models available offline, and where they are built."""

from __future__ import annotations

from dataclasses import dataclass

from align.commands.base import RunResult

HELP = "list the models available offline"


@dataclass
class ModelsConfig:
    pass


Config = ModelsConfig


def run(cfg: ModelsConfig) -> RunResult:
    from align._io import check_cache_dir
    from align.models.default_model import default_model_dir
    from align.models.loading import OFFLINE_MODELS

    check_cache_dir()  # the default model is built there: a file in its place is named now
    lines = []
    for info in OFFLINE_MODELS.values():
        built = "built" if (default_model_dir() / "config.json").is_file() else "built on first use"
        lines.append(f"{info.name}\t{info.description}")
        lines.append(f"\tprefix {info.default_prefix!r}; {built}: {default_model_dir()}")
    lines.append(
        "Any Hugging Face id or local HF-format directory also works with --ckpt (hub ids need "
        "network); a checkpoint from align train is encoded as its base model was."
    )
    names = {"models": list(OFFLINE_MODELS)}
    return RunResult(names, None, text="\n".join(lines))
