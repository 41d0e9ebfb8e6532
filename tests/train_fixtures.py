"""Tiny task files in the real distributed formats, from the tiny tokenizer's vocabulary."""

from __future__ import annotations

import json
from pathlib import Path

SENTS = [
    "the quick brown fox jumps over the lazy dog",
    "in the beginning god created the heaven and the earth",
    "der schnelle braune fuchs springt",
    "au commencement dieu créa les cieux",
]
NLI = ("entailment", "neutral", "contradiction")


def write_mnli(root: Path, n: int = 24, bad: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    header = [
        "index",
        "promptID",
        "pairID",
        "genre",
        "sentence1",
        "sentence2",
        "label1",
        "gold_label",
    ]
    if bad == "missing_column":
        header = header[:-1]
    for name in ("train.tsv", "dev_matched.tsv"):
        lines = ["\t".join(header)]
        for i in range(n):
            label = NLI[i % 3]
            if bad == "bad_label" and i == 5:
                label = "maybe"
            row = [
                str(i),
                str(i),
                f"{i}e",
                "fiction",
                SENTS[i % 3],
                SENTS[(i % 3) + 1 if i % 3 else 0],
                label,
                label,
            ]
            lines.append("\t".join(row[: len(header)]))
        (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def write_sst2(root: Path, n: int = 24) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in ("train.tsv", "dev.tsv"):
        rows = ["sentence\tlabel"] + [f"{SENTS[i % 2]}\t{i % 2}" for i in range(n)]
        (root / name).write_text("\n".join(rows) + "\n")
    return root


def write_hellaswag(root: Path, n: int = 16) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in ("hellaswag_train.jsonl", "hellaswag_val.jsonl"):
        rows = []
        for i in range(n):
            label = i % 4
            endings = [SENTS[2]] * 4
            endings[label] = SENTS[1]
            rows.append(json.dumps({"ctx": SENTS[0], "endings": endings, "label": label}))
        (root / name).write_text("\n".join(rows) + "\n")
    return root


def squad_json(v2: bool, n: int = 12, bad_span: bool = False) -> dict:
    context = "in the beginning god created the heaven and the earth"
    qas = []
    for i in range(n):
        if v2 and i % 3 == 2:
            qas.append(
                {"id": f"q{i}", "question": "the lazy dog", "answers": [], "is_impossible": True}
            )
            continue
        text, start = ("the heaven", context.index("the heaven"))
        if bad_span and i == 4:
            start += 3
        qa = {
            "id": f"q{i}",
            "question": "god created",
            "answers": [{"text": text, "answer_start": start}],
        }
        if v2:
            qa["is_impossible"] = False
        qas.append(qa)
    return {
        "version": "v2.0" if v2 else "1.1",
        "data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}],
    }


def write_squad(root: Path, v2: bool, bad_span: bool = False, generic_names: bool = False) -> Path:
    """``train-v1.1.json``-style names, or ``train.json`` / ``dev.json`` (read by either task)."""
    root.mkdir(parents=True, exist_ok=True)
    suffix = "v2.0" if v2 else "v1.1"
    for split in ("train", "dev"):
        name = f"{split}.json" if generic_names else f"{split}-{suffix}.json"
        (root / name).write_text(json.dumps(squad_json(v2, bad_span=bad_span)))
    return root


def write_ccg(root: Path, n: int = 12) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    tags = {"the": "NP/N", "quick": "N/N", "brown": "N/N", "fox": "N", "jumps": "S\\NP"}
    for name in ("ccg.train", "ccg.dev"):
        blocks = []
        for _ in range(n):
            blocks.append("\n".join(f"{w}\t{t}" for w, t in tags.items()))
        (root / name).write_text("\n\n".join(blocks) + "\n")
    return root


def write_qqp(root: Path, n: int = 12) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in ("train.tsv", "dev.tsv"):
        rows = ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"]
        rows += [
            f"{i}\t{2 * i}\t{2 * i + 1}\t{SENTS[0]}\t{SENTS[i % 2]}\t{int(i % 2 == 0)}"
            for i in range(n)
        ]
        (root / name).write_text("\n".join(rows) + "\n")
    return root


def write_anli(root: Path, n: int = 12) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in ("train.jsonl", "dev.jsonl"):
        rows = [
            json.dumps(
                {
                    "uid": str(i),
                    "context": SENTS[0],
                    "hypothesis": SENTS[i % 3],
                    "label": "enc"[i % 3],
                }
            )
            for i in range(n)
        ]
        (root / name).write_text("\n".join(rows) + "\n")
    return root


def write_commonsenseqa(root: Path, n: int = 10) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in ("train_rand_split.jsonl", "dev_rand_split.jsonl"):
        rows = []
        for i in range(n):
            choices = [{"label": c, "text": SENTS[j % 4]} for j, c in enumerate("ABCDE")]
            rows.append(
                json.dumps(
                    {
                        "answerKey": "ABCDE"[i % 5],
                        "question": {"stem": SENTS[0], "choices": choices},
                    }
                )
            )
        (root / name).write_text("\n".join(rows) + "\n")
    return root


def write_cosmosqa(root: Path, n: int = 10) -> Path:
    import csv

    root.mkdir(parents=True, exist_ok=True)
    for name in ("train.csv", "valid.csv"):
        with (root / name).open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(
                ["id", "context", "question", "answer0", "answer1", "answer2", "answer3", "label"]
            )
            for i in range(n):
                writer.writerow([str(i), SENTS[0], SENTS[1], *SENTS, i % 4])
    return root
