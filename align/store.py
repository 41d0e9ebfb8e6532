"""Embeddings on disk, one float16 ``.npy`` file per layer, written as they are encoded.

A :class:`LayerStore` is one encoded set of sentences: ``layer_{i:03d}.npy`` (``[n, d]``,
float16, input order) for each stored layer and ``meta.json`` (shape, layers, the sha256 of
every layer file and, in the cache, the fields of its key). Consumers read one layer at a time
(:meth:`LayerStore.layer`, float32) and let it go, so memory never grows with depth.

A :class:`LayerWriter` takes pooled batches in any order (encoding runs over length-sorted
batches) and appends each layer's rows to a scratch file; :meth:`LayerWriter.finish` puts every
layer into input order one at a time (two float16 copies of one layer in RAM), checksums it and
writes ``meta.json`` last. The :class:`EmbeddingCache` builds a store in a temporary directory
and renames it into place, so a crash never leaves a store that a later run trusts. A store is
trusted only when its sidecar holds exactly the fields of the key asked for (so a store copied
under another key is refused) and every layer file matches its checksum.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from align._io import _share_like_open, cache_dir, owned_tmpdir, write_error
from align.errors import AlignError

log = logging.getLogger(__name__)

STORE_FORMAT = 3  # one directory per set, a .npy per layer
_META = "meta.json"
_ORDER = "order.i64"
_BUFFER_BYTES = 8 << 20  # rows held per writer before they are appended to disk
_READ_CHUNK = 8 << 20


def layer_file(layer: int) -> str:
    return f"layer_{layer:03d}.npy"


def _read_npy_checked(path: Path, expected_sha: str | None) -> np.ndarray:
    """A float16 ``.npy`` read in chunks while its sha256 is computed (one pass, no copy)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        fmt = np.lib.format
        version = fmt.read_magic(fh)
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = read_header(fh)
        header_len = fh.tell()
        fh.seek(0)
        digest.update(fh.read(header_len))
        if fortran or dtype != np.float16 or len(shape) != 2:
            raise AlignError(f"{path}: not a float16 [n, d] layer file")
        out = np.empty(shape, np.float16)
        view = memoryview(out.reshape(-1).view(np.uint8))
        done = 0
        while done < len(view):
            got = fh.readinto(view[done : done + _READ_CHUNK])
            if not got:
                raise AlignError(f"{path}: truncated layer file")
            digest.update(view[done : done + got])
            done += got
        if fh.read(1):
            raise AlignError(f"{path}: trailing bytes after the layer's data")
    if expected_sha is not None and digest.hexdigest() != expected_sha:
        raise AlignError(f"{path}: checksum mismatch (the file changed or is damaged)")
    return out


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class LayerStore:
    """One encoded set on disk; :meth:`layer` reads one layer (float32 ``[n, d]``)."""

    def __init__(self, root: Path, meta: dict[str, Any]) -> None:
        self.root = Path(root)
        self.meta = meta
        self.n = int(meta["n"])
        self.d = int(meta["d"])
        self.layers = [int(layer) for layer in meta["layers"]]
        self._sha = {int(k): v for k, v in meta["sha256"].items()}

    @classmethod
    def open(cls, root: Path) -> LayerStore:
        root = Path(root)
        try:
            meta = json.loads((root / _META).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AlignError(f"{root}: not an embedding store ({exc})") from exc
        if not isinstance(meta, dict) or meta.get("format") != STORE_FORMAT:
            raise AlignError(f"{root}: not an embedding store of format {STORE_FORMAT}")
        return cls(root, meta)

    def layer(self, layer: int) -> np.ndarray:
        """Layer ``layer`` in input order as float32 (checksum verified as it is read)."""
        if layer not in self._sha:
            raise AlignError(f"{self.root}: layer {layer} is not stored (stored: {self.layers})")
        array = _read_npy_checked(self.root / layer_file(layer), self._sha[layer])
        if array.shape != (self.n, self.d):
            raise AlignError(f"{self.root}: layer {layer} has shape {array.shape}")
        return array.astype(np.float32)

    def verify(self) -> bool:
        """Every layer file present and matching its checksum (read in chunks)."""
        try:
            return all(
                file_sha256(self.root / layer_file(layer)) == sha
                for layer, sha in self._sha.items()
            )
        except OSError:
            return False

    def stack(self) -> np.ndarray:
        """Every stored layer at once, ``[layers, n, d]``: for small sets only."""
        return np.stack([self.layer(layer) for layer in self.layers])


class LayerWriter:
    """Collects pooled rows (any order) into a :class:`LayerStore` at ``root``.

    ``write(positions, pooled)`` takes the input positions of a batch and its float16
    ``[len(layers), batch, d]`` embeddings; rows are buffered up to a fixed size, then appended
    to one scratch file per layer. ``finish`` reorders each layer into input order.

    Several processes may write one store (``part``: each its own scratch files); the writer of
    part 0 then calls ``finish(parts=N)``, which reads every part's rows, so the store is the
    same, byte for byte, as one process writing all of them.
    """

    def __init__(
        self,
        root: Path,
        n: int,
        d: int,
        layers: list[int],
        buffer_bytes: int = _BUFFER_BYTES,
        part: int = 0,
    ) -> None:
        self.root = Path(root)
        self.buffer_bytes, self.part = buffer_bytes, part
        self.root.mkdir(parents=True, exist_ok=True)
        self.n, self.d, self.layers = n, d, list(layers)
        self._positions: list[np.ndarray] = []
        self._rows: list[np.ndarray] = []
        self._buffered = 0
        self.written = 0

    def _scratch(self, layer: int, part: int | None = None) -> Path:
        return self.root / f"rows_{layer:03d}.{self.part if part is None else part}.f16"

    def _order_file(self, part: int | None = None) -> Path:
        return self.root / f"{_ORDER}.{self.part if part is None else part}"

    def write(self, positions: np.ndarray, pooled: np.ndarray) -> None:
        pooled = np.asarray(pooled)
        if pooled.dtype != np.float16 or pooled.shape != (len(self.layers), len(positions), self.d):
            raise AlignError(
                f"pooled batch of shape {pooled.shape} ({pooled.dtype}), expected float16 "
                f"{(len(self.layers), len(positions), self.d)}"
            )
        self._positions.append(np.asarray(positions, np.int64))
        self._rows.append(pooled)
        self._buffered += pooled.nbytes
        self.written += len(positions)
        if self._buffered >= self.buffer_bytes:
            self.flush()

    def flush(self) -> None:
        if not self._rows:
            return
        path = self._order_file()
        try:
            with path.open("ab") as fh:
                fh.write(np.concatenate(self._positions).tobytes())
            for i, layer in enumerate(self.layers):
                path = self._scratch(layer)
                with path.open("ab") as fh:
                    for rows in self._rows:
                        fh.write(np.ascontiguousarray(rows[i]).tobytes())
        except OSError as exc:  # a full disk, a file size limit: the file named
            raise write_error(path, exc) from exc
        self._positions, self._rows, self._buffered = [], [], 0

    def _read_parts(self, name, parts: int, dtype) -> np.ndarray:
        chunks = [
            np.fromfile(p, dtype=dtype) for part in range(parts) if (p := name(part)).exists()
        ]
        return np.concatenate(chunks) if chunks else np.empty(0, dtype)

    def _order(self, parts: int) -> np.ndarray:
        order = self._read_parts(self._order_file, parts, np.int64)
        if len(order) != self.n or not np.array_equal(np.sort(order), np.arange(self.n)):
            raise AlignError(
                f"{self.root}: {len(order)} rows written for a set of {self.n}; every position "
                "must be written exactly once"
            )
        return order

    def finish(self, extra_meta: dict[str, Any] | None = None, parts: int = 1) -> LayerStore:
        """Every layer into input order and checksummed; ``meta.json`` written last."""
        self.flush()
        order = self._order(parts)
        checksums = {}
        for layer in self.layers:

            def scratch(part: int, layer: int = layer) -> Path:
                return self._scratch(layer, part)

            rows = self._read_parts(scratch, parts, np.float16).reshape(self.n, self.d)
            ordered = np.empty_like(rows)
            ordered[order] = rows
            del rows
            path = self.root / layer_file(layer)
            try:
                with path.open("wb") as fh:
                    np.save(fh, ordered, allow_pickle=False)
            except OSError as exc:
                raise write_error(path, exc) from exc
            del ordered
            for part in range(parts):
                scratch(part).unlink(missing_ok=True)
            checksums[str(layer)] = file_sha256(path)
        for part in range(parts):
            self._order_file(part).unlink(missing_ok=True)
        meta = {
            "format": STORE_FORMAT,
            "n": self.n,
            "d": self.d,
            "layers": self.layers,
            "sha256": checksums,
            **(extra_meta or {}),
        }
        (self.root / _META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        return LayerStore(self.root, meta)


@dataclass
class ModelSets:
    """One model's stores: ``stores[lang][set name]``; :meth:`layer` loads one layer of one
    language (every set, or the ones named)."""

    name: str
    stores: dict[str, dict[str, LayerStore]]

    def layer(
        self, lang: str, layer: int, sets: tuple[str, ...] | None = None
    ) -> dict[str, np.ndarray]:
        chosen = self.stores[lang]
        return {name: chosen[name].layer(layer) for name in sets or tuple(chosen)}


def store_from_array(root: Path, layers: list[int], array: np.ndarray) -> LayerStore:
    """A store holding ``array [len(layers), n, d]`` (rounded to float16)."""
    writer = LayerWriter(root, array.shape[1], array.shape[2], layers)
    writer.write(np.arange(array.shape[1]), array.astype(np.float16))
    return writer.finish()


def key_of(fields: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]


class EmbeddingCache:
    """``{root}/{key}/``: one :class:`LayerStore` per (model, tokenizer, texts, options).

    ``lookup`` trusts a store only when its sidecar's ``key_fields`` equal the fields asked
    for, the directory name is their hash, and every layer file matches its checksum; anything
    else is logged and ignored (the set is encoded again and the store replaced).
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir() / "embeddings"

    def path(self, key: str) -> Path:
        return self.root / key

    def lookup(self, fields: dict[str, Any]) -> LayerStore | None:
        key = key_of(fields)
        root = self.path(key)
        if not (root / _META).is_file():
            return None
        try:
            store = LayerStore.open(root)
        except AlignError as exc:
            log.warning("ignoring cache entry %s (%s); re-encoding", root, exc)
            return None
        if store.meta.get("key_fields") != fields:
            log.warning(
                "ignoring cache entry %s: its sidecar was written for other inputs (a store "
                "copied under another key?); re-encoding",
                root,
            )
            return None
        if not store.verify():
            log.warning(
                "ignoring cache entry %s: a layer file fails its checksum; re-encoding", root
            )
            return None
        return store

    def begin(self, fields: dict[str, Any]) -> Path:
        """A scratch directory beside the entry, to be committed or aborted (those of killed
        processes are swept first)."""
        return owned_tmpdir(self.root, self.path(key_of(fields)).name)

    def commit(self, fields: dict[str, Any], tmp: Path) -> Path:
        """Rename a finished scratch directory onto the entry (replacing a stale one)."""
        target = self.path(key_of(fields))
        _share_like_open(tmp, directory=True)
        for child in tmp.iterdir():
            _share_like_open(child)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
        return target

    @staticmethod
    def abort(tmp: Path) -> None:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

    @contextlib.contextmanager
    def building(self, fields: dict[str, Any]) -> Iterator[Path]:
        """A scratch directory beside the entry; renamed into place when the block succeeds."""
        tmp = self.begin(fields)
        try:
            yield tmp
            self.commit(fields, tmp)
        finally:
            self.abort(tmp)


class ScratchSpace:
    """A temporary directory for stores that are not cached (``--no-cache``, transplant
    variants), removed when the run ends."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="align-scratch-"))
        self._count = 0

    def new_dir(self, name: str = "set") -> Path:
        self._count += 1
        path = self.root / f"{self._count:04d}-{name}"
        path.mkdir()
        return path

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ScratchSpace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
