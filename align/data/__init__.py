"""Datasets: XTREME Tatoeba/BUCC layouts and the Bible demo corpora."""

from align.data.bible import build_bucc_demo, build_tatoeba_demo
from align.data.xtreme import (
    BuccSplit,
    ParallelSet,
    read_bucc,
    read_tatoeba,
    write_bucc,
    write_tatoeba,
)

__all__ = [
    "BuccSplit",
    "ParallelSet",
    "build_bucc_demo",
    "build_tatoeba_demo",
    "read_bucc",
    "read_tatoeba",
    "write_bucc",
    "write_tatoeba",
]
