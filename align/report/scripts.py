"""The command line of ``scripts/fig_*.py``: one results file in, one figure out."""

from __future__ import annotations

import argparse
import inspect
import logging
from collections.abc import Sequence
from pathlib import Path

from align.errors import AlignError
from align.report.figures import FIGURES
from align.results import load_result

log = logging.getLogger("align")


def figure_script(name: str, argv: Sequence[str]) -> int:
    """Parse ``RESULTS.json --out F [options]``, draw figure ``name``; 2 on bad input."""
    draw = FIGURES[name]
    parser = argparse.ArgumentParser(
        prog=f"fig_{name}", description=(draw.__doc__ or "").strip().splitlines()[0]
    )
    parser.add_argument("results", type=Path, help="results JSON of align compare")
    parser.add_argument("--out", type=Path, required=True, help="figure path (.pdf or .png)")
    params = inspect.signature(draw).parameters
    for option in ("model", "lang", "metric"):
        if option in params:
            parser.add_argument(f"--{option}", default=params[option].default)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        result = load_result(args.results)
        extra = {k: getattr(args, k) for k in ("model", "lang", "metric") if k in params}
        png = draw(result, args.out.with_suffix(".png"), **extra)
    except AlignError as exc:
        log.error("%s", exc)
        return 2
    log.info("wrote %s and %s", png, png.with_suffix(".pdf"))
    return 0
