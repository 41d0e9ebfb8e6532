"""Sentences/s of align's all-layer extraction on a decoder-shaped model vs a bare loop.

A Llama-shaped model (12 layers, width 768, 12 heads, random weights: the cost of a forward
pass does not depend on the weights) with a byte-level tokenizer trained on the spot; Bible
verses of mixed length. Timed in one run on the same texts:

naive       fixed batches in input order, right padding, a plain ``LlamaModel`` forward,
            the last layer's last real token
align-all   ``align.encode.encode_layers`` (pooling ``last``): length-sorted batches, every
            layer pooled from one forward pass

Issue 29 asks align-all >= 1.5x naive, as for encoders (benchmarks/bench_encode.py).

    python benchmarks/bench_encode_decoder.py [--n 1500] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from align.encode import EncodeOptions, encode_layers
from align.models import load_encoder


def build(path: Path, texts: list[str]) -> Path:
    """The Llama-shaped model and its tokenizer (no pad token, as most decoders')."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaModel, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=8000, special_tokens=["<unk>", "<bos>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", 1)]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>",
                                   unk_token="<unk>")  # fmt: skip
    fast.save_pretrained(path)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=768, intermediate_size=2048,
                         num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=12,
                         max_position_embeddings=512, bos_token_id=1, eos_token_id=2)  # fmt: skip
    torch.manual_seed(0)
    LlamaModel(config).save_pretrained(path, safe_serialization=True)
    return path


def naive(enc, texts: list[str], batch_size: int, max_length: int) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            batch = enc.tokenizer(texts[i : i + batch_size], padding=True, truncation=True,
                                  max_length=max_length, return_tensors="pt")  # fmt: skip
            hidden = enc.model(**batch).last_hidden_state
            last = batch["attention_mask"].sum(1) - 1
            out.append(hidden[torch.arange(len(last)), last].numpy())
    return np.concatenate(out)


def main() -> None:
    from bench_encode import mixed_verses

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    args = ap.parse_args()
    texts = mixed_verses(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        enc = load_encoder(str(build(Path(tmp) / "llama-12x768", mixed_verses(20000, seed=1))),
                           device="cpu")  # fmt: skip
        enc.tokenizer.padding_side = "right"
        opts = EncodeOptions(pooling="last", max_length=args.max_length,
                             batch_size=args.batch_size)  # fmt: skip
        naive(enc, texts[:64], args.batch_size, args.max_length)  # warm-up
        start = time.perf_counter()
        base = naive(enc, texts, args.batch_size, args.max_length)
        t_naive = time.perf_counter() - start
        start = time.perf_counter()
        ours = encode_layers(enc, texts, opts, progress=False)
        t_align = time.perf_counter() - start
    gap = float(np.abs(ours[-1] - base).max() / np.abs(base).max())
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"{args.n} verses, Llama-shaped 12 x 768 (random weights), CPU, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    print(f"  naive (last layer, last token):   {args.n / t_naive:7.1f} sentences/s")
    print(f"  align-all (13 layers pooled):     {args.n / t_align:7.1f} sentences/s")
    print(
        f"  speed-up {t_naive / t_align:.2f}x (issue 29 asks >= 1.5x); last layer equal to "
        f"{gap:.1e} of its scale (float16 storage)"
    )
    print(f"  peak resident memory of this process: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
