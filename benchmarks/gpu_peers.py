"""The peers ``gpu_check.py`` measures align against, each the plain way one would write it.

- ``random_model``: an XLM-R Large-shaped encoder with random weights, made on the device (speed
  does not depend on the weights), saved in HF format with the default model's tokenizer;
- ``bare_encode``: a transformers loop: length-sorted batches of 256, every hidden state
  mean-pooled on the device, float16 copied to the host;
- ``two_pass_knn``: each side's k nearest neighbours by torch, row blocks of 8192 (matmul then
  ``topk``), both directions, so the similarity matrix is computed twice;
- ``gemm_seconds``: one similarity matrix, tile by tile, nothing else;
- ``bare_train``: ``AutoModelForSequenceClassification``, fused AdamW, bf16 autocast (where the
  device has it), each batch tokenized on the fly, in the data's order.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

LARGE = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
         "intermediate_size": 4096}  # fmt: skip


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def random_model(out: Path, tokenizer_dir: Path, device: str, shape: dict | None = None) -> Path:
    """An XLM-R-shaped encoder with random weights (``shape``: Large unless given) at ``out``."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    if (out / "model.safetensors").is_file():
        return out
    config = XLMRobertaConfig(
        vocab_size=250_002, max_position_embeddings=514, type_vocab_size=1,
        layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2,
        **(shape or LARGE),
    )  # fmt: skip
    torch.manual_seed(0)
    with torch.device(device):
        model = XLMRobertaModel(config, add_pooling_layer=False)
    model.save_pretrained(out, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer_dir / name, out / name)
    del model
    return out


def bare_encode(
    model_dir: Path, texts: list[str], device: str, dtype: str, batch: int = 256, max_length=128
) -> float:
    """Sentences per second of the plain loop (tokenizing included, as in align's)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, dtype=getattr(torch, dtype)).to(device).eval()

    def run(items: list[str]) -> None:
        enc = tokenizer(items, truncation=True, max_length=max_length)["input_ids"]
        order = np.argsort([-len(ids) for ids in enc], kind="stable")
        out = []
        with torch.inference_mode():
            for start in range(0, len(items), batch):
                rows = [{"input_ids": enc[i]} for i in order[start : start + batch]]
                padded = tokenizer.pad(rows, return_tensors="pt")
                ids = padded["input_ids"].to(device)
                mask = padded["attention_mask"].to(device)
                states = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
                weights = mask.unsqueeze(-1).to(states.hidden_states[0].dtype)
                pooled = torch.stack(
                    [(h * weights).sum(1) / weights.sum(1) for h in states.hidden_states]
                )
                out.append(pooled.half().cpu())
        _sync(device)

    run(texts[:512])  # warm-up
    start = time.perf_counter()
    run(texts)
    return len(texts) / (time.perf_counter() - start)


def gemm_seconds(x, y, tile: int, dtype) -> float:
    """One similarity matrix of ``x`` and ``y`` (device tensors), tile by tile into one buffer."""
    import torch

    xt, yt = x.to(dtype), y.to(dtype)
    buffer = torch.empty(min(tile, len(xt)) * min(tile, len(yt)), dtype=dtype, device=x.device)

    def product(a, b) -> None:
        torch.matmul(a, b.T, out=buffer[: len(a) * len(b)].view(len(a), len(b)))

    product(xt[:tile], yt[:tile])
    _sync(str(x.device))
    start = time.perf_counter()
    for r in range(0, len(xt), tile):
        for c in range(0, len(yt), tile):
            product(xt[r : r + tile], yt[c : c + tile])
    _sync(str(x.device))
    return time.perf_counter() - start


def two_pass_knn(x, y, k: int, dtype, block: int = 8192) -> float:
    """Seconds of each x's k nearest y and each y's k nearest x (matrix computed twice)."""
    import torch

    xt, yt = x.to(dtype), y.to(dtype)

    def one_way(queries, keys) -> None:
        for start in range(0, len(queries), block):
            torch.topk(queries[start : start + block] @ keys.T, k, dim=1)

    one_way(xt[:block], yt[:block])
    _sync(str(x.device))
    start = time.perf_counter()
    one_way(xt, yt)
    one_way(yt, xt)
    _sync(str(x.device))
    return time.perf_counter() - start


def bare_train(
    model_dir: Path, pairs: list[tuple[str, str, int]], device: str, steps: int, batch: int = 32
) -> float:
    """Examples per second of the plain loop (after one warm-up step)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=3)
    model = model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, fused=True)
    bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()

    def step(i: int) -> None:
        rows = [pairs[(i * batch + j) % len(pairs)] for j in range(batch)]
        enc = tokenizer(
            [r[0] for r in rows], [r[1] for r in rows], truncation=True, max_length=128,
            padding=True, return_tensors="pt",
        ).to(device)  # fmt: skip
        labels = torch.tensor([r[2] for r in rows], device=device)
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
            loss = model(**enc, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step(0)
    _sync(device)
    start = time.perf_counter()
    for i in range(1, steps + 1):
        step(i)
    _sync(device)
    return steps * batch / (time.perf_counter() - start)
