"""``bible-paraphrase``: English paraphrase classification built offline from Bible editions.

Positive: one verse in two different English editions (KJV, WEB, BBE). Negative: a verse paired
with another verse, half of them hard negatives from the same chapter. Only Old Testament
verses are used (books 1-32 train, 33-39 dev), disjoint from the New-Testament retrieval demo
sets, so evaluation is never contaminated.
"""

from __future__ import annotations

import random
from pathlib import Path

from align.data.bible import TRAIN_BOOKS, load_edition
from align.train.heads import CLASSIFICATION
from align.train.tasks.base import Example, TaskSpec

ENGLISH_EDITIONS = ("k", "4", "3")
DEV_BOOKS = range(33, 40)
SIZES = {"train": 12000, "dev": 1000}


def read_bible_paraphrase(path: Path | None, split: str, spec: TaskSpec) -> list[Example]:
    editions = {code: load_edition(code) for code in ENGLISH_EDITIONS}
    books = DEV_BOOKS if split == "dev" else range(TRAIN_BOOKS.start, DEV_BOOKS.start)
    keys = sorted(set.intersection(*(set(e) for e in editions.values())))
    keys = [k for k in keys if k[0] in books]
    by_chapter: dict[tuple[int, int], list] = {}
    for key in keys:
        by_chapter.setdefault(key[:2], []).append(key)
    rng = random.Random(f"bible-paraphrase-{split}")
    out = []
    for i in range(min(SIZES[split], 2 * len(keys))):
        key = rng.choice(keys)
        first, second = rng.sample(ENGLISH_EDITIONS, 2)
        if i % 2 == 0:
            other, label = key, 1
        else:
            chapter = [k for k in by_chapter[key[:2]] if k != key]
            other = rng.choice(chapter) if chapter and i % 4 == 1 else rng.choice(keys)
            label = 0 if other != key else 1
        out.append(
            {"text": editions[first][key], "text_b": editions[second][other], "label": label}
        )
    return out


TASKS = [
    TaskSpec(
        name="bible-paraphrase",
        head=CLASSIFICATION,
        description="offline English paraphrase classification, KJV/WEB/BBE verse pairs (OT)",
        files={},
        read=read_bible_paraphrase,
        metric="accuracy",
        labels=("not_paraphrase", "paraphrase"),
        options={"builtin": True},
    ),
]
