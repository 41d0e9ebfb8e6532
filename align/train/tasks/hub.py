"""Hub rows (``datasets``) -> the examples the file readers produce (needs network; untested)."""

from __future__ import annotations

from typing import Any

from align.train.tasks.base import Example, TaskSpec

HUB_COLUMNS = {"mnli": ("premise", "hypothesis"), "anli": ("premise", "hypothesis")}


def convert(spec: TaskSpec, rows: Any) -> list[Example]:
    if spec.head == "classification":
        # hub NLI sets name their columns premise/hypothesis; QQP and SST-2 keep the TSV names
        first, second = HUB_COLUMNS.get(spec.name) or spec.options["columns"][:2]
        return [
            {"text": r[first], "text_b": r[second] if second else None, "label": int(r["label"])}
            for r in rows
            if int(r["label"]) >= 0
        ]
    if spec.name == "hellaswag":
        return [
            {"context": r["ctx"], "choices": r["endings"], "label": int(r["label"])}
            for r in rows
            if r["label"] != ""
        ]
    if spec.name == "commonsenseqa":
        return [
            {
                "context": r["question"],
                "choices": r["choices"]["text"],
                "label": spec.labels.index(r["answerKey"]),
            }
            for r in rows
            if r["answerKey"]
        ]
    if spec.name == "cosmosqa":
        return [
            {
                "context": f"{r['context']} {r['question']}",
                "choices": [r[f"answer{i}"] for i in range(4)],
                "label": int(r["label"]),
            }
            for r in rows
        ]
    if spec.head == "extractive_qa":
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
    raise NotImplementedError(f"no hub conversion for task {spec.name}")
