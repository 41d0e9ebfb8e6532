"""``align data bucc``: BUCC 2018 from the release archives a user downloaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from align._io import write_json_atomic
from align.commands.base import RunResult, option
from align.data import bucc_release, hub
from align.data.langs import parse_langs
from align.data.sets import DATA_META, check_data_out, write_set
from align.errors import AlignError
from align.options import check_fields

HELP = "BUCC 2018 from its release archives (bucc2018-{lang}-en.{sample,training}-gold.tar.bz2)"


@dataclass
class BuccDataConfig:
    out: Path | None = option(None, "output directory", required=True)
    from_archives: list[Path] = option(
        [],
        "a BUCC 2018 release archive, bucc2018-{lang}-en.{sample|training}-gold.tar.bz2 "
        "(repeatable)",
        flag="--from",
        append=True,
        parse=Path,
        metavar="ARCHIVE",
    )
    langs: str | None = option(
        None,
        "comma list (de,fr) or xtreme (XTREME's 4) of the archives' languages to unpack "
        "(default: every archive given)",
    )
    source: str | None = option(
        None, "a hub copy by name: refused (the hub holds BUCC's gold pairs only)"
    )

    def validate(self) -> list[bucc_release.BuccArchive]:
        if self.source is not None:
            raise AlignError(f"--source {self.source}: {hub.BUCC_FROM_HUB}")
        if self.out is None:
            raise AlignError("--out: required")
        check_fields(self)
        if not self.from_archives:
            raise AlignError(
                "--from: give the BUCC 2018 release archives "
                "(bucc2018-{lang}-en.{sample,training}-gold.tar.bz2)"
            )
        for archive in map(Path, self.from_archives):
            if not archive.is_file():
                raise AlignError(f"--from {archive}: file not found")
        langs = None if self.langs is None else parse_langs(self.langs, "iso639-1")
        picked = bucc_release.pick_archives([Path(a) for a in self.from_archives], langs)
        check_data_out(Path(self.out))
        return picked


Config = BuccDataConfig


def run(cfg: BuccDataConfig) -> RunResult:
    archives = cfg.validate()
    out = Path(cfg.out)  # type: ignore[arg-type]
    written: dict = {}

    def build(tmp: Path) -> None:
        written.update(bucc_release.unpack_bucc(tmp, archives))
        write_json_atomic(tmp / DATA_META, {"source": "BUCC 2018 release", "unpacked": written})

    write_set(out, build)
    files = sum(len(v) for v in written.values())
    text = f"unpacked {len(written)} BUCC 2018 archive(s) ({files} files) to {out}"
    return RunResult({"out": str(out), "unpacked": written}, out, text=text)
