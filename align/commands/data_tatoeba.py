"""``align data tatoeba``: XTREME's Tatoeba sets by name, from the hub or a local copy of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from align._io import write_json_atomic
from align.commands.base import RunResult, option
from align.data import hub
from align.data.langs import parse_langs
from align.data.sets import DATA_META, check_data_out, write_set
from align.errors import AlignError
from align.options import check_fields

HELP = (
    "Tatoeba in XTREME's layout from the hub dataset google/xtreme (a language it lacks: "
    "mteb/tatoeba-bitext-mining), or from a local copy laid out like them (--from)"
)


@dataclass
class TatoebaDataConfig:
    out: Path | None = option(None, "output directory", required=True)
    source: Literal["xtreme"] = option("xtreme", "the data set: xtreme (hub: google/xtreme)")
    langs: str = option(
        "xtreme",
        "comma list, or xtreme: XTREME's 36 Tatoeba languages (from google/xtreme; any other "
        "of mteb/tatoeba-bitext-mining's comes from there)",
    )
    from_dir: Path | None = option(
        None,
        "a local copy laid out like the hub repositories (tatoeba.{lang}/validation-*.parquet; "
        "mteb's {lang}-eng/test-*.parquet) instead of downloading",
        flag="--from",
        metavar="DIR",
    )

    def validate(self) -> list[str]:
        if self.out is None:
            raise AlignError("--out: required")
        check_fields(self)
        check_data_out(Path(self.out))
        if self.from_dir is not None and not Path(self.from_dir).is_dir():
            raise AlignError(f"--from {self.from_dir}: not a directory")
        return parse_langs(self.langs, "iso639-3", hub=True)


Config = TatoebaDataConfig


def run(cfg: TatoebaDataConfig) -> RunResult:
    langs = cfg.validate()
    out = Path(cfg.out)  # type: ignore[arg-type]
    read: dict = {}

    def build(tmp: Path) -> None:
        read.update(hub.write_tatoeba_from_hub(tmp, langs, cfg.from_dir))
        repos = sorted({info["repo"] for info in read.values()})
        meta = {"source": ", ".join(repos), "task": "tatoeba", "langs": langs, "read": read}
        write_json_atomic(tmp / DATA_META, meta)

    write_set(out, build)
    repos = ", ".join(sorted({info["repo"] for info in read.values()}))
    text = f"wrote Tatoeba ({len(langs)} languages) in XTREME's layout from {repos} to {out}"
    return RunResult({"langs": langs, "out": str(out), "read": read}, out, text=text)
