"""Sentence(-pair) classification: <s> -> dense/tanh -> labels, as RoBERTa; accuracy (+ F1)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from align.train.heads.base import Encode, Feature, Head, accuracy, pad_batch


class ClassifierModule(nn.Module):
    def __init__(self, hidden: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_labels)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        x = self.dropout(states[:, 0])
        return self.out(self.dropout(torch.tanh(self.dense(x))))


class ClassificationHead(Head):
    name = "classification"

    def featurize(self, examples, tok: Any, max_length: int, labels) -> list[Feature]:
        firsts = [e["text"] for e in examples]
        seconds = [e["text_b"] for e in examples]
        if all(s is None for s in seconds):
            enc = tok(firsts, truncation=True, max_length=max_length)
        else:
            enc = tok(firsts, seconds, truncation="longest_first", max_length=max_length)
        return [
            {"input_ids": ids, "label": e["label"], "length": len(ids)}
            for ids, e in zip(enc["input_ids"], examples, strict=True)
        ]

    def collate(self, features: list[Feature], pad_id: int) -> dict[str, torch.Tensor]:
        return pad_batch(features, pad_id) | {
            "labels": torch.tensor([f["label"] for f in features])
        }

    def module(self, hidden: int, num_labels: int, dropout: float) -> nn.Module:
        return ClassifierModule(hidden, num_labels, dropout)

    def forward(self, module, encode: Encode, batch) -> dict[str, torch.Tensor]:
        logits = module(encode(batch["input_ids"], batch["attention_mask"]))
        return {"logits": logits, "loss": F.cross_entropy(logits.float(), batch["labels"])}

    def metrics(self, options, examples, features, outputs) -> dict[str, float]:
        pred, gold = accuracy(outputs, features)
        metrics = {"accuracy": float((pred == gold).mean())}
        if options.metric == "f1":  # binary F1 of the positive class (QQP)
            tp = int(((pred == 1) & (gold == 1)).sum())
            precision = tp / max(int((pred == 1).sum()), 1)
            recall = tp / max(int((gold == 1).sum()), 1)
            total = precision + recall
            metrics["f1"] = 2 * precision * recall / total if total else 0.0
        return metrics


CLASSIFICATION = ClassificationHead()
