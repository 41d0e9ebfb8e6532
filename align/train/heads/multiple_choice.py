"""Multiple choice: <s> of each (context, choice) pair -> one score; accuracy."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from align.train.heads.base import Encode, Feature, Head, accuracy


class MultipleChoiceHead(Head):
    name = "multiple_choice"

    def featurize(self, examples, tok: Any, max_length: int, labels) -> list[Feature]:
        out = []
        for e in examples:
            enc = tok(
                [e["context"]] * len(e["choices"]),
                e["choices"],
                truncation="longest_first",
                max_length=max_length,
            )
            ids = enc["input_ids"]
            length = max(map(len, ids)) * len(ids)
            out.append({"input_ids": ids, "label": e["label"], "length": length})
        return out

    def collate(self, features: list[Feature], pad_id: int) -> dict[str, torch.Tensor]:
        width = max(len(ids) for f in features for ids in f["input_ids"])
        ids = [[row + [pad_id] * (width - len(row)) for row in f["input_ids"]] for f in features]
        input_ids = torch.tensor(ids)
        return {
            "input_ids": input_ids,
            "attention_mask": (input_ids != pad_id).long(),
            "labels": torch.tensor([f["label"] for f in features]),
        }

    def module(self, hidden: int, num_labels: int, dropout: float) -> nn.Module:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward(self, module, encode: Encode, batch) -> dict[str, torch.Tensor]:
        n, choices, width = batch["input_ids"].shape
        states = encode(batch["input_ids"].view(-1, width), batch["attention_mask"].view(-1, width))
        logits = module(states[:, 0]).view(n, choices)
        return {"logits": logits, "loss": F.cross_entropy(logits.float(), batch["labels"])}

    def metrics(self, options, examples, features, outputs) -> dict[str, float]:
        pred, gold = accuracy(outputs, features)
        return {"accuracy": float((pred == gold).mean())}


MULTIPLE_CHOICE = MultipleChoiceHead()
