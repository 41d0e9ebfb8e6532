"""Extractive QA: SQuAD v1.1 and v2.0 (official JSON), with no-answer questions in v2."""

from __future__ import annotations

import collections
import json
import re
import string
from pathlib import Path

from align.errors import AlignError
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


# --- the official SQuAD evaluation (EM / F1 over normalised answers), re-implemented ---
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


def squad_scores(predictions: dict[str, str], examples: list[Example]) -> dict[str, float]:
    """Exact match and F1 (max over gold answers; a no-answer question's gold is '')."""
    em = f1 = 0.0
    for ex in examples:
        golds = [a["text"] for a in ex["answers"]] or [""]
        pred = predictions.get(ex["id"], "")
        em += max(float(normalize_answer(pred) == normalize_answer(g)) for g in golds)
        f1 += max(_f1(pred, g) for g in golds)
    n = max(len(examples), 1)
    return {"exact_match": em / n, "f1": f1 / n}


TASKS = [
    TaskSpec(
        name="squad",
        head="extractive_qa",
        description="SQuAD v1.1 extractive QA (official JSON)",
        files={"train": ("train-v1.1.json", "train.json"), "dev": ("dev-v1.1.json", "dev.json")},
        read=read_squad,
        metric="squad",
        hub=("rajpurkar/squad", None),
    ),
    TaskSpec(
        name="squad_v2",
        head="extractive_qa",
        description="SQuAD v2.0 extractive QA with unanswerable questions (official JSON)",
        files={"train": ("train-v2.0.json", "train.json"), "dev": ("dev-v2.0.json", "dev.json")},
        read=read_squad,
        metric="squad",
        hub=("rajpurkar/squad_v2", None),
        options={"v2": True},
    ),
]
