"""``align report``: a self-contained HTML report from results files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from align.commands.base import RunResult, option
from align.errors import AlignError

HELP = "one self-contained HTML page (figures embedded) from results files"


@dataclass
class ReportConfig:
    results: list[Path] = option(
        [], "results JSON files (align compare, retrieve, probe, cka)", positional="+"
    )
    out: Path = option(Path("report.html"), "the HTML file to write")
    title: str | None = option(None, "page title (default: model and data)")
    alpha: float = option(0.05, "significance level for marking changes (adjusted p-values)")

    def validate(self) -> None:
        if not self.results:
            raise AlignError("align report: give at least one results file")
        if not 0 < self.alpha < 1:
            raise AlignError(f"--alpha {self.alpha}: must lie in (0, 1)")
        if Path(self.out).is_dir():
            raise AlignError(f"--out {self.out}: is a directory; name the HTML file")


Config = ReportConfig


def run(cfg: ReportConfig) -> RunResult:
    from align.report.html import write_report

    cfg.validate()
    path = write_report(list(cfg.results), Path(cfg.out), cfg.title, cfg.alpha)
    return RunResult({"report": str(path), "results": [str(p) for p in cfg.results]}, path)
