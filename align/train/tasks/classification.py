"""Sentence(-pair) classification: MNLI, ANLI, QQP (GLUE TSV / ANLI JSONL) and SST-2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from align.train.heads import CLASSIFICATION
from align.train.tasks.base import Example, TaskSpec, field_of, label_index, read_jsonl, read_tsv


def read_glue(path: Path, split: str, spec: TaskSpec) -> list[Example]:
    first, second, label = spec.options["columns"]
    required = tuple(c for c in (first, second, label) if c)
    out = []
    for number, row in read_tsv(path, required):
        out.append(
            {
                "text": field_of(row, first, path, number),
                "text_b": field_of(row, second, path, number) if second else None,
                "label": label_index(field_of(row, label, path, number), spec, path, number),
            }
        )
    return out


def read_anli(path: Path, split: str, spec: TaskSpec) -> list[Example]:
    return [
        {
            "text": field_of(row, "context", path, number),
            "text_b": field_of(row, "hypothesis", path, number),
            "label": label_index(field_of(row, "label", path, number), spec, path, number),
        }
        for number, row in read_jsonl(path)
    ]


def from_hub_pairs(rows: Any, spec: TaskSpec) -> list[Example]:
    """Hub rows -> examples; the hub names its columns ``hub_columns`` (first, second)."""
    first, second = spec.options["hub_columns"]
    return [
        {"text": r[first], "text_b": r[second] if second else None, "label": int(r["label"])}
        for r in rows
        if int(r["label"]) >= 0  # the hub marks unlabelled test rows -1
    ]


NLI_LABELS = ("entailment", "neutral", "contradiction")

TASKS = [
    TaskSpec(
        name="mnli",
        head=CLASSIFICATION,
        description="MultiNLI entailment (GLUE TSV: sentence1, sentence2, gold_label)",
        files={"train": ("train.tsv",), "dev": ("dev_matched.tsv", "dev.tsv")},
        read=read_glue,
        metric="accuracy",
        labels=NLI_LABELS,
        hub=("nyu-mll/glue", "mnli"),
        from_hub=from_hub_pairs,
        options={
            "columns": ("sentence1", "sentence2", "gold_label"),
            "hub_columns": ("premise", "hypothesis"),
            "hub_dev": "validation_matched",
        },
    ),
    TaskSpec(
        name="anli",
        head=CLASSIFICATION,
        description="Adversarial NLI (JSONL: context, hypothesis, label e/n/c)",
        files={"train": ("train.jsonl",), "dev": ("dev.jsonl",)},
        read=read_anli,
        metric="accuracy",
        labels=("e", "n", "c"),
        hub=("facebook/anli", None),
        from_hub=from_hub_pairs,
        options={
            "hub_columns": ("premise", "hypothesis"),
            "hub_train": "train_r1",
            "hub_dev": "dev_r1",
        },
    ),
    TaskSpec(
        name="qqp",
        head=CLASSIFICATION,
        description="Quora Question Pairs (GLUE TSV: question1, question2, is_duplicate)",
        files={"train": ("train.tsv",), "dev": ("dev.tsv",)},
        read=read_glue,
        metric="f1",
        labels=("0", "1"),
        hub=("nyu-mll/glue", "qqp"),
        from_hub=from_hub_pairs,
        options={
            "columns": ("question1", "question2", "is_duplicate"),
            "hub_columns": ("question1", "question2"),
        },
    ),
    TaskSpec(
        name="sst2",
        head=CLASSIFICATION,
        description="SST-2 single-sentence sentiment (GLUE TSV: sentence, label)",
        files={"train": ("train.tsv",), "dev": ("dev.tsv",)},
        read=read_glue,
        metric="accuracy",
        labels=("0", "1"),
        hub=("nyu-mll/glue", "sst2"),
        from_hub=from_hub_pairs,
        options={"columns": ("sentence", None, "label"), "hub_columns": ("sentence", None)},
    ),
]
