"""Training state (resume) and the final checkpoint (HF format + heads + align_meta.json).

Training state lives in ``{out}/checkpoints/step-NNNNNNN/``, written to a temporary folder and
renamed, then named in ``checkpoints/latest``: a run killed at any moment (kill -9) resumes from
the last complete state. Nothing is unpickled: tensors load with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from align._io import (
    atomic_dir,
    atomic_path,
    check_output_dir,
    follow_umask,
    write_json_atomic,
    write_text_atomic,
)
from align.errors import AlignError
from align.models.loading import quiet_transformers

log = logging.getLogger(__name__)
RUN_FILE = "train_run.json"  # what a --resume must match


def checkpoints_dir(out: Path) -> Path:
    return Path(out) / "checkpoints"


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states as tensors and plain values (loads weights_only)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, torch.tensor(internal, dtype=torch.int64), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal.tolist()), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def check_finite(model: torch.nn.Module, when: str) -> None:
    """Refuse to write weights that are NaN or infinite (``when``: which write, for the error)."""
    params = list(model.named_parameters())
    if not params or bool(torch.stack([torch.isfinite(p).all() for _, p in params]).all()):
        return
    bad = [name for name, p in params if not bool(torch.isfinite(p).all())]
    raise AlignError(
        f"training diverged: {len(bad)} weight tensor(s) hold NaN or inf ({bad[0]}, ...) "
        f"{when}; nothing was written (lower --lr?)"
    )


def save_state(
    out: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: Any,
    scheduler: Any,
    scaler: Any,
    rank: int,
    world: int,
    keep: int,
) -> None:
    """Rank 0 writes weights and optimizer; every rank its RNG state (after a barrier)."""
    from safetensors.torch import save_file

    root = checkpoints_dir(out)
    target = root / f"step-{step:07d}"
    check_finite(model, f"at step {step}")
    if rank == 0:
        with _writing(target, "nothing was left behind"), atomic_dir(target) as tmp:
            save_file(
                {k: v.contiguous() for k, v in model.state_dict().items()},
                str(tmp / "model.safetensors"),
            )
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
            torch.save(
                {
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict() if scaler else None,
                    "step": step,
                    "world": world,
                },
                tmp / "trainer.pt",
            )
    _barrier(world)
    with atomic_path(target / f"rng-{rank}.pt") as tmp:
        torch.save(rng_state(), tmp)
    _barrier(world)
    if rank == 0:
        write_text_atomic(root / "latest", target.name + "\n")
        for old in sorted(root.glob("step-*"))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)


def _barrier(world: int) -> None:
    if world > 1:
        torch.distributed.barrier()


def latest_state(out: Path) -> Path | None:
    pointer = checkpoints_dir(out) / "latest"
    if not pointer.is_file():
        return None
    path = checkpoints_dir(out) / pointer.read_text().strip()
    return path if (path / "trainer.pt").is_file() else None


def load_state(
    path: Path,
    model: torch.nn.Module,
    optimizer: Any,
    scheduler: Any,
    scaler: Any,
    rank: int,
    world: int,
) -> int:
    from safetensors.torch import load_file

    trainer = torch.load(path / "trainer.pt", weights_only=True)
    if trainer["world"] != world:
        raise AlignError(
            f"--resume: {path} was written by {trainer['world']} processes, this run has {world}"
        )
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(trainer["scheduler"])
    if scaler and trainer["scaler"]:
        scaler.load_state_dict(trainer["scaler"])
    set_rng_state(torch.load(path / f"rng-{rank}.pt", weights_only=True))
    return int(trainer["step"])


def check_run(out: Path, run: dict[str, Any], resume: bool) -> None:
    """A new run never overwrites another; a resumed one must exist and match its settings.

    ``--out`` must be new, empty, or a run of ours: a run that stopped before saving any
    state (a crashed start) is started again; one with saved state needs ``--resume``.
    """
    out = Path(out)
    record = out / RUN_FILE
    if out.exists() and not out.is_dir():
        raise AlignError(f"--out {out}: exists and is not a directory")
    if resume:
        if not out.is_dir():
            raise AlignError(f"--resume: {out} does not exist; drop --resume to start a new run")
        if not record.is_file():
            raise AlignError(f"--resume: {out} holds no align training run ({RUN_FILE} missing)")
        saved = json.loads(record.read_text(encoding="utf-8"))
        for key in run:
            if saved.get(key) != run[key]:
                raise AlignError(
                    f"--resume {out}: that run has {key} = {saved.get(key)!r}, this one "
                    f"{run[key]!r}; resume with the same tasks, model and settings, or choose "
                    "another --out"
                )
        return
    check_output_dir(out)
    if not out.exists():
        return
    if record.is_file():
        if latest_state(out) is None and not (out / "model.safetensors").is_file():
            log.warning("%s: the run there stopped before saving any state; starting again", out)
            shutil.rmtree(checkpoints_dir(out), ignore_errors=True)
            record.unlink()
            return
        raise AlignError(
            f"--out {out} already holds a training run: pass --resume, or choose another --out"
        )
    if any(out.iterdir()):
        raise AlignError(
            f"--out {out}: not empty and not an align training run; choose a new or empty directory"
        )


def write_run(out: Path, run: dict[str, Any]) -> None:
    write_json_atomic(Path(out) / RUN_FILE, run)


TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "sentencepiece.bpe.model",
    "spiece.model",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
)


def export(
    out: Path,
    model: torch.nn.Module,
    tokenizer: Any,
    heads: dict[str, Any],
    meta: dict[str, Any],
    base_dir: Path | None = None,
) -> None:
    """The encoder as an HF model (AutoModel, safetensors), heads beside it, align_meta.json.

    The tokenizer files are the base model's, copied byte for byte: a load/save round trip
    through a tokenizer class can rebuild the pipeline (transformers 5 does for XLM-R), and the
    checkpoint must split text exactly as its base did.
    """

    out = Path(out)
    quiet_transformers()
    check_finite(model, "at the end of training")
    with _writing(out, "the last saved training state is intact: --resume writes it again"):
        _export(out, model, tokenizer, heads, meta, base_dir)


def _writing(path: Path, after: str):
    """A failed write (a full disk, a file size limit) of torch or safetensors as one line
    naming ``path`` and what is left (``after``), not a library's traceback."""
    from safetensors import SafetensorError

    @contextlib.contextmanager
    def block():
        try:
            yield
        except AlignError:
            raise
        except (OSError, SafetensorError, RuntimeError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            raise AlignError(f"{path}: cannot be written ({reason}); {after}") from exc

    return block()


def _export(out, model, tokenizer, heads, meta, base_dir) -> None:
    from safetensors.torch import save_file

    model.encoder.save_pretrained(out, safe_serialization=True)
    copied = [name for name in TOKENIZER_FILES if base_dir and (Path(base_dir) / name).is_file()]
    for name in copied:
        with atomic_path(out / name) as tmp:
            shutil.copyfile(Path(base_dir) / name, tmp)  # type: ignore[arg-type]
    if not copied:
        tokenizer.save_pretrained(out)
    head_state = {
        k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith("encoder.")
    }
    if head_state:
        save_file(head_state, str(out / "heads.safetensors"))
    for weights in out.glob("*.safetensors"):
        follow_umask(weights)  # safetensors writes 0600: the checkpoint is for others too
    write_json_atomic(out / "heads.json", heads)
    write_json_atomic(out / "align_meta.json", meta)
