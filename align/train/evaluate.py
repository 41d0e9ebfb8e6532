"""Dev-set evaluation with each task's standard metric."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from align.train.features import IGNORE, Feature, collate
from align.train.tasks.base import Example, TaskSpec
from align.train.tasks.squad import squad_scores

MAX_ANSWER_TOKENS = 30


@torch.no_grad()
def predict(
    model: Any,
    spec: TaskSpec,
    features: list[Feature],
    pad_id: int,
    batch_size: int,
    device: str,
    autocast: Any,
) -> list[dict[str, np.ndarray]]:
    model.eval()
    order = np.argsort([-f["length"] for f in features], kind="stable")
    outputs: list[dict[str, np.ndarray]] = [{} for _ in features]
    for start in range(0, len(features), batch_size):
        idx = order[start : start + batch_size]
        batch = {
            k: v.to(device) for k, v in collate(spec, [features[i] for i in idx], pad_id).items()
        }
        with autocast():
            out = model(spec.name, batch)
        keys = ("start_logits", "end_logits") if spec.head == "extractive_qa" else ("logits",)
        for key in keys:
            values = out[key].float().cpu().numpy()
            for row, i in enumerate(idx):
                outputs[i][key] = values[row]
    model.train()
    return outputs


def _best_span(feature: Feature, start: np.ndarray, end: np.ndarray) -> tuple[float, int, int]:
    valid = [i for i, o in enumerate(feature["offsets"]) if o is not None]
    best = (-np.inf, 0, 0)
    top_starts = sorted(valid, key=lambda i: -start[i])[:20]
    top_ends = sorted(valid, key=lambda i: -end[i])[:20]
    for s in top_starts:
        for e in top_ends:
            if s <= e < s + MAX_ANSWER_TOKENS and start[s] + end[e] > best[0]:
                best = (float(start[s] + end[e]), s, e)
    return best


def qa_predictions(
    examples: list[Example], features: list[Feature], outputs: list[dict], v2: bool
) -> dict[str, str]:
    best: dict[int, tuple[float, str]] = {}
    null: dict[int, float] = {}
    for feature, out in zip(features, outputs, strict=True):
        ex_index = feature["example_index"]
        score, s, e = _best_span(feature, out["start_logits"], out["end_logits"])
        null[ex_index] = min(
            null.get(ex_index, np.inf), float(out["start_logits"][0] + out["end_logits"][0])
        )
        if score > best.get(ex_index, (-np.inf, ""))[0]:
            context = examples[ex_index]["context"]
            best[ex_index] = (score, context[feature["offsets"][s][0] : feature["offsets"][e][1]])
    preds = {}
    for i, ex in enumerate(examples):
        score, text = best.get(i, (-np.inf, ""))
        preds[ex["id"]] = "" if v2 and null.get(i, -np.inf) > score else text
    return preds


def dev_metrics(
    spec: TaskSpec, examples: list[Example], features: list[Feature], outputs: list[dict]
) -> dict[str, float]:
    if spec.head == "extractive_qa":
        preds = qa_predictions(examples, features, outputs, spec.options.get("v2", False))
        return squad_scores(preds, examples)
    if spec.head == "tagging":
        correct = total = 0
        for f, out in zip(features, outputs, strict=True):
            labels = np.array(f["labels"])
            keep = labels != IGNORE
            correct += int((out["logits"][: len(labels)].argmax(-1)[keep] == labels[keep]).sum())
            total += int(keep.sum())
        return {"token_accuracy": correct / max(total, 1)}
    pred = np.array([out["logits"].argmax() for out in outputs])
    gold = np.array([f["label"] for f in features])
    metrics = {"accuracy": float((pred == gold).mean())}
    if spec.metric == "f1":
        tp = int(((pred == 1) & (gold == 1)).sum())
        precision, recall = tp / max(int((pred == 1).sum()), 1), tp / max(int((gold == 1).sum()), 1)
        metrics["f1"] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return metrics
