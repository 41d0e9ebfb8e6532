"""Extractive QA: SQuAD v1.1 and v2.0 (official JSON), with no-answer questions in v2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from align.errors import AlignError
from align.train.heads import EXTRACTIVE_QA
from align.train.heads.extractive_qa import squad_scores
from align.train.tasks.base import Example, TaskSpec


def read_squad(path: Path, split: str, spec: TaskSpec) -> list[Example]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))["data"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise AlignError(
            f"{path}: not a SQuAD JSON file with a top-level 'data' list ({exc})"
        ) from exc
    allow_impossible = spec.options.get("v2", False)
    out = []
    for article in data:
        for paragraph in article.get("paragraphs", []):
            context = paragraph.get("context")
            if not isinstance(context, str) or not context.strip():
                raise AlignError(
                    f"{path}: a paragraph of {article.get('title', '?')!r} has no context"
                )
            for qa in paragraph.get("qas", []):
                out.append(_example(qa, context, path, allow_impossible))
    if not out:
        raise AlignError(f"{path}: no questions found")
    return out


def _example(qa: dict, context: str, path: Path, allow_impossible: bool) -> Example:
    qid = qa.get("id", "?")
    question = qa.get("question")
    if not isinstance(question, str) or not question.strip():
        raise AlignError(f"{path}: question {qid!r} has no text")
    impossible = bool(qa.get("is_impossible", False))
    if impossible and not allow_impossible:
        raise AlignError(
            f"{path}: question {qid!r} is marked impossible, but this task is SQuAD v1.1"
        )
    answers = [] if impossible else qa.get("answers", [])
    if not impossible and not answers:
        raise AlignError(f"{path}: question {qid!r} has no answers")
    spans = []
    for answer in answers:
        text, start = answer.get("text", ""), answer.get("answer_start", -1)
        if not isinstance(start, int) or context[start : start + len(text)] != text or not text:
            raise AlignError(
                f"{path}: question {qid!r}: answer {text!r} at {start} does not match the context "
                f"(context there reads {context[max(start, 0) : max(start, 0) + len(text)]!r})"
            )
        spans.append({"text": text, "start": start})
    return {
        "id": qid,
        "question": question,
        "context": context,
        "answers": spans,
        "impossible": impossible,
    }


def squad_from_hub(rows: Any, spec: TaskSpec) -> list[Example]:
    return [
        {
            "id": r["id"],
            "question": r["question"],
            "context": r["context"],
            "answers": [
                {"text": t, "start": s}
                for t, s in zip(r["answers"]["text"], r["answers"]["answer_start"], strict=True)
            ],
            "impossible": not r["answers"]["text"],
        }
        for r in rows
    ]


TASKS = [
    TaskSpec(
        name="squad",
        head=EXTRACTIVE_QA,
        description="SQuAD v1.1 extractive QA (official JSON)",
        files={"train": ("train-v1.1.json", "train.json"), "dev": ("dev-v1.1.json", "dev.json")},
        read=read_squad,
        metric="squad",
        hub=("rajpurkar/squad", None),
        from_hub=squad_from_hub,
    ),
    TaskSpec(
        name="squad_v2",
        head=EXTRACTIVE_QA,
        description="SQuAD v2.0 extractive QA with unanswerable questions (official JSON)",
        files={"train": ("train-v2.0.json", "train.json"), "dev": ("dev-v2.0.json", "dev.json")},
        read=read_squad,
        metric="squad",
        hub=("rajpurkar/squad_v2", None),
        from_hub=squad_from_hub,
        options={"v2": True},
    ),
]

__all__ = ["TASKS", "read_squad", "squad_scores"]
