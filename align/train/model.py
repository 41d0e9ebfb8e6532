"""A shared encoder with one head per task (and an optional MLM head).

Each task's head module comes from its head type (``align.train.heads``), which also computes
its loss; the MLM head (dense/gelu/LayerNorm -> tied word embeddings) is the one kept here.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from align.models.attention import padding_mask_4d
from align.train.heads import IGNORE, Head


def last_token_first(states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``states`` with each sequence's last real token's state at position 0, where sentence
    heads read (a causal model's first token has read only itself)."""
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    last = torch.where(attention_mask.bool(), positions, -1).amax(1).clamp_min(0)
    rows = torch.arange(states.shape[0], device=states.device)
    return torch.cat([states[rows, last][:, None], states[:, 1:]], dim=1)


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


class MultiTaskModel(nn.Module):
    """``causal``: the encoder is a decoder-only LM. Its own causal mask is kept (no 4-D
    padding mask), and the sentence heads read the last real token's state where an encoder's
    read ``<s>`` (the pooling retrieval records for a decoder: ``last``)."""

    def __init__(
        self,
        encoder: Any,
        heads: dict[str, tuple[Head, int]],
        mlm: bool = False,
        causal: bool = False,
    ) -> None:
        super().__init__()
        self.causal = causal
        config = encoder.config
        dropout = getattr(config, "hidden_dropout_prob", 0.1)
        self.encoder = encoder
        self.head_types = {name: head for name, (head, _) in heads.items()}
        self.heads = nn.ModuleDict(
            {name: head.module(config.hidden_size, n, dropout) for name, (head, n) in heads.items()}
        )
        eps = getattr(config, "layer_norm_eps", 1e-5)
        vocab = encoder.get_input_embeddings().num_embeddings
        self.mlm_head = MLMHead(config.hidden_size, vocab, eps) if mlm else None

    def _encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.causal:
            states = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
            return last_token_first(states.last_hidden_state, attention_mask)
        mask = padding_mask_4d(self.encoder, attention_mask)  # no read back per forward pass
        return self.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state

    def forward(self, task: str, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if task == "mlm":
            assert self.mlm_head is not None
            states = self._encode(batch["input_ids"], batch["attention_mask"])
            logits = self.mlm_head(states, self.encoder.get_input_embeddings().weight)
            loss = F.cross_entropy(
                logits.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=IGNORE
            )
            return {"loss": loss}
        return self.head_types[task].forward(self.heads[task], self._encode, batch)
