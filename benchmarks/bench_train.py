"""Training throughput (examples/s): ``align train`` vs a plain Hugging Face ``Trainer`` loop
without length grouping, same model, data, batch size and steps, in one run.

Data: ``bible-paraphrase`` sentence pairs (mixed lengths). Model: the offline default
(word embeddings frozen in both runs, as on a CPU one would). Target (issue 4): >= 1.3x.

    pip install -r benchmarks/requirements.txt     # accelerate, which Trainer needs
    python benchmarks/bench_train.py [--steps 30] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from align.models import build_default_model
from align.train.config import TrainConfig
from align.train.tasks import get_task, load_split
from align.train.trainer import train


def align_throughput(steps: int, batch: int, max_length: int, out: Path) -> float:
    cfg = TrainConfig(
        tasks="bible-paraphrase",
        out=out,
        max_steps=steps,
        batch_size=batch,
        lr=2e-5,
        max_length=max_length,
        freeze_embeddings=True,
        save_steps=10**9,
        max_eval_examples=16,
        progress=False,
    )
    run = train(cfg)
    return steps * batch / run.meta["train_seconds"]


class _Rows(torch.utils.data.Dataset):
    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


def trainer_throughput(steps: int, batch: int, max_length: int, out: Path) -> float:
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    model_dir = build_default_model()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=2, dtype=torch.float32
    )
    model.get_input_embeddings().weight.requires_grad_(False)
    examples = load_split(get_task("bible-paraphrase"), None, "train")
    enc = tokenizer(
        [e["text"] for e in examples],
        [e["text_b"] for e in examples],
        truncation=True,
        max_length=max_length,
    )
    rows = [
        {"input_ids": ids, "attention_mask": m, "labels": e["label"]}
        for ids, m, e in zip(enc["input_ids"], enc["attention_mask"], examples, strict=True)
    ]
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=batch,
        max_steps=steps,
        learning_rate=2e-5,
        train_sampling_strategy="random",  # no length grouping
        save_strategy="no",
        report_to=[],
        logging_strategy="no",
        seed=0,
        dataloader_num_workers=0,
        use_cpu=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_Rows(rows),
        data_collator=DataCollatorWithPadding(tokenizer),
    )
    start = time.perf_counter()
    trainer.train()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=128)
    args = ap.parse_args()
    steps = f"{args.steps} steps of {args.batch_size} pairs each"
    print(f"torch threads {torch.get_num_threads()}; {steps}")
    with tempfile.TemporaryDirectory() as tmp:
        ours = align_throughput(args.steps, args.batch_size, args.max_length, Path(tmp) / "align")
        theirs = trainer_throughput(args.steps, args.batch_size, args.max_length, Path(tmp) / "hf")
    print(f"{'loop':<44}{'examples/s':>12}")
    print(f"{'align train (length-grouped, dynamic padding)':<44}{ours:12.2f}")
    print(f"{'HF Trainer (random batches, dynamic padding)':<44}{theirs:12.2f}")
    print(f"speed-up: {ours / theirs:.2f}x (target >= 1.3x)")


if __name__ == "__main__":
    main()
