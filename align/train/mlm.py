"""Continued multilingual masked-language modelling beside the intermediate task."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from align.data.xtreme import read_lines
from align.errors import AlignError
from align.train.heads import IGNORE


@dataclass
class MLMData:
    lines: list[str]

    @classmethod
    def read(cls, path: Path) -> MLMData:
        lines = read_lines(Path(path))  # names the file and line of any empty / non-UTF-8 line
        if len(lines) < 2:
            raise AlignError(f"--mlm-data {path}: need at least 2 lines of text")
        return cls(lines)

    def batch(self, micro: int, cfg: Any, tokenizer: Any, rank: int) -> dict[str, torch.Tensor]:
        """A masked batch that depends only on (seed, micro-step, rank): resumable."""
        key = zlib.crc32(f"mlm-{micro}-{rank}".encode())
        rng = np.random.default_rng([cfg.seed, key])
        texts = [self.lines[i] for i in rng.integers(0, len(self.lines), cfg.batch_size)]
        enc = tokenizer(
            texts,
            truncation=True,
            max_length=cfg.max_length,
            padding=True,
            return_tensors="pt",
            return_special_tokens_mask=True,
        )
        input_ids = enc["input_ids"].clone()
        maskable = (enc["attention_mask"] == 1) & (enc["special_tokens_mask"] == 0)
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        chosen = (torch.rand(input_ids.shape, generator=generator) < cfg.mlm_probability) & maskable
        labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE))
        roll = torch.rand(input_ids.shape, generator=generator)
        input_ids[chosen & (roll < 0.8)] = tokenizer.mask_token_id
        random_tokens = torch.randint(len(tokenizer), input_ids.shape, generator=generator)
        swap = chosen & (roll >= 0.8) & (roll < 0.9)
        input_ids[swap] = random_tokens[swap]
        return {"input_ids": input_ids, "attention_mask": enc["attention_mask"], "labels": labels}
