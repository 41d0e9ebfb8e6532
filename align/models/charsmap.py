"""SentencePiece ``precompiled_charsmap``: decode one; compile rules with sentencepiece's builder.

The blob is ``uint32 trie_size`` + a darts-clone double-array trie over UTF-8 keys + a
NUL-separated blob of replacement strings. We only ever *compile* through sentencepiece
itself (``normalization_rule_tsv`` at training time), so the bytes are exactly what the
library would produce; decoding is needed to read the built-in ``nmt_nfkc`` rules.
"""

from __future__ import annotations

import io
import struct
import tempfile
from pathlib import Path

import numpy as np

Rules = dict[str, str]

# Scripts added to Unicode after 2019 (Unicode 16.0): XLM-R's 2019 table has no rules for them.
POST_2019_SCRIPTS: tuple[tuple[int, int], ...] = (
    (0x105C0, 0x105FF),  # Todhri
    (0x11380, 0x113FF),  # Tulu-Tigalari
    (0x11900, 0x1195F),  # Dives Akuru
    (0x16100, 0x1613F),  # Gurung Khema
    (0x16D40, 0x16D7F),  # Kirat Rai
)


def _offset(unit: int) -> int:
    return (unit >> 10) << ((unit & (1 << 9)) >> 6)


def decode(blob: bytes) -> Rules:
    """All (source -> replacement) rules stored in a precompiled charsmap."""
    (trie_size,) = struct.unpack_from("<I", blob, 0)
    units = np.frombuffer(blob, "<u4", trie_size // 4, 4).tolist()
    normalized = blob[4 + trie_size :]
    rules: Rules = {}
    stack: list[tuple[int, bytes]] = [(_offset(units[0]), b"")]
    n_units = len(units)
    while stack:
        pos, key = stack.pop()
        for byte in range(1, 256):
            child = pos ^ byte
            if child >= n_units:
                continue
            unit = units[child]
            if (unit & ((1 << 31) | 0xFF)) != byte:
                continue
            nxt = child ^ _offset(unit)
            new_key = key + bytes([byte])
            if (unit >> 8) & 1:
                start = units[nxt] & ((1 << 31) - 1)
                end = normalized.index(b"\0", start)
                rules[new_key.decode("utf-8")] = normalized[start:end].decode("utf-8")
            stack.append((nxt, new_key))
    return rules


def _train_tiny(**normalizer_options: str) -> bytes:
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    spm.set_min_log_level(2)
    writer = io.BytesIO()
    sentences = ["abc def ghi jkl", "hello world"] * 20
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=writer,
        vocab_size=24,
        model_type="char",
        **normalizer_options,
    )
    proto = pb.ModelProto()
    proto.ParseFromString(writer.getvalue())
    return bytes(proto.normalizer_spec.precompiled_charsmap)


def builtin(name: str = "nmt_nfkc") -> bytes:
    """The compiled charsmap of one of sentencepiece's built-in normalization rules."""
    return _train_tiny(normalization_rule_name=name)


def compile_rules(rules: Rules) -> bytes:
    """Compile rules with sentencepiece's own builder (via ``normalization_rule_tsv``)."""

    def hexes(text: str) -> str:
        return " ".join(f"{ord(ch):X}" for ch in text)

    lines = [f"{hexes(src)}\t{hexes(dst)}" for src, dst in sorted(rules.items())]
    with tempfile.TemporaryDirectory() as tmp:
        tsv = Path(tmp) / "rules.tsv"
        tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return _train_tiny(normalization_rule_tsv=str(tsv))


def xlmr_rules(single: dict[int, tuple[int, ...]]) -> Rules:
    """XLM-R's rules: a per-code-point table plus ``nmt_nfkc``'s multi-code-point rules.

    Multi-code-point rules are dropped where they touch a code point that ``single`` maps
    differently from ``nmt_nfkc`` or a script added to Unicode after 2019.
    """
    nfkc = decode(builtin("nmt_nfkc"))
    nfkc_single = {ord(k): tuple(ord(c) for c in v) for k, v in nfkc.items() if len(k) == 1}
    differs = {cp for cp in set(single) | set(nfkc_single) if single.get(cp) != nfkc_single.get(cp)}

    def excluded(src: str, dst: str) -> bool:
        for ch in src + dst:
            cp = ord(ch)
            if cp in differs or any(lo <= cp <= hi for lo, hi in POST_2019_SCRIPTS):
                return True
        return False

    rules: Rules = {chr(cp): "".join(map(chr, out)) for cp, out in single.items()}
    for src, dst in nfkc.items():
        if len(src) > 1 and not excluded(src, dst):
            rules[src] = dst
    return rules
