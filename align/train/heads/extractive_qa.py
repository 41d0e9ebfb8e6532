"""Extractive QA: token -> start/end logits, <s> = "no answer"; SQuAD exact match and F1.

Long contexts are split into overlapping windows; an answer outside a window (or none, in
SQuAD v2) targets <s>. The evaluation is the official SQuAD one (answers normalised: lower case,
no punctuation or articles), re-implemented.
"""

from __future__ import annotations

import collections
import re
import string
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from align.train.heads.base import Encode, Feature, Head, pad_batch

MAX_ANSWER_TOKENS = 30


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _f1(prediction: str, truth: str) -> float:
    pred, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
    if not pred or not gold:
        return float(pred == gold)
    common = collections.Counter(pred) & collections.Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    p, r = same / len(pred), same / len(gold)
    return 2 * p * r / (p + r)


def squad_scores(predictions: dict[str, str], examples: list[dict]) -> dict[str, float]:
    """Exact match and F1 (max over gold answers; a no-answer question's gold is '')."""
    em = f1 = 0.0
    for ex in examples:
        golds = [a["text"] for a in ex["answers"]] or [""]
        pred = predictions.get(ex["id"], "")
        em += max(float(normalize_answer(pred) == normalize_answer(g)) for g in golds)
        f1 += max(_f1(pred, g) for g in golds)
    n = max(len(examples), 1)
    return {"exact_match": em / n, "f1": f1 / n}


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
    examples: list[dict], features: list[Feature], outputs: list[dict], v2: bool
) -> dict[str, str]:
    """Best span per question over its windows; v2: '' where <s> outscores every span."""
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


class ExtractiveQAHead(Head):
    name = "extractive_qa"
    output_keys = ("start_logits", "end_logits")
    stride = 64

    def featurize(self, examples, tok: Any, max_length: int, labels) -> list[Feature]:
        enc = tok(
            [e["question"] for e in examples],
            [e["context"] for e in examples],
            truncation="only_second",
            max_length=max_length,
            stride=min(self.stride, max_length // 4),
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        return [self._window(enc, i, examples) for i in range(len(enc["input_ids"]))]

    @staticmethod
    def _window(enc: Any, i: int, examples: list[dict]) -> Feature:
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
        ids = enc["input_ids"][i]
        return {
            "input_ids": ids,
            "start": start,
            "end": end,
            "length": len(ids),
            "example_index": example_index,
            "offsets": offsets,
        }

    def collate(self, features: list[Feature], pad_id: int) -> dict[str, torch.Tensor]:
        return pad_batch(features, pad_id) | {
            "start_positions": torch.tensor([f["start"] for f in features]),
            "end_positions": torch.tensor([f["end"] for f in features]),
        }

    def module(self, hidden: int, num_labels: int, dropout: float) -> nn.Module:
        return nn.Linear(hidden, 2)

    def forward(self, module, encode: Encode, batch) -> dict[str, torch.Tensor]:
        states = encode(batch["input_ids"], batch["attention_mask"])
        start, end = module(states).float().unbind(-1)
        pad = batch["attention_mask"] == 0
        start, end = start.masked_fill(pad, -1e4), end.masked_fill(pad, -1e4)
        loss = (
            F.cross_entropy(start, batch["start_positions"])
            + F.cross_entropy(end, batch["end_positions"])
        ) / 2
        return {"start_logits": start, "end_logits": end, "loss": loss}

    def metrics(self, options, examples, features, outputs) -> dict[str, float]:
        preds = qa_predictions(examples, features, outputs, options.v2)
        return squad_scores(preds, examples)


EXTRACTIVE_QA = ExtractiveQAHead()
