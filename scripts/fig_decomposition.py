"""Figure 7: what kind of change in the geometry carries the change in retrieval.

Reads a results file of `align compare` and draws the figure (PNG + PDF); nothing is recomputed.

    python scripts/fig_decomposition.py RESULTS.json --out FIGURE.pdf [--model CHECKPOINT]
"""

from __future__ import annotations

import sys

from align.report.scripts import figure_script

if __name__ == "__main__":
    sys.exit(figure_script("decomposition", sys.argv[1:]))
