"""``align demo``: the motivating paper's loop, offline, in one command.

Baseline retrieval of the default model on the Bible demo set -> ``bible-paraphrase``
intermediate training (English paraphrase pairs from the Old Testament) -> the same evaluation
of the new checkpoint -> ``align compare`` (every alignment probe of both models, paired
statistics, attribution, a block-transplant sweep on a subsample) -> ``align report``.
Each stage prints a progress line; a finished stage is reused when the demo is run again
(training resumes from its last saved state), so an interrupted demo continues.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from align._io import check_output_dir, write_json_atomic
from align.commands import compare, report, retrieve
from align.commands.base import RunResult, option
from align.errors import AlignError
from align.results import load_result

log = logging.getLogger(__name__)

HELP = "the whole loop offline: baseline -> intermediate training -> compare -> HTML report"


@dataclass(frozen=True)
class Profile:
    langs: str
    n: int
    steps: int
    max_length: int
    eval_examples: int
    transplant_n: int
    n_boot: int
    n_boot_spearman: int


PROFILES = {
    "quick": Profile("de,fr", 200, 20, 64, 100, 24, 300, 60),
    "full": Profile("de,fr,es,ru,ar,vi", 1000, 150, 128, 500, 100, 1000, 200),
}


@dataclass
class DemoConfig:
    out: Path = option(Path("demo"), "directory of every output (rerun to resume)")
    quick: bool = option(False, "a small run (2 languages, 200 verses, 20 steps): minutes")
    model: str | None = option(None, "base model (default: offline multilingual-e5-small)")
    langs: str | None = option(None, "override the profile's languages")
    n: int | None = option(None, "override the profile's verses per language")
    steps: int | None = option(None, "override the profile's training steps")
    seed: int = option(0, "seed of data, training and statistics")
    save_steps: int = option(20, "training: save a resumable state every this many steps")
    progress: bool = option(True, "progress bars (the CLI shows them on a terminal)", cli=False)

    def profile(self) -> Profile:
        base = PROFILES["quick" if self.quick else "full"]
        return Profile(
            self.langs or base.langs,
            self.n or base.n,
            self.steps or base.steps,
            base.max_length,
            base.eval_examples,
            min(base.transplant_n, self.n or base.n),
            base.n_boot,
            base.n_boot_spearman,
        )

    def validate(self) -> None:
        for flag, value in (("--n", self.n), ("--steps", self.steps)):
            if value is not None and value < 1:
                raise AlignError(f"{flag} {value}: must be at least 1")
        if self.save_steps < 1:
            raise AlignError(f"--save-steps {self.save_steps}: must be at least 1")
        check_output_dir(self.out)


Config = DemoConfig


def _record(cfg: DemoConfig) -> dict[str, Any]:
    return {"model": cfg.model, "seed": cfg.seed, "profile": asdict(cfg.profile())}


def _check_resume(cfg: DemoConfig) -> None:
    """A demo directory holds one run: rerunning with other settings would mix its stages."""
    path = Path(cfg.out) / "demo.json"
    if path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved != _record(cfg):
            raise AlignError(
                f"--out {cfg.out} holds a demo run with other settings ({saved['profile']}); "
                "choose another --out, or rerun with the same flags to resume it"
            )
    else:
        write_json_atomic(path, _record(cfg))


def _done(path: Path) -> bool:
    try:
        load_result(path)
    except AlignError:
        return False
    return True


def _encode_fields(cfg: DemoConfig, p: Profile, results: Path) -> dict[str, Any]:
    return {
        "langs": p.langs,
        "demo_n": p.n,
        "seed": cfg.seed,
        "out": results,
        "progress": cfg.progress,
    }


def stages(cfg: DemoConfig) -> list[tuple[str, Path, Any]]:
    """(title, the file that marks the stage done, the call) of every stage, in order."""
    p, out = cfg.profile(), Path(cfg.out)
    results, ckpt = out / "results", out / "checkpoint"
    common = _encode_fields(cfg, p, results)
    base_name = "multilingual-e5-small" if cfg.model is None else Path(cfg.model).resolve().name
    from align.train.config import TrainConfig

    train_cfg = TrainConfig(
        tasks="bible-paraphrase",
        model=cfg.model,
        out=ckpt,
        max_steps=p.steps,
        batch_size=16,
        lr=3e-5,
        max_length=p.max_length,
        seed=cfg.seed,
        freeze_embeddings=True,
        save_steps=cfg.save_steps,
        max_train_examples=p.steps * 16,  # one pass: featurize no more than is trained on
        max_eval_examples=p.eval_examples,
        progress=cfg.progress,
    )

    def train() -> None:
        from align.train.trainer import train as train_model

        resume = (ckpt / "train_run.json").is_file()
        if resume:
            log.info("resuming the interrupted training in %s", ckpt)
        train_model(TrainConfig(**{**asdict(train_cfg), "resume": resume}))

    compare_cfg = compare.CompareConfig(
        **common,
        base=cfg.model,
        ckpt=[str(ckpt)],
        transplant=True,
        transplant_max_n=p.transplant_n,
        n_boot=p.n_boot,
        n_boot_spearman=p.n_boot_spearman,
    )
    compare_file = results / f"compare-tatoeba-{base_name}-vs-checkpoint.json"
    models = (("base", cfg.model, base_name), ("tuned", str(ckpt), "checkpoint"))
    evaluations = [
        (
            f"{title} model: retrieval by layer",
            results / f"retrieve-tatoeba-{name}.json",
            functools.partial(retrieve.run, retrieve.RetrieveConfig(ckpt=spec, **common)),
        )
        for title, spec, name in models
    ]
    report_inputs = [compare_file, results / f"retrieve-tatoeba-{base_name}.json"]
    return [
        evaluations[0],
        ("intermediate training (bible-paraphrase)", ckpt / "align_meta.json", train),
        evaluations[1],
        (
            "compare base vs tuned (with block transplant)",
            compare_file,
            lambda: compare.run(compare_cfg),
        ),
        (
            "HTML report",
            out / "report.html",
            lambda: report.run(report.ReportConfig(results=report_inputs, out=out / "report.html")),
        ),
    ]


def headline(compare_path: Path) -> list[str]:
    """Three findings from the comparison's summary: biggest loss, biggest gain, best tracker."""
    result = load_result(compare_path)
    summary = next(iter(result["summary"].values()))
    lines = []
    for kind in ("losses", "gains"):
        found = summary[kind]
        if found:
            r = found[0]
            lines.append(
                f"largest significant {kind[:-1] if kind == 'gains' else 'loss'}: {r['lang']} "
                f"layer {r['layer']}, {r['base']:.3f} → {r['tuned']:.3f} "
                f"(Δ {r['value']:+.3f}, 95% CI [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}], "
                f"adjusted p {r['p_adjusted']:.2g})"
            )
        else:
            lines.append(f"no significant {kind[:-1] if kind == 'gains' else 'loss'} in any layer")
    tracker = summary.get("best_tracker")
    if tracker:
        other = tracker["metric"].split("_vs_", 1)[1]
        ci = ""
        if tracker.get("ci_low") is not None:
            ci = f" [{tracker['ci_low']:+.2f}, {tracker['ci_high']:+.2f}]"
        lines.append(
            f"the change in {other} tracks the change in retrieval best "
            f"(Spearman ρ {tracker['value']:+.2f}{ci})"
        )
    return lines


def run(cfg: DemoConfig) -> RunResult:
    cfg.validate()
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    _check_resume(cfg)
    plan = stages(cfg)
    for number, (title, marker, call) in enumerate(plan, start=1):
        prefix = f"[{number}/{len(plan)}] {title}"
        reusable = marker.suffix != ".json" or marker.name == "align_meta.json" or _done(marker)
        if marker.is_file() and reusable:
            log.info("%s: done before, reused (%s)", prefix, marker)
            continue
        log.info("%s ...", prefix)
        start = time.perf_counter()
        call()
        log.info("%s: done in %.0f s", prefix, time.perf_counter() - start)
    compare_file = plan[3][1]
    findings = headline(compare_file)
    report_path = plan[4][1]
    text = [f"report: {report_path}", "headline findings:"]
    text += [f"  {i}. {line}" for i, line in enumerate(findings, 1)]
    summary = {"report": str(report_path), "findings": findings}
    return RunResult(summary, report_path, text="\n".join(text))
