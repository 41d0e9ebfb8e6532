"""Multiple choice: HellaSwag (JSONL), CommonsenseQA (JSONL), Cosmos QA (CSV or JSONL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from align.errors import AlignError
from align.train.heads import MULTIPLE_CHOICE
from align.train.tasks.base import Example, TaskSpec, field_of, label_index, read_csv, read_jsonl


def _choices(values: list, path: Path, number: int, expected: int) -> list[str]:
    if (
        not isinstance(values, list)
        or len(values) != expected
        or not all(str(v).strip() for v in values)
    ):
        raise AlignError(f"{path}:{number}: expected {expected} non-empty answer choices")
    return [str(v) for v in values]


def read_hellaswag(path: Path, split: str, spec: TaskSpec) -> list[Example]:
    out = []
    for number, row in read_jsonl(path):
        context = (
            row.get("ctx")
            or f"{field_of(row, 'ctx_a', path, number)} {row.get('ctx_b', '')}".strip()
        )
        out.append(
            {
                "context": context,
                "choices": _choices(field_of(row, "endings", path, number), path, number, 4),
                "label": label_index(field_of(row, "label", path, number), spec, path, number),
            }
        )
    return out


def read_commonsenseqa(path: Path, split: str, spec: TaskSpec) -> list[Example]:
    out = []
    for number, row in read_jsonl(path):
        choices = field_of(row, "question.choices", path, number)
        if not isinstance(choices, list) or [c.get("label") for c in choices] != list(spec.labels):
            raise AlignError(f"{path}:{number}: choices must be labelled {', '.join(spec.labels)}")
        out.append(
            {
                "context": field_of(row, "question.stem", path, number),
                "choices": _choices(
                    [c.get("text") for c in choices], path, number, len(spec.labels)
                ),
                "label": label_index(field_of(row, "answerKey", path, number), spec, path, number),
            }
        )
    return out


def read_cosmosqa(path: Path, split: str, spec: TaskSpec) -> list[Example]:
    required = ("context", "question", "answer0", "answer1", "answer2", "answer3", "label")
    rows = read_jsonl(path) if path.suffix == ".jsonl" else read_csv(path, required)
    out = []
    for number, row in rows:
        answers = [field_of(row, f"answer{i}", path, number) for i in range(4)]
        context = (
            f"{field_of(row, 'context', path, number)} {field_of(row, 'question', path, number)}"
        )
        out.append(
            {
                "context": context,
                "choices": _choices(answers, path, number, 4),
                "label": label_index(field_of(row, "label", path, number), spec, path, number),
            }
        )
    return out


def hellaswag_from_hub(rows: Any, spec: TaskSpec) -> list[Example]:
    return [
        {"context": r["ctx"], "choices": r["endings"], "label": int(r["label"])}
        for r in rows
        if r["label"] != ""  # unlabelled test rows
    ]


def commonsenseqa_from_hub(rows: Any, spec: TaskSpec) -> list[Example]:
    return [
        {
            "context": r["question"],
            "choices": r["choices"]["text"],
            "label": spec.labels.index(r["answerKey"]),
        }
        for r in rows
        if r["answerKey"]
    ]


def cosmosqa_from_hub(rows: Any, spec: TaskSpec) -> list[Example]:
    return [
        {
            "context": f"{r['context']} {r['question']}",
            "choices": [r[f"answer{i}"] for i in range(4)],
            "label": int(r["label"]),
        }
        for r in rows
    ]


TASKS = [
    TaskSpec(
        name="hellaswag",
        head=MULTIPLE_CHOICE,
        description="HellaSwag sentence completion, 4 endings (JSONL: ctx, endings, label)",
        files={
            "train": ("hellaswag_train.jsonl", "train.jsonl"),
            "dev": ("hellaswag_val.jsonl", "dev.jsonl"),
        },
        read=read_hellaswag,
        metric="accuracy",
        labels=("0", "1", "2", "3"),
        hub=("Rowan/hellaswag", None),
        from_hub=hellaswag_from_hub,
    ),
    TaskSpec(
        name="commonsenseqa",
        head=MULTIPLE_CHOICE,
        description="CommonsenseQA, 5 choices (JSONL: question.stem, question.choices, answerKey)",
        files={
            "train": ("train_rand_split.jsonl", "train.jsonl"),
            "dev": ("dev_rand_split.jsonl", "dev.jsonl"),
        },
        read=read_commonsenseqa,
        metric="accuracy",
        labels=("A", "B", "C", "D", "E"),
        hub=("tau/commonsense_qa", None),
        from_hub=commonsenseqa_from_hub,
    ),
    TaskSpec(
        name="cosmosqa",
        head=MULTIPLE_CHOICE,
        description="Cosmos QA, 4 answers (CSV/JSONL: context, question, answer0-3, label)",
        files={
            "train": ("train.csv", "train.jsonl"),
            "dev": ("valid.csv", "dev.csv", "valid.jsonl", "dev.jsonl"),
        },
        read=read_cosmosqa,
        metric="accuracy",
        labels=("0", "1", "2", "3"),
        hub=("allenai/cosmos_qa", None),
        from_hub=cosmosqa_from_hub,
    ),
]
