"""Dev-set evaluation: batched predictions, then each head type's standard metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from align.train.heads import Feature
from align.train.tasks.base import Example, TaskSpec


@torch.no_grad()
def predict(
    model: Any,
    spec: TaskSpec,
    features: list[Feature],
    pad_id: int,
    batch_size: int,
    device: str,
    autocast: Any,
    update: Callable[[int], object] | None = None,
) -> list[dict[str, np.ndarray]]:
    """Per-feature head outputs (numpy), in feature order; batches sorted by length;
    ``update(n)`` after each batch (a progress bar)."""
    model.eval()
    order = np.argsort([-f["length"] for f in features], kind="stable")
    outputs: list[dict[str, np.ndarray]] = [{} for _ in features]
    for start in range(0, len(features), batch_size):
        idx = order[start : start + batch_size]
        batch = spec.head.collate([features[i] for i in idx], pad_id)
        with autocast():
            out = model(spec.name, {k: v.to(device) for k, v in batch.items()})
        for key in spec.head.output_keys:
            values = out[key].float().cpu().numpy()
            for row, i in enumerate(idx):
                outputs[i][key] = values[row]
        if update is not None:
            update(len(idx))
    model.train()
    return outputs


def dev_metrics(
    spec: TaskSpec, examples: list[Example], features: list[Feature], outputs: list[dict]
) -> dict[str, float]:
    return spec.head.metrics(spec.head_options, examples, features, outputs)
