"""Head types: each one class with its features, batches, module, loss and dev metrics."""

from align.train.heads.base import IGNORE, Example, Feature, Head, HeadOptions
from align.train.heads.classification import CLASSIFICATION
from align.train.heads.extractive_qa import EXTRACTIVE_QA
from align.train.heads.multiple_choice import MULTIPLE_CHOICE
from align.train.heads.tagging import TAGGING

HEADS: dict[str, Head] = {
    h.name: h for h in (CLASSIFICATION, MULTIPLE_CHOICE, EXTRACTIVE_QA, TAGGING)
}

__all__ = [
    "CLASSIFICATION",
    "EXTRACTIVE_QA",
    "HEADS",
    "IGNORE",
    "MULTIPLE_CHOICE",
    "TAGGING",
    "Example",
    "Feature",
    "Head",
    "HeadOptions",
]
