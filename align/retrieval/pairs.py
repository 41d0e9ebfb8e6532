"""Retrieval between every pair of languages of a multi-way set at one layer, from tiles of one
product of the stacked languages.

Every language's sentences are normalised once and stacked; for each language ``a`` the
similarities to every later language it is paired with come from one product (``a``'s rows
against those languages' rows, in column groups that fit the working budget). One ``n x n``
block serves both directions of a pair: top-1 accuracy ``a -> b`` (each row's best column is
its own line) and ``b -> a`` (each column's best row), and the ratio-margin xSIM error both
ways (Artetxe & Schwenk 2019, as :func:`align.retrieval.tatoeba.xsim_errors` scores it: each
query's ``k`` nearest candidates by cosine, their margins against both sides' mean similarity
to their ``k`` nearest neighbours, the best candidate by margin). Outcomes are per query
sentence, so ``compare`` pairs them as it pairs Tatoeba's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from align.errors import AlignError

BLOCK_BYTES = 256 << 20  # the similarities one product holds at most (float32)
PAIR_METRICS = ("acc_a2b", "xsim_error_a2b")


@dataclass(frozen=True)
class PairOutcomes:
    """Per query sentence of ``a``: its translation in ``b`` found (``acc``) and missed by the
    ratio margin (``xsim_error``)."""

    acc: np.ndarray
    xsim_error: np.ndarray


def ordered_pairs(langs: list[str], spec: str = "all", english: str | None = None):
    """The ordered pairs ``--pairs`` names: ``all`` (every a != b), ``english`` (every language
    with ``english``, both ways), or ``a-b,c-d`` (each named pair, both ways)."""
    if spec == "all":
        return [(a, b) for a in langs for b in langs if a != b]
    if spec == "english":
        if english is None or english not in langs:
            raise AlignError(
                f"--pairs english: no English among the languages ({', '.join(langs)})",
                param="pairs",
            )
        return [p for lang in langs if lang != english for p in ((lang, english), (english, lang))]
    pairs = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        a, sep, b = part.partition("-")
        if not sep or a == b or a not in langs or b not in langs:
            raise AlignError(
                f"--pairs {part!r}: expected two different languages of the set joined by '-' "
                f"(languages: {', '.join(langs)})",
                param="pairs",
            )
        pairs += [(a, b), (b, a)]
    if not pairs:
        raise AlignError("--pairs: no pair given", param="pairs")
    return list(dict.fromkeys(pairs))


def unordered(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Each pair once, in the orientation it is first named (for symmetric measures)."""
    seen: dict[frozenset, tuple[str, str]] = {}
    for pair in pairs:
        seen.setdefault(frozenset(pair), pair)
    return list(seen.values())


def _top1_both_ways(block):
    """Each row's and each column's best (the first of equal ones) is its own line."""
    import torch

    lines = torch.arange(block.shape[0], device=block.device)
    return block.argmax(1) == lines, block.argmax(0) == lines


def _xsim_errors(block, k: int):
    """The ratio-margin miss of every row's query (among its k nearest columns), and of every
    column's (among its k nearest rows)."""
    import torch

    rows_sim, rows_ids = torch.topk(block, k, dim=1)
    cols_sim, cols_ids = torch.topk(block.T, k, dim=1)
    row_means, col_means = rows_sim.mean(1), cols_sim.mean(1)
    lines = torch.arange(block.shape[0], device=block.device)
    ahead = rows_sim / ((row_means[:, None] + col_means[rows_ids]) / 2)
    back = cols_sim / ((col_means[:, None] + row_means[cols_ids]) / 2)
    row_best = rows_ids.gather(1, ahead.argmax(1, keepdim=True))[:, 0]
    col_best = cols_ids.gather(1, back.argmax(1, keepdim=True))[:, 0]
    return row_best != lines, col_best != lines


def pair_outcomes(
    layer: dict[str, np.ndarray],
    pairs: Iterable[tuple[str, str]],
    margin_k: int = 4,
    device: str = "cpu",
) -> dict[tuple[str, str], PairOutcomes]:
    """Every ordered pair's outcomes at one layer (``layer``: each language's ``[n, d]``
    embeddings, line i of each the same sentence)."""
    import torch

    wanted = list(dict.fromkeys(pairs))
    langs = list(layer)
    n = len(next(iter(layer.values())))
    if any(len(x) != n for x in layer.values()):
        raise AlignError("multi-way layers: every language needs the same number of sentences")
    if not 1 <= margin_k <= n:
        raise AlignError(f"margin_k {margin_k}: must lie in [1, {n}]", param="margin_k")
    order = {lang: i for i, lang in enumerate(langs)}
    stacked = torch.nn.functional.normalize(
        torch.as_tensor(np.stack([layer[lang] for lang in langs]), dtype=torch.float32).to(device),
        dim=2,
    )
    partners: dict[str, list[str]] = {}
    for a, b in wanted:
        first, second = (a, b) if order[a] < order[b] else (b, a)
        partners.setdefault(first, [])
        if second not in partners[first]:
            partners[first].append(second)
    group = max(1, BLOCK_BYTES // (4 * n * n))
    found: dict[tuple[str, str], tuple] = {}
    for a, others in partners.items():
        for start in range(0, len(others), group):
            chosen = others[start : start + group]
            keys = stacked[[order[b] for b in chosen]].reshape(-1, stacked.shape[2])
            sims = stacked[order[a]] @ keys.T  # one product: a against every chosen language
            for j, b in enumerate(chosen):
                block = sims[:, j * n : (j + 1) * n]
                acc_ab, acc_ba = _top1_both_ways(block)
                err_ab, err_ba = _xsim_errors(block, margin_k)
                found[(a, b)] = (acc_ab, err_ab)
                found[(b, a)] = (acc_ba, err_ba)
    return {
        pair: PairOutcomes(
            found[pair][0].cpu().numpy().astype(np.float64),
            found[pair][1].cpu().numpy().astype(np.float64),
        )
        for pair in wanted
    }
