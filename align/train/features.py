"""Examples -> model features for each head type, and per-batch collation with dynamic padding."""

from __future__ import annotations

import logging
from typing import Any

import torch

from align.train.tasks.base import Example, TaskSpec

log = logging.getLogger(__name__)
Feature = dict[str, Any]
IGNORE = -100


def featurize(
    spec: TaskSpec,
    examples: list[Example],
    tokenizer: Any,
    max_length: int,
    tag_vocab: list[str] | None = None,
) -> list[Feature]:
    if spec.head == "classification":
        return _classification(examples, tokenizer, max_length)
    if spec.head == "multiple_choice":
        return _multiple_choice(examples, tokenizer, max_length)
    if spec.head == "extractive_qa":
        return _extractive_qa(examples, tokenizer, max_length)
    assert tag_vocab is not None
    return _tagging(examples, tokenizer, max_length, tag_vocab)


def _classification(examples: list[Example], tok: Any, max_length: int) -> list[Feature]:
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


def _multiple_choice(examples: list[Example], tok: Any, max_length: int) -> list[Feature]:
    out = []
    for e in examples:
        enc = tok(
            [e["context"]] * len(e["choices"]),
            e["choices"],
            truncation="longest_first",
            max_length=max_length,
        )
        ids = enc["input_ids"]
        out.append({"input_ids": ids, "label": e["label"], "length": max(map(len, ids)) * len(ids)})
    return out


def _extractive_qa(
    examples: list[Example], tok: Any, max_length: int, stride: int = 64
) -> list[Feature]:
    """Sliding windows over long contexts; an answer outside a window (or none) targets <s>."""
    enc = tok(
        [e["question"] for e in examples],
        [e["context"] for e in examples],
        truncation="only_second",
        max_length=max_length,
        stride=min(stride, max_length // 4),
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    out = []
    for i, ids in enumerate(enc["input_ids"]):
        example_index = enc["overflow_to_sample_mapping"][i]
        example = examples[example_index]
        sequence_ids = enc.sequence_ids(i)
        offsets = [
            o if s == 1 else None
            for o, s in zip(enc["offset_mapping"][i], sequence_ids, strict=True)
        ]
        start = end = 0
        if example["answers"]:
            answer = example["answers"][0]
            char_start, char_end = answer["start"], answer["start"] + len(answer["text"])
            tokens = [
                t
                for t, o in enumerate(offsets)
                if o is not None and o[0] < char_end and o[1] > char_start
            ]
            inside = [o for o in offsets if o is not None]
            if tokens and inside[0][0] <= char_start and inside[-1][1] >= char_end:
                start, end = tokens[0], tokens[-1]
        out.append(
            {
                "input_ids": ids,
                "start": start,
                "end": end,
                "length": len(ids),
                "example_index": example_index,
                "offsets": offsets,
            }
        )
    return out


def _tagging(examples: list[Example], tok: Any, max_length: int, vocab: list[str]) -> list[Feature]:
    index = {tag: i for i, tag in enumerate(vocab)}
    enc = tok(
        [e["tokens"] for e in examples],
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
    )
    out, unknown = [], 0
    for i, e in enumerate(examples):
        labels, previous = [], None
        for word in enc.word_ids(i):
            if word is None or word == previous:
                labels.append(IGNORE)  # specials and non-first subwords carry no label
            else:
                tag = e["tags"][word]
                unknown += tag not in index
                labels.append(index.get(tag, IGNORE))
            previous = word
        out.append({"input_ids": enc["input_ids"][i], "labels": labels, "length": len(labels)})
    if unknown:
        log.warning("%d tags not seen in training are ignored in evaluation", unknown)
    return out


def collate(spec: TaskSpec, features: list[Feature], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad one batch to its own longest sequence (dynamic padding)."""
    if spec.head == "multiple_choice":
        width = max(len(ids) for f in features for ids in f["input_ids"])
        ids = [[row + [pad_id] * (width - len(row)) for row in f["input_ids"]] for f in features]
        input_ids = torch.tensor(ids)
        return {
            "input_ids": input_ids,
            "attention_mask": (input_ids != pad_id).long(),
            "labels": torch.tensor([f["label"] for f in features]),
        }
    width = max(len(f["input_ids"]) for f in features)
    input_ids = torch.full((len(features), width), pad_id)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    for row, f in enumerate(features):
        input_ids[row, : len(f["input_ids"])] = torch.tensor(f["input_ids"])
        mask[row, : len(f["input_ids"])] = 1
    batch = {"input_ids": input_ids, "attention_mask": mask}
    if spec.head == "classification":
        batch["labels"] = torch.tensor([f["label"] for f in features])
    elif spec.head == "extractive_qa":
        batch["start_positions"] = torch.tensor([f["start"] for f in features])
        batch["end_positions"] = torch.tensor([f["end"] for f in features])
    else:
        labels = torch.full((len(features), width), IGNORE)
        for row, f in enumerate(features):
            labels[row, : len(f["labels"])] = torch.tensor(f["labels"])
        batch["labels"] = labels
    return batch
