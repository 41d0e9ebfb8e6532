"""``align demo``: the motivating paper's loop, offline, in one command.

Baseline retrieval of the default model on the Bible demo set -> ``bible-paraphrase``
intermediate training (English paraphrase pairs from the Old Testament) -> the same evaluation
of the new checkpoint -> ``align compare`` (every alignment probe of both models, paired
statistics, attribution, a block-transplant sweep on a subsample; BUCC mining; every language
pair of the same verses, English among them) -> ``align report``.
Each stage prints a progress line. ``demo.json`` records, per finished stage, the file it wrote
(taken from the stage's own result) and the fingerprints of its inputs; a stage is reused when
the demo runs again only if that file is still whole and its inputs are unchanged (a replaced
checkpoint re-runs everything after training), and training resumes from its last saved state.
The demo drives the other commands through the command registry, never by importing them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from align import metrics
from align._io import OutputLock, check_cache_dir, check_output_dir, write_json_atomic
from align.commands import run_command
from align.commands.base import RunResult, option
from align.data.langs import parse_langs, resolve
from align.errors import AlignError
from align.models.loading import is_default_model
from align.options import check_fields, check_seed
from align.results import Result, load_result
from align.retrieval import tasks

log = logging.getLogger(__name__)

HELP = "the whole loop offline: baseline -> intermediate training -> compare -> HTML report"
STATE = "demo.json"
MIN_N = 10  # verses per language the transplant sweep (and the statistics) need


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
    bucc_n: int  # gold pairs per BUCC split (as many unpaired sentences again on each side)


PROFILES = {
    "quick": Profile("de,fr", 200, 20, 64, 100, 24, 300, 60, 100),
    "full": Profile("de,fr,es,ru,ar,vi", 1000, 150, 128, 500, 100, 1000, 200, 200),
}


@dataclass
class DemoConfig:
    out: Path | None = option(
        None,
        "directory of every output, rerun to resume (default: demo, or demo-quick with "
        "--quick: a quick run never meets a full one's folder)",
    )
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
            min(base.bucc_n, self.n or base.bucc_n),
        )

    def __post_init__(self) -> None:
        if self.out is None:
            self.out = Path("demo-quick" if self.quick else "demo")

    def validate(self) -> None:
        """The whole plan, before anything is written: flags, languages, the output folder."""
        check_fields(self)
        for flag, value in (("--n", self.n), ("--steps", self.steps)):
            if value is not None and value < 1:
                raise AlignError(f"{flag} {value}: must be at least 1")
        if self.n is not None and self.n < MIN_N:
            raise AlignError(
                f"--n {self.n}: the demo's statistics and block-transplant sweep need at least "
                f"{MIN_N} verses per language"
            )
        if self.save_steps < 1:
            raise AlignError(f"--save-steps {self.save_steps}: must be at least 1")
        check_seed(self.seed)
        parse_langs(self.profile().langs, tasks.get("tatoeba").lang_codes)
        check_output_dir(self.out)
        out = Path(self.out)
        if out.is_dir() and any(out.iterdir()) and not (out / STATE).is_file():
            raise AlignError(
                f"--out {out}: a non-empty folder that holds no demo run; choose an empty or new "
                "folder (a demo folder is resumed by running the same command again)"
            )
        if is_default_model(self.model):
            check_cache_dir()


Config = DemoConfig


@dataclass
class Stage:
    """One step of the demo: ``call`` runs it and returns the file it wrote; ``inputs`` gives
    the fingerprints it depends on (read when the stage is about to be reused or run)."""

    key: str
    title: str
    call: Callable[[], Path]
    inputs: Callable[[], dict[str, str]] = field(default=lambda: {})
    reusable: Callable[[Path], bool] = field(default=lambda path: path.is_file())


def _record(cfg: DemoConfig) -> dict[str, Any]:
    return {"model": cfg.model, "seed": cfg.seed, "profile": asdict(cfg.profile())}


def _read_state(cfg: DemoConfig) -> dict[str, Any]:
    """The demo directory's state; a run with other settings is refused, naming what differs."""
    path = Path(cfg.out) / STATE
    if not path.is_file():
        return {"settings": _record(cfg), "stages": {}}
    saved = json.loads(path.read_text(encoding="utf-8"))
    settings = saved.get("settings", saved)
    if settings != _record(cfg):
        raise AlignError(
            f"--out {cfg.out} holds a demo run with other settings "
            f"({_differences(settings, _record(cfg))}); choose another --out, or rerun with the "
            "same flags to resume it"
        )
    return {"settings": settings, "stages": saved.get("stages", {})}


