"""The paper style every figure is drawn in: one column of a two-column paper, small type, no
top or right spines; the helpers that open and save a figure in it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from align.report.plots import _pyplot, _save

COLUMN = 3.4  # inches: one column of a two-column paper
FULL = 7.0
RC = {
    "font.size": 7,
    "axes.titlesize": 7,
    "axes.labelsize": 7,
    "legend.fontsize": 6,
    "xtick.labelsize": 6,
    "ytick.labelsize": 6,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def styled(draw: Callable) -> Callable:
    """Draw under the paper style (font sizes for one column, no top/right spines)."""

    @functools.wraps(draw)
    def wrapper(*args: Any, **kwargs: Any) -> Path:
        with _pyplot().rc_context(RC):
            return draw(*args, **kwargs)

    return wrapper


def _figure(width: float, height: float, ncols: int = 1, nrows: int = 1, **kw):
    return _pyplot().subplots(nrows, ncols, figsize=(width, height), dpi=200, squeeze=False, **kw)


def _finish(fig: Any, out: Path) -> Path:
    fig.tight_layout(pad=0.4)
    return _save(fig, Path(out))
