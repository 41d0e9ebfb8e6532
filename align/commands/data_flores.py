"""``align data flores``: FLORES+ (``openlanguagedata/flores_plus``) in the multi-way layout,
from a local copy laid out as the hub keeps it, or downloaded with the user's hub token (the
dataset is gated: its terms must be accepted on the hub first)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from align._io import write_json_atomic
from align.commands.base import RunResult, option
from align.data import multiway
from align.data.sets import DATA_META, check_data_out, write_set
from align.errors import AlignError, install_hint
from align.options import check_fields

HELP = (
    f"FLORES+ ({multiway.FLORES_REPO}) in the multi-way layout ({{code}}.txt per language), "
    "from a local copy (--from) or the hub (gated: needs your token)"
)


@dataclass
class FloresDataConfig:
    out: Path | None = option(None, "output directory", required=True)
    split: Literal["dev", "devtest"] = option("dev", "the split: dev (997) or devtest (1,012)")
    langs: str = option(
        "eng_Latn,deu_Latn,fra_Latn",
        "comma list of FLORES+ codes (deu_Latn, zho_Hans, ...), or flores: every language of "
        "the split",
    )
    from_dir: Path | None = option(
        None,
        "a local copy laid out as the hub repository ({split}/{code}.jsonl) instead of downloading",
        flag="--from",
        metavar="DIR",
    )

    def validate(self) -> None:
        if self.out is None:
            raise AlignError("--out: required")
        check_fields(self)
        check_data_out(Path(self.out))
        if self.from_dir is not None and not Path(self.from_dir).is_dir():
            raise AlignError(f"--from {self.from_dir}: not a directory")

    def chosen(self, source: Path) -> list[str]:
        if self.langs.strip() == "flores":
            return multiway.flores_langs(source, self.split)
        langs = list(dict.fromkeys(p.strip() for p in self.langs.split(",") if p.strip()))
        if len(langs) < 2:
            raise AlignError("--langs: a multi-way set needs at least two languages")
        return langs


Config = FloresDataConfig


def _download(cfg: FloresDataConfig) -> Path:
    """The split's files from the hub into the hub's cache (one line when no token is set or
    the hub cannot be reached)."""
    from align.data.hub import hub_unreachable

    try:
        import huggingface_hub
    except ImportError as exc:
        raise AlignError(f"FLORES+ from the hub needs {install_hint('datasets')}") from exc
    if not huggingface_hub.get_token():
        raise AlignError(
            f"{multiway.FLORES_REPO} is gated: accept its terms on the hub, then log in "
            "(huggingface-cli login, or set HF_TOKEN); or pass a local copy with --from"
        )
    why = hub_unreachable()
    if why is not None:
        raise AlignError(
            f"{multiway.FLORES_REPO}: the hub cannot be reached ({why}); pass a local copy with "
            "--from"
        )
    pattern = f"{cfg.split}/*.jsonl" if cfg.langs.strip() == "flores" else None
    names = None if pattern else [f"{cfg.split}/{c.strip()}.jsonl" for c in cfg.langs.split(",")]
    try:
        return Path(
            huggingface_hub.snapshot_download(
                multiway.FLORES_REPO, repo_type="dataset", allow_patterns=names or [pattern]
            )
        )
    except Exception as exc:  # the network, the gate: one line, the source named
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise AlignError(f"{multiway.FLORES_REPO}: could not be downloaded ({reason})") from exc


def run(cfg: FloresDataConfig) -> RunResult:
    cfg.validate()
    source = Path(cfg.from_dir) if cfg.from_dir is not None else _download(cfg)
    langs = cfg.chosen(source)
    texts = multiway.read_flores(source, cfg.split, langs)  # read and checked before writing
    out = Path(cfg.out)  # type: ignore[arg-type]

    def build(tmp: Path) -> None:
        multiway.write_multiway(tmp, texts)
        meta = {
            "source": multiway.FLORES_REPO,
            "task": "parallel",
            "split": cfg.split,
            "langs": langs,
            "from": str(source),
            "sentences": len(next(iter(texts.values()))),
        }
        write_json_atomic(tmp / DATA_META, meta)

    write_set(out, build)
    n = len(next(iter(texts.values())))
    text = f"wrote FLORES+ {cfg.split} ({len(langs)} languages x {n} sentences) to {out}"
    return RunResult({"langs": langs, "out": str(out), "split": cfg.split}, out, text=text)
