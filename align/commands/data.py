"""``align data bible``: Tatoeba- or BUCC-layout sets from the installed Bible corpus."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from align.commands.base import RunResult, option
from align.data import bible
from align.data.langs import iso1
from align.data.sets import check_data_out, write_set
from align.errors import AlignError
from align.options import check_fields, check_seed

HELP = "Tatoeba-, BUCC- or multi-way layout set from the installed Bible corpus"


@dataclass
class BibleDataConfig:
    out: Path | None = option(None, "output directory", required=True)
    langs: str = option("de,fr,es,ru,ar,vi", "comma list of languages (ISO 639-1 or -3)")
    n: int = option(1000, "sentences (gold pairs for --bucc) per language")
    bucc: bool = option(False, "BUCC layout: dev/test splits with distractors")
    multiway: bool = option(
        False, "multi-way layout: one {code}.txt per language, English (eng.txt) among them"
    )
    distractor_ratio: float = option(
        1.0, "BUCC: unpaired sentences per gold pair, each side", low=0, high=1000
    )
    english: str = option(bible.DEFAULT_ENGLISH, "English edition: k = KJV, 4 = WEB, 3 = BBE")
    allow_copyrighted: bool = option(False, "also use copyrighted editions (local use only)")
    seed: int = option(0, "seed of the verse sample")

    def validate(self) -> list[str]:
        if self.out is None:
            raise AlignError("--out: required")
        check_fields(self)
        if self.n < 1:
            raise AlignError(f"--n {self.n}: must be at least 1")
        if self.distractor_ratio < 0:
            raise AlignError(f"--distractor-ratio {self.distractor_ratio}: must be >= 0")
        check_seed(self.seed)
        check_data_out(Path(self.out))
        bible.english_edition(self.english, self.allow_copyrighted)
        langs = [iso1(s.strip()) for s in self.langs.split(",") if s.strip()]
        if not langs:
            raise AlignError("--langs: no language given")
        if self.bucc and self.multiway:
            raise AlignError("--bucc and --multiway: choose one layout")
        if "en" in langs and not self.multiway:
            raise AlignError(
                "--langs en: English is the other side of every pair (--english chooses its "
                "edition); name the languages to pair with it"
            )
        for lang in langs:
            if lang not in ("en", "eng"):
                bible.edition_for(lang, self.allow_copyrighted)
        return langs


Config = BibleDataConfig


def _build(cfg: BibleDataConfig, langs: list[str], out: Path) -> None:
    if cfg.multiway:
        bible.build_multiway_demo(out, langs, cfg.n, cfg.seed, cfg.english, cfg.allow_copyrighted)
    elif cfg.bucc:
        bible.build_bucc_demo(
            out,
            langs,
            cfg.n,
            cfg.seed,
            cfg.english,
            cfg.allow_copyrighted,
            cfg.distractor_ratio,
        )
    else:
        bible.build_tatoeba_demo(out, langs, cfg.n, cfg.seed, cfg.english, cfg.allow_copyrighted)


def run(cfg: BibleDataConfig) -> RunResult:
    """Build the set in a folder beside ``--out`` and put it in place of whatever set was
    there (the whole set: no language of an earlier run is left beside the new ones), under
    the lock every writing command takes."""
    langs = cfg.validate()
    out = Path(cfg.out)  # type: ignore[arg-type]
    write_set(out, lambda tmp: _build(cfg, langs, tmp))
    layout = "multi-way" if cfg.multiway else "BUCC" if cfg.bucc else "Tatoeba"
    meta = {"layout": layout, "langs": langs, "out": str(out)}
    return RunResult(meta, out, text=f"wrote a {layout}-layout Bible set to {out}")
