"""Token tagging: each word's first sub-token -> its tag; token accuracy."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from align.train.heads.base import IGNORE, Encode, Feature, Head, pad_batch

log = logging.getLogger(__name__)


class TaggingHead(Head):
    name = "tagging"

    def labels(self, options, train) -> list[str]:
        return sorted({t for e in train for t in e["tags"]})

    def featurize(self, examples, tok: Any, max_length: int, labels) -> list[Feature]:
        index = {tag: i for i, tag in enumerate(labels)}
        enc = tok(
            [e["tokens"] for e in examples],
            is_split_into_words=True,
            truncation=True,
            max_length=max_length,
        )
        out, unknown = [], 0
        for i, e in enumerate(examples):
            tags, previous = [], None
            for word in enc.word_ids(i):
                if word is None or word == previous:
                    tags.append(IGNORE)  # specials and non-first subwords carry no label
                else:
                    tag = e["tags"][word]
                    unknown += tag not in index
                    tags.append(index.get(tag, IGNORE))
                previous = word
            out.append({"input_ids": enc["input_ids"][i], "labels": tags, "length": len(tags)})
        if unknown:
            log.warning("%d tags not seen in training are ignored in evaluation", unknown)
        return out

    def collate(self, features: list[Feature], pad_id: int) -> dict[str, torch.Tensor]:
        batch = pad_batch(features, pad_id)
        labels = torch.full(batch["input_ids"].shape, IGNORE)
        for row, f in enumerate(features):
            labels[row, : len(f["labels"])] = torch.tensor(f["labels"])
        return batch | {"labels": labels}

    def module(self, hidden: int, num_labels: int, dropout: float) -> nn.Module:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, num_labels))

    def forward(self, module, encode: Encode, batch) -> dict[str, torch.Tensor]:
        logits = module(encode(batch["input_ids"], batch["attention_mask"]))
        loss = F.cross_entropy(
            logits.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=IGNORE
        )
        return {"logits": logits, "loss": loss}

    def metrics(self, options, examples, features, outputs) -> dict[str, float]:
        correct = total = 0
        for f, out in zip(features, outputs, strict=True):
            labels = np.array(f["labels"])
            keep = labels != IGNORE
            correct += int((out["logits"][: len(labels)].argmax(-1)[keep] == labels[keep]).sum())
            total += int(keep.sum())
        return {"token_accuracy": correct / max(total, 1)}


TAGGING = TaggingHead()
