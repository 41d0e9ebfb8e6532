"""Figure: pair_heatmap.

Reads a results file of `align compare` and draws the figure (PNG + PDF); nothing is recomputed.

    python scripts/fig_pair_heatmap.py RESULTS.json --out FIGURE.pdf
"""

from __future__ import annotations

import sys

from align.report.scripts import figure_script

if __name__ == "__main__":
    sys.exit(figure_script("pair_heatmap", sys.argv[1:]))
