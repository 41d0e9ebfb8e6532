"""Deterministic batch schedules: length-grouped batches per task, and multi-task sampling.

Every micro-batch is a pure function of (seed, micro-step index), so a resumed run sees exactly
the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import zlib
from typing import Literal

import numpy as np

from align.errors import AlignError

Sampling = Literal["proportional", "temperature"]


def task_probabilities(
    sizes: dict[str, int],
    sampling: Sampling = "proportional",
    cap: int = 2**17,
    temperature: float = 2.0,
) -> dict[str, float]:
    """Examples-proportional with a cap (Raffel et al. 2020) or temperature-scaled sampling."""
    if not sizes or any(n <= 0 for n in sizes.values()):
        raise AlignError(f"every task needs training examples, got {sizes}")
    if sampling == "proportional":
        weights = {t: float(min(n, cap)) for t, n in sizes.items()}
    elif sampling == "temperature":
        if temperature <= 0:
            raise AlignError(f"--temperature must be > 0, got {temperature}")
        weights = {t: n ** (1.0 / temperature) for t, n in sizes.items()}
    else:
        raise AlignError(f"--sampling {sampling!r}: expected proportional or temperature")
    total = sum(weights.values())
    return {t: w / total for t, w in weights.items()}


def _rng(seed: int, *parts: object) -> np.random.Generator:
    key = zlib.crc32(repr(parts).encode())
    return np.random.default_rng([seed, key])


def epoch_batches(
    lengths: list[int],
    batch_size: int,
    rng: np.random.Generator,
    group_by_length: bool = True,
    mega: int = 50,
) -> list[np.ndarray]:
    """One epoch of batches. Grouped: shuffle, sort each mega-batch by length, shuffle batches."""
    order = rng.permutation(len(lengths))
    if group_by_length:
        lengths_arr = np.asarray(lengths)
        size = batch_size * mega
        chunks = [order[i : i + size] for i in range(0, len(order), size)]
        order = np.concatenate([c[np.argsort(-lengths_arr[c], kind="stable")] for c in chunks])
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if group_by_length:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


class Schedule:
    """Micro-batch m -> (task, example indices), for any m, from the seed alone."""

    def __init__(
        self,
        lengths: dict[str, list[int]],
        batch_size: int,
        total_micro: int,
        seed: int,
        probabilities: dict[str, float],
        group_by_length: bool = True,
    ) -> None:
        self.lengths, self.batch_size, self.seed = lengths, batch_size, seed
        self.group_by_length = group_by_length
        self.tasks = sorted(lengths)
        p = np.array([probabilities[t] for t in self.tasks])
        choice = _rng(seed, "tasks").choice(len(self.tasks), size=total_micro, p=p / p.sum())
        self.task_of = [self.tasks[i] for i in choice]
        self.position: list[int] = []
        seen = dict.fromkeys(self.tasks, 0)
        for task in self.task_of:
            self.position.append(seen[task])
            seen[task] += 1
        self._epochs: dict[tuple[str, int], list[np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.task_of)

    def _batches(self, task: str, epoch: int) -> list[np.ndarray]:
        key = (task, epoch)
        if key not in self._epochs:
            rng = _rng(self.seed, "batches", task, epoch)
            self._epochs[key] = epoch_batches(
                self.lengths[task], self.batch_size, rng, self.group_by_length
            )
        return self._epochs[key]

    def __getitem__(self, micro: int) -> tuple[str, np.ndarray]:
        task, k = self.task_of[micro], self.position[micro]
        per_epoch = len(self._batches(task, 0))
        return task, self._batches(task, k // per_epoch)[k % per_epoch]

    def counts(self) -> dict[str, int]:
        return {t: self.task_of.count(t) for t in self.tasks}
