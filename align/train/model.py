"""A shared encoder with one head per task (and an optional MLM head).

Heads: ``classification`` (<s> -> dense/tanh -> labels, as RoBERTa), ``multiple_choice``
(<s> of each (context, choice) -> score), ``extractive_qa`` (token -> start/end logits; <s> is
"no answer"), ``tagging`` (token -> tag), ``mlm`` (dense/gelu/LayerNorm -> tied word embeddings).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from align.train.features import IGNORE


class ClassificationHead(nn.Module):
    def __init__(self, hidden: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_labels)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        x = self.dropout(states[:, 0])
        return self.out(self.dropout(torch.tanh(self.dense(x))))


class MLMHead(nn.Module):
    """Predicts tokens through the (tied) word-embedding matrix passed in at call time."""

    def __init__(self, hidden: int, vocab_size: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, states: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        x = self.norm(F.gelu(self.dense(states)))
        return x @ word_embeddings.T + self.bias


def make_head(head_type: str, hidden: int, num_labels: int, dropout: float) -> nn.Module:
    if head_type == "classification":
        return ClassificationHead(hidden, num_labels, dropout)
    if head_type == "extractive_qa":
        return nn.Linear(hidden, 2)
    if head_type == "multiple_choice":
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, 1))
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, num_labels))


class MultiTaskModel(nn.Module):
    def __init__(self, encoder: Any, heads: dict[str, tuple[str, int]], mlm: bool = False) -> None:
        super().__init__()
        config = encoder.config
        dropout = getattr(config, "hidden_dropout_prob", 0.1)
        self.encoder = encoder
        self.head_types = {name: head for name, (head, _) in heads.items()}
        self.heads = nn.ModuleDict(
            {
                name: make_head(head, config.hidden_size, n, dropout)
                for name, (head, n) in heads.items()
            }
        )
        eps = getattr(config, "layer_norm_eps", 1e-5)
        vocab = encoder.get_input_embeddings().num_embeddings
        self.mlm_head = MLMHead(config.hidden_size, vocab, eps) if mlm else None

    def _encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def forward(self, task: str, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if task == "mlm":
            assert self.mlm_head is not None
            states = self._encode(batch["input_ids"], batch["attention_mask"])
            logits = self.mlm_head(states, self.encoder.get_input_embeddings().weight)
            loss = F.cross_entropy(
                logits.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=IGNORE
            )
            return {"loss": loss}
        head_type, head = self.head_types[task], self.heads[task]
        if head_type == "multiple_choice":
            n, choices, width = batch["input_ids"].shape
            states = self._encode(
                batch["input_ids"].view(-1, width), batch["attention_mask"].view(-1, width)
            )
            logits = head(states[:, 0]).view(n, choices)
            return {"logits": logits, "loss": F.cross_entropy(logits.float(), batch["labels"])}
        states = self._encode(batch["input_ids"], batch["attention_mask"])
        if head_type == "classification":
            logits = head(states)
            return {"logits": logits, "loss": F.cross_entropy(logits.float(), batch["labels"])}
        if head_type == "extractive_qa":
            start, end = head(states).float().unbind(-1)
            pad = batch["attention_mask"] == 0
            start, end = start.masked_fill(pad, -1e4), end.masked_fill(pad, -1e4)
            loss = (
                F.cross_entropy(start, batch["start_positions"])
                + F.cross_entropy(end, batch["end_positions"])
            ) / 2
            return {"start_logits": start, "end_logits": end, "loss": loss}
        logits = head(states)
        loss = F.cross_entropy(
            logits.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=IGNORE
        )
        return {"logits": logits, "loss": loss}
