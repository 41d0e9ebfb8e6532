"""Sentence(-pair) classification: MNLI, ANLI, QQP (GLUE TSV / ANLI JSONL) and SST-2."""

from __future__ import annotations

from pathlib import Path

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


NLI_LABELS = ("entailment", "neutral", "contradiction")

TASKS = [
    TaskSpec(
        name="mnli",
        head="classification",
        description="MultiNLI entailment (GLUE TSV: sentence1, sentence2, gold_label)",
        files={"train": ("train.tsv",), "dev": ("dev_matched.tsv", "dev.tsv")},
        read=read_glue,
        metric="accuracy",
        labels=NLI_LABELS,
        hub=("nyu-mll/glue", "mnli"),
        options={
            "columns": ("sentence1", "sentence2", "gold_label"),
            "hub_dev": "validation_matched",
        },
    ),
    TaskSpec(
        name="anli",
        head="classification",
        description="Adversarial NLI (JSONL: context, hypothesis, label e/n/c)",
        files={"train": ("train.jsonl",), "dev": ("dev.jsonl",)},
        read=read_anli,
        metric="accuracy",
        labels=("e", "n", "c"),
        hub=("facebook/anli", None),
        options={"hub_train": "train_r1", "hub_dev": "dev_r1"},
    ),
    TaskSpec(
        name="qqp",
        head="classification",
        description="Quora Question Pairs (GLUE TSV: question1, question2, is_duplicate)",
        files={"train": ("train.tsv",), "dev": ("dev.tsv",)},
        read=read_glue,
        metric="f1",
        labels=("0", "1"),
        hub=("nyu-mll/glue", "qqp"),
        options={"columns": ("question1", "question2", "is_duplicate")},
    ),
    TaskSpec(
        name="sst2",
        head="classification",
        description="SST-2 single-sentence sentiment (GLUE TSV: sentence, label)",
        files={"train": ("train.tsv",), "dev": ("dev.tsv",)},
        read=read_glue,
        metric="accuracy",
        labels=("0", "1"),
        hub=("nyu-mll/glue", "sst2"),
        options={"columns": ("sentence", None, "label")},
    ),
]
