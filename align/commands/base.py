"""What every command returns (and the ``option`` field helper configs are written with)."""

from __future__ import annotations

import json
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

    @property
    def examples(self) -> list[dict[str, Any]]:
        """The per-example rows (read from the JSONL beside the results; empty if none)."""
        name = self.result.get("examples") if isinstance(self.result, dict) else None
        if not name or self.path is None:
            return []
        lines = (self.path.parent / name).read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines]

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
