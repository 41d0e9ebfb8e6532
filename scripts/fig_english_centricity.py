"""Figure: english_centricity.

Reads a results file of `align compare` and draws the figure (PNG + PDF); nothing is recomputed.

    python scripts/fig_english_centricity.py RESULTS.json --out FIGURE.pdf
"""

from __future__ import annotations

import sys

from align.report.scripts import figure_script

if __name__ == "__main__":
    sys.exit(figure_script("english_centricity", sys.argv[1:]))
