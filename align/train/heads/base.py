"""The head-type interface: features, batches, the module, its loss and outputs, dev metrics.

A head type (classification, multiple choice, extractive QA, tagging) is one class holding all
it needs; a task names its head type, and nothing else in the trainer dispatches on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

Example = dict[str, Any]
Feature = dict[str, Any]
Encode = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (ids, mask) -> token states
IGNORE = -100


def pad_batch(features: list[Feature], pad_id: int) -> dict[str, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` padded to the batch's own longest sequence."""
    width = max(len(f["input_ids"]) for f in features)
    input_ids = torch.full((len(features), width), pad_id)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    for row, f in enumerate(features):
        input_ids[row, : len(f["input_ids"])] = torch.tensor(f["input_ids"])
        mask[row, : len(f["input_ids"])] = 1
    return {"input_ids": input_ids, "attention_mask": mask}


def accuracy(outputs: list[dict[str, np.ndarray]], features: list[Feature]) -> np.ndarray:
    """Predicted class per example (argmax of its logits) next to the gold label."""
    pred = np.array([out["logits"].argmax() for out in outputs])
    gold = np.array([f["label"] for f in features])
    return pred, gold


@dataclass(frozen=True)
class HeadOptions:
    """What a head needs to know of its task: the label set, the dev metric, QA's variant."""

    labels: tuple[str, ...] = ()
    metric: str = "accuracy"  # "accuracy", "f1" (binary), "squad" (EM/F1), "token_accuracy"
    v2: bool = False  # extractive QA with unanswerable questions (SQuAD 2.0)


class Head:
    """One head type. Subclasses fill in every method; instances are stateless singletons."""

    name: ClassVar[str]
    output_keys: ClassVar[tuple[str, ...]] = ("logits",)

    def labels(self, options: HeadOptions, train: list[Example]) -> list[str]:
        """The label vocabulary (fixed by the task, or read off the training data)."""
        return list(options.labels)

    def featurize(
        self, examples: list[Example], tok: Any, max_length: int, labels: list[str]
    ) -> list[Feature]:
        raise NotImplementedError

    def collate(self, features: list[Feature], pad_id: int) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def module(self, hidden: int, num_labels: int, dropout: float) -> nn.Module:
        raise NotImplementedError

    def forward(
        self, module: nn.Module, encode: Encode, batch: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """The head's outputs (``output_keys``) and ``loss`` for one batch."""
        raise NotImplementedError

    def metrics(
        self,
        options: HeadOptions,
        examples: list[Example],
        features: list[Feature],
        outputs: list[dict[str, np.ndarray]],
    ) -> dict[str, float]:
        """Dev metrics from per-feature outputs (numpy, in feature order)."""
        raise NotImplementedError
