"""The paper's cross-task figure: checkpoints x target tasks, each the change from the base.

Reads ``align compare`` results (one per target task, e.g. Tatoeba and BUCC, each with two or
more checkpoints) and draws ``align.report.figures.cross_task``; prints the table as text.

    python scripts/fig_cross_task.py results/compare-tatoeba-*.json results/compare-bucc-*.json \
        --out figures/cross_task.png
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from align.compare.crosstask import text
from align.errors import AlignError
from align.options import check_fields, option
from align.report.figures import cross_task
from align.results import load_result


@dataclass
class FigureConfig:
    """The script's options, checked as ``align report`` checks its own."""

    alpha: float = option(0.05, "significance level (adjusted p-values)", above=0, below=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, nargs="+", help="align compare results JSON files")
    ap.add_argument("--out", type=Path, default=Path("cross_task.png"))
    ap.add_argument("--alpha", type=float, default=0.05)
    args = ap.parse_args()
    try:
        check_fields(FigureConfig(args.alpha))
        if args.out.is_dir():
            raise AlignError(f"--out {args.out}: is a directory; name the PNG file")
        results = [load_result(p) for p in args.results]
        print(text(results, args.alpha, args.results))
        print(cross_task(results, args.out, args.alpha, args.results))
    except AlignError as exc:
        print(f"error: {exc.for_flags({'alpha': '--alpha'})}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
