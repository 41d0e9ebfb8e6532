"""What every command returns (and the ``option`` field helper configs are written with)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from align.options import option

__all__ = ["RunResult", "option"]


@dataclass
class RunResult:
    """One command's outcome: the results (JSON content), where they went, and what to print."""

    result: dict[str, Any]
    path: Path | None  # the results JSON, checkpoint directory or data directory
    figures: list[Path] = field(default_factory=list)
    text: str = ""  # the table or summary the CLI prints
    examples: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def plot_path(self) -> Path | None:
        return self.figures[0] if self.figures else None

    def render(self) -> str:
        """What ``align`` prints: the text, then the files written."""
        lines = [self.text] if self.text else []
        if self.path is not None:
            lines.append(f"output:  {self.path}")
        lines += [f"figure:  {fig}" for fig in self.figures]
        return "\n".join(lines)