def _differences(saved: dict[str, Any], asked: dict[str, Any]) -> str:
    """``seed 0 there, 1 now; n 200 there, 60 now``: the settings that differ."""
    flat = {k: v for k, v in saved.items() if k != "profile"} | saved.get("profile", {})
    now = {k: v for k, v in asked.items() if k != "profile"} | asked.get("profile", {})
    diffs = [f"{k} {flat.get(k)!r} there, {now[k]!r} now" for k in now if flat.get(k) != now[k]]
    return "; ".join(diffs) or "an older demo format"


def _results_whole(path: Path) -> bool:
    try:
        load_result(path)
    except AlignError:
        return False
    return True


def _model_fingerprint(spec: str | None) -> str:
    from align.models.loading import model_fingerprint, resolve_model_path

    return model_fingerprint(resolve_model_path(spec)[1])


def _file_sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if Path(path).is_file() else ""


def _encode_fields(cfg: DemoConfig, p: Profile, results: Path) -> dict[str, Any]:
    return {
        "langs": p.langs,
        "demo_n": p.n,
        "seed": cfg.seed,
        "out": results,
        "progress": cfg.progress,
    }


def _train_stage(cfg: DemoConfig, p: Profile, ckpt: Path) -> Stage:
    def call() -> Path:
        resume = (ckpt / "train_run.json").is_file()
        if resume:
            log.info("resuming the interrupted training in %s", ckpt)
        run_command(
            "train",
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
            resume=resume,
        )
        return ckpt / "align_meta.json"

    return Stage(
        "train",
        "intermediate training (bible-paraphrase)",
        call,
        lambda: {"base": _model_fingerprint(cfg.model)},
    )


def _bucc_langs(spec: str) -> list[str]:
    """The demo's languages that BUCC covers (de, fr, ru, zh), as BUCC codes."""
    codes = tasks.get("bucc").lang_codes
    found = []
    for lang in spec.split(","):
        try:
            found.append(resolve(lang.strip(), codes))
        except AlignError:
            continue
    return list(dict.fromkeys(found))


def stages(cfg: DemoConfig, outputs: dict[str, str]) -> list[Stage]:
    """Every stage, in order; ``outputs`` (stage -> file) is filled in as stages finish."""
    p, out = cfg.profile(), Path(cfg.out)
    results, ckpt = out / "results", out / "checkpoint"
    common = _encode_fields(cfg, p, results)
    base = {"base": lambda: _model_fingerprint(cfg.model)}
    tuned = {"checkpoint": lambda: _model_fingerprint(str(ckpt))}

    def fingerprints(*groups: dict[str, Callable[[], str]]) -> Callable[[], dict[str, str]]:
        return lambda: {k: f() for g in groups for k, f in g.items()}

    def retrieve(spec: str | None) -> Callable[[], Path]:
        return lambda: run_command("retrieve", ckpt=spec, **common).path  # type: ignore[return-value]

    def compare() -> Path:
        fields = {"base": cfg.model, "ckpt": [str(ckpt)], "transplant": True}
        fields |= {"transplant_max_n": p.transplant_n, "n_boot": p.n_boot}
        fields |= {"n_boot_spearman": p.n_boot_spearman}
        return run_command("compare", **common, **fields).path  # type: ignore[return-value]

    bucc_langs = _bucc_langs(p.langs)
    shown = ["compare", "retrieve_base"] + (["compare_bucc"] if bucc_langs else [])
    shown.append("compare_pairs")

    def compare_pairs() -> Path:
        # every language pair of the same verses (English among them): is the change
        # English-centred? The languages' embeddings are the Tatoeba stage's (one cache)
        fields = {"task": "parallel", "base": cfg.model, "ckpt": [str(ckpt)], "probes": False}
        fields |= {"cka_matrix": False, "n_boot": p.n_boot}
        return run_command("compare", **common, **fields).path  # type: ignore[return-value]

    def compare_bucc() -> Path:
        # the cross-task view: the same checkpoint on a second target task (BUCC mining)
        fields = {"task": "bucc", "base": cfg.model, "ckpt": [str(ckpt)], "probes": False}
        fields |= {"cka_matrix": False, "n_boot": p.n_boot, "n_boot_spearman": p.n_boot_spearman}
        fields |= {"langs": ",".join(bucc_langs), "demo_n": p.bucc_n}
        bucc = {k: v for k, v in common.items() if k not in ("langs", "demo_n")}
        return run_command("compare", **bucc, **fields).path  # type: ignore[return-value]

    def report() -> Path:
        inputs = [Path(outputs[k]) for k in shown]
        return run_command("report", results=inputs, out=out / "report.html").path  # type: ignore[return-value]

    def report_inputs() -> dict[str, str]:
        return {k: _file_sha(Path(outputs[k])) for k in shown}

    bucc_stage = Stage(
        "compare_bucc",
        f"compare base vs tuned on BUCC mining ({','.join(bucc_langs)})",
        compare_bucc,
        fingerprints(base, tuned),
        _results_whole,
    )

    return [
        Stage("retrieve_base", "base model: retrieval by layer", retrieve(cfg.model),
              fingerprints(base), _results_whole),
        _train_stage(cfg, p, ckpt),
        Stage("retrieve_tuned", "tuned model: retrieval by layer", retrieve(str(ckpt)),
              fingerprints(tuned), _results_whole),
        Stage("compare", "compare base vs tuned (with block transplant)", compare,
              fingerprints(base, tuned), _results_whole),
        *([bucc_stage] if bucc_langs else []),
        Stage("compare_pairs", "compare base vs tuned on every language pair (English among "
              "them)", compare_pairs, fingerprints(base, tuned), _results_whole),
        Stage("report", "HTML report", report, report_inputs),
    ]  # fmt: skip


