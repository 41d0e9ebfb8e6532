"""``align report``: a self-contained HTML report from results files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from align._io import check_output_dir
from align.commands.base import RunResult, option
from align.errors import AlignError
from align.options import check_fields

HELP = "one self-contained HTML page (figures embedded) from results files"


@dataclass
class ReportConfig:
    results: list[Path] = option(
        [], "results JSON files (align compare, retrieve, probe, cka)", positional="+"
    )
    out: Path = option(Path("report.html"), "the HTML file to write")
    title: str | None = option(None, "page title (default: model and data)")
    alpha: float = option(
        0.05, "significance level for marking changes (adjusted p-values)", above=0, below=1
    )

    def validate(self) -> None:
        check_fields(self)
        if not self.results:
            raise AlignError("align report: give at least one results file")
        for path in map(Path, self.results):
            if path.is_dir():
                raise AlignError(f"{path}: is a directory; give the results JSON files in it")
            if not path.is_file():
                raise AlignError(f"{path}: results file not found")
        if not 0 < self.alpha < 1:
            raise AlignError(f"--alpha {self.alpha}: must lie in (0, 1)")
        out = Path(self.out)
        if out.is_dir():
            raise AlignError(f"--out {self.out}: is a directory; name the HTML file")
        if out.suffix.lower() not in (".html", ".htm"):
            what = "exists and is not" if out.exists() else "is not named as"
            raise AlignError(f"--out {self.out}: {what} an HTML file (.html); not overwritten")
        check_output_dir(out.parent)


Config = ReportConfig


def run(cfg: ReportConfig) -> RunResult:
    from align.report.html import write_report

    cfg.validate()
    path = write_report(list(cfg.results), Path(cfg.out), cfg.title, cfg.alpha)
    return RunResult({"report": str(path), "results": [str(p) for p in cfg.results]}, path)
