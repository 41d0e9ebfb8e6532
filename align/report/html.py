"""``align report``: one self-contained HTML page from results files (figures embedded).

The page holds the findings in plain language with their numbers, the figures (PNG, base64 in
the page: it opens from disk with no server and fetches nothing), tables, and for every run its
model fingerprints, data, resolved config, versions and git hash. Results of different
languages, sentences or layers are refused: a report puts only like-for-like numbers together.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from align import __version__
from align._io import write_text_atomic
from align.errors import AlignError
from align.report.findings import Findings, add_comparison
from align.report.sections import (
    Section,
    compare_section,
    cross_task_section,
    single_section,
)
from align.report.tables import encoding_note
from align.results import Result


def _encoding(result: dict[str, Any]) -> dict[str, Any]:
    cfg = result.get("config", {})
    keys = ("prefix", "pooling", "max_length", "dtype", "exclude_special")
    return {k: cfg.get(k) for k in keys}


def _models(result: dict[str, Any]) -> dict[str, str | None]:
    """Every model a results file names (base, compared, cka's model B) -> its fingerprint."""
    named = [result["model"], *result.get("compared", []), result["model"].get("b") or {}]
    return {m["name"]: m.get("fingerprint") for m in named if m.get("name")}


def _layers_text(result: dict[str, Any]) -> str:
    layers = result["layers"]
    span = ", ".join(map(str, layers)) if len(layers) < 6 else f"{layers[0]}..{layers[-1]}"
    return f"layers {span} of a {result['model'].get('num_layers')}-layer model"


def check_comparable(results: dict[Path, dict[str, Any]]) -> None:
    """Refuse results of different languages, sentences, layers or encodings, or one model
    name with two sets of weights, naming the files and what differs."""
    items = list(results.items())
    first_path, first = items[0]
    facts = {
        "languages": lambda r: ", ".join(sorted(r["languages"])),
        "sentences": lambda r: (r["data"].get("dir"), r["data"].get("sizes")),
        "layers": _layers_text,
    }
    for path, result in items[1:]:
        for what, fact in facts.items():
            if result["task"] != first["task"]:
                break  # another target task (the cross-task view): its own sentences
            if fact(result) != fact(first):
                raise AlignError(
                    f"{first_path} and {path} cover different {what} "
                    f"({_short(fact(first))} vs {_short(fact(result))}); a report puts only "
                    "like-for-like results side by side"
                )
        a, b = _encoding(first), _encoding(result)
        for option, value in a.items():
            if b[option] != value:
                raise AlignError(
                    f"{first_path} and {path} were encoded differently ({option} {value!r} vs "
                    f"{b[option]!r}); a report compares numbers measured one way only"
                )
    fingerprints: dict[str, tuple[Path, str | None]] = {}
    for path, result in items:
        for name, fingerprint in _models(result).items():
            seen = fingerprints.setdefault(name, (path, fingerprint))
            if seen[1] != fingerprint:
                raise AlignError(
                    f"{seen[0]} and {path} name different weights {name!r} (fingerprints "
                    f"{str(seen[1])[:12]} vs {str(fingerprint)[:12]}); rename one checkpoint or "
                    "report them apart"
                )


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) < 80 else text[:77] + "..."


def _provenance(path: Path, result: dict[str, Any]) -> dict[str, Any]:
    git = result.get("git") or {}
    commit = git.get("commit", "unknown") + (" (uncommitted changes)" if git.get("dirty") else "")
    return {
        "file": str(path),
        "command": result["command"],
        "task": result["task"],
        "model": result["model"]["name"],
        "fingerprint": result["model"].get("fingerprint", "?"),
        "compared": result.get("compared", []),
        "data": result["data"].get("name", result["data"].get("dir")),
        "languages": ", ".join(result["languages"]),
        "layers": ", ".join(map(str, result["layers"])),
        "encoding": encoding_note(result),
        "git": commit,
        "created": result.get("created"),
        "elapsed": result.get("elapsed_s"),
        "config": json.dumps(result["config"], indent=2, ensure_ascii=False),
        "versions": json.dumps(result["versions"], indent=2),
    }


def refuse_duplicates(results: dict[Path, Result]) -> None:
    """The same result given twice (a file and its copy) would show every finding twice."""
    import hashlib

    seen: dict[str, Path] = {}
    for path, result in results.items():
        digest = hashlib.sha256(json.dumps(result.data, sort_keys=True).encode()).hexdigest()
        if digest in seen:
            raise AlignError(
                f"{path}: the same result as {seen[digest]} (given twice); give each result once"
            )
        seen[digest] = path


def _data_text(result: dict[str, Any]) -> str:
    """``tatoeba on deu, fra (200 pairs each)``: a result's task, languages and size."""
    from align.retrieval import tasks

    task = tasks.find(result["task"])
    sizes = result.get("data", {}).get("sizes") or {}
    langs = ", ".join(result["languages"])
    if task is None or not sizes:
        return f"{result['task']} on {langs}"
    counts = {lang: task.reliable_n(s) for lang, s in sizes.items() if isinstance(s, dict)}
    if len(set(counts.values())) == 1:
        return f"{task.name} on {langs} ({next(iter(counts.values()))} {task.unit} each)"
    each = ", ".join(f"{lang} {n}" for lang, n in counts.items())
    return f"{task.name} on {langs} ({task.unit}: {each})"


def render(paths: list[Path], title: str | None = None, alpha: float = 0.05) -> str:
    """The report's HTML for the results at ``paths`` (validated, like for like)."""
    import jinja2

    results = {Path(p): Result.load(p) for p in paths}
    if not results:
        raise AlignError("align report: give at least one results file")
    refuse_duplicates(results)
    check_comparable({path: r.data for path, r in results.items()})
    sections: list[Section] = []
    findings = Findings()
    for path, result in results.items():
        if result.command == "compare":
            secs = compare_section(result, alpha)
            add_comparison(findings, result)
        else:
            secs, lines = single_section(path, result)
            findings.lines += lines
        sections += secs
    sections += cross_task_section({p: r.data for p, r in results.items()}, alpha)
    first = next(iter(results.values())).data
    data = dict.fromkeys(_data_text(r.data) for r in results.values())
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("align.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
    )
    return env.get_template("report.html.j2").render(
        title=title or f"align report — {first['model']['name']}: {'; '.join(data)}",
        subtitle=f"{len(results)} results file(s); encoding: {encoding_note(first)}",
        findings=findings.finish(),
        sections=sections,
        runs=[_provenance(p, r.data) for p, r in results.items()],
        version=__version__,
    )


def write_report(
    paths: list[Path], out: Path, title: str | None = None, alpha: float = 0.05
) -> Path:
    out = Path(out)
    write_text_atomic(out, render(paths, title, alpha))
    return out
