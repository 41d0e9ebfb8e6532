"""Several processes sharing one run: ``torchrun`` or ``accelerate launch`` (their environment).

Under a launcher every rank runs the same command. Each encodes its share of every sentence set
(length-sorted batches dealt round-robin, so the shares are balanced by token length) into the
same store a single process would write; rank 0 merges the shares, scores and writes the
results, and the other ranks write nothing else. gloo on the CPU, NCCL on GPUs (a rank's GPU is
``cuda:LOCAL_RANK``). Without a launcher nothing here does anything.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class Distributed:
    """This process's place in the run, and the sentences each rank encoded."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    encoded: int = 0  # sentences this rank encoded (cache hits encode none)
    _per_rank: list[int] = field(default_factory=list, repr=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, device: str) -> Distributed:
        """From the launcher's ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``; joins the process group
        (NCCL when ``device`` is CUDA, gloo otherwise)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        return cls(rank, world, local)

    def device(self, device: str) -> str:
        """A rank's own GPU under a launcher (``cuda`` -> ``cuda:LOCAL_RANK``)."""
        if self.world > 1 and device.startswith("cuda"):
            return f"cuda:{self.local_rank}"
        return device

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""
        if self.world == 1:
            return [value]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def collect(self) -> None:
        """Gather every rank's count of encoded sentences (a collective: every rank calls it)."""
        self._per_rank = self.gather(self.encoded)

    def summary(self) -> dict[str, Any]:
        """What the results record: the world size and the sentences each rank encoded."""
        return {"world_size": self.world, "encoded_per_rank": self._per_rank or [self.encoded]}


SINGLE = Distributed()