def headline(compare_path: Path) -> list[str]:
    """Three findings from the comparison's summary: biggest loss, biggest gain, best tracker."""
    result = Result.load(compare_path)
    summary = result.summary(result.compared[0])
    lines = []
    for kind, word in (("losses", "loss"), ("gains", "gain")):
        found = summary.get(kind) or []
        if found:
            r = found[0]
            lines.append(
                f"largest significant {word}: {r['lang']} layer {r['layer']}, "
                f"{r['base']:.3f} → {r['tuned']:.3f} (Δ {r['value']:+.3f}, 95% CI"
                f"{Result.ci_text(r)}, adjusted p {Result.p_text(r['p_adjusted'])})"
            )
        else:
            lines.append(f"no significant {word} in any layer")
    tracker = summary.get("best_tracker")
    if tracker:
        other = metrics.parse(tracker["metric"]).other
        lines.append(
            f"the change in {other} tracks the change in retrieval best "
            f"(Spearman ρ {tracker['value']:+.2f}{Result.ci_text(tracker, 2)})"
        )
    return lines


def _run_stage(stage: Stage, prefix: str, state: dict[str, Any], save: Callable[[], None]):
    done = state["stages"].get(stage.key)
    inputs = stage.inputs()
    if done and stage.reusable(Path(done["output"])):
        if done.get("inputs") == inputs:
            log.info("%s: done before, reused (%s)", prefix, done["output"])
            return
        log.info("%s: its inputs changed since it ran; running it again", prefix)
    log.info("%s ...", prefix)
    start = time.perf_counter()
    output = stage.call()
    state["stages"][stage.key] = {"output": str(output), "inputs": inputs}
    save()
    log.info("%s: done in %.0f s", prefix, time.perf_counter() - start)


def run(cfg: DemoConfig) -> RunResult:
    cfg.validate()
    state = _read_state(cfg)
    with OutputLock(cfg.out):  # one demo per folder
        return _run(cfg, state)


def _run(cfg: DemoConfig, state: dict[str, Any]) -> RunResult:
    outputs: dict[str, str] = {}

    def save() -> None:
        outputs.update({k: v["output"] for k, v in state["stages"].items()})
        write_json_atomic(Path(cfg.out) / STATE, state)

    plan = stages(cfg, outputs)
    outputs.update({k: v["output"] for k, v in state["stages"].items()})
    for number, stage in enumerate(plan, start=1):
        _run_stage(stage, f"[{number}/{len(plan)}] {stage.title}", state, save)
    findings = headline(Path(outputs["compare"]))
    if "compare_pairs" in outputs:
        pairs = Result.load(Path(outputs["compare_pairs"]))
        if said := pairs.summary(pairs.compared[0]).get("pairs"):
            findings.append(f"every language pair: {said}")
    report_path = Path(outputs["report"])
    text = [f"report: {report_path}", "headline findings:"]
    text += [f"  {i}. {line}" for i, line in enumerate(findings, 1)]
    summary = {"report": str(report_path), "findings": findings}
    return RunResult(summary, report_path, text="\n".join(text))
