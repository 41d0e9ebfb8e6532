"""The package's shape: the import graph, the metric registry, the CLI built from configs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from align import metrics
from align.errors import AlignError

ROOT = Path(__file__).resolve().parent.parent / "align"
COMMAND_INFRA = {
    "align.commands",
    "align.commands.base",
    "align.commands.encoding",
    "align.commands.output",
    "align.commands.prepared",
}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    """Modules ``path`` imports (``top_level_only``: at import time, not inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _files() -> dict[str, Path]:
    return {_module(f): f for f in ROOT.rglob("*.py")}


def test_library_never_imports_commands_or_cli() -> None:
    library = {
        m: f for m, f in _files().items() if not m.startswith(("align.commands", "align.cli"))
    }
    assert {"align.compare.pipeline", "align.compare", "align.store"} <= set(library)
    assert len(library) > 50
    offenders = {
        m: sorted(i for i in _imports(f) if i.startswith(("align.commands", "align.cli")))
        for m, f in library.items()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_command_imports_another_command() -> None:
    files = _files()
    commands = {m for m in files if m.startswith("align.commands.")} - COMMAND_INFRA
    assert {"align.commands.demo", "align.commands.compare"} <= commands
    offenders = {
        m: sorted(i for i in _imports(files[m]) if i in commands or i.rsplit(".", 1)[0] in commands)
        for m in commands
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_import_cycles() -> None:
    files = _files()
    graph = {
        m: {i for i in _imports(f, top_level_only=True) if i in files and i != m}
        for m, f in files.items()
    }
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_only_task_objects_compare_a_task_name() -> None:
    """Commands, compare and the report never branch on "tatoeba"/"bucc": the task objects
    (align/retrieval/tasks) hold what differs."""
    names = {"tatoeba", "bucc"}
    offenders = []
    for module, path in _files().items():
        if module.startswith("align.retrieval.tasks"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            constants = []
            if isinstance(node, ast.Compare):
                for side in [node.left, *node.comparators]:
                    elts = side.elts if isinstance(side, ast.Tuple | ast.List | ast.Set) else [side]
                    constants += elts
            elif isinstance(node, ast.Dict):
                constants += [k for k in node.keys if k is not None]
            hits = [c.value for c in constants if isinstance(c, ast.Constant) and c.value in names]
            if hits:
                offenders.append(f"{module}:{node.lineno} {hits}")
    assert offenders == []


def test_probes_work_without_the_retrieval_package() -> None:
    code = (
        "import sys, numpy as np\n"
        "from align.probes import alignment, cka\n"
        "x = np.random.default_rng(0).standard_normal((50, 8))\n"
        "assert alignment.centered_accuracy(x, x)['acc_centered_xx2en'] == 1.0\n"
        "assert alignment.mutual_knn(x, x, 5) == 1.0\n"
        "assert not [m for m in sys.modules if m.startswith('align.retrieval')], 'retrieval'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_registry_refuses_duplicates_and_suggests_names() -> None:
    with pytest.raises(AlignError, match="already registered"):
        metrics.register(metrics.get("acc_xx2en"))
    with pytest.raises(AlignError, match="did you mean acc_xx2en"):
        metrics.get("acc_xx2eng")


def test_derived_metric_names() -> None:
    assert metrics.get("mknn@10").label == "mutual kNN overlap (k=10)"
    delta = metrics.get("delta_acc_xx2en")
    assert delta.bounds == (-1.0, 1.0) and delta.higher_is_better and delta.per_sentence
    assert metrics.get("delta_xsim_error").higher_is_better is False
    assert metrics.get("graft_delta_f1").family == "attribution"
    assert metrics.get("spearman_acc_xx2en_vs_cka_linear").bounds == (-1.0, 1.0)
    with pytest.raises(AlignError):
        metrics.get("delta_nonsense")


def test_score_records_only_take_registered_metrics() -> None:
    from align.results import score_record

    assert score_record(3, "deu", "cka_linear", 0.5)["metric"] == "cka_linear"
    with pytest.raises(AlignError, match="unknown metric"):
        score_record(3, "deu", "cka_lineer", 0.5)


def test_every_emitted_metric_is_registered_and_within_its_bounds(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Every command that writes scores, on the tiny model: each metric resolves in the registry
    and each value lies inside the registered bounds."""
    from conftest import make_tiny_model

    from align.commands import cka, probe, retrieve
    from align.data.bible import build_bucc_demo, build_tatoeba_demo

    tat = build_tatoeba_demo(tmp_path / "tat", ["de", "fr"], n=30)
    bucc = build_bucc_demo(tmp_path / "bucc", ["de"], n=20)
    other = make_tiny_model(tmp_path / "other", seed=1)
    common = {"ckpt": str(tiny_model_dir), "out": tmp_path / "out", "plot": False}
    common |= {"use_cache": False, "progress": False}
    runs = [
        retrieve.run(retrieve.RetrieveConfig(data_dir=tat, **common)),
        retrieve.run(retrieve.RetrieveConfig(data_dir=bucc, task="bucc", **common)),
        cka.run(cka.CkaConfig(data_dir=tat, **common)),
        cka.run(cka.CkaConfig(data_dir=tat, ckpt_b=str(other), **common)),
        probe.run(probe.ProbeConfig(data_dir=tat, knn_k=5, **common)),
    ]
    seen = set()
    for run in runs:
        for record in run.result["scores"]:
            entry = metrics.get(record["metric"])
            seen.add(record["metric"])
            if record["value"] != record["value"]:
                assert record["metric"] == "pwcca", record  # undefined: 30 pairs, 32 dimensions
                continue
            low, high = entry.bounds
            assert low is None or record["value"] >= low - 1e-9, record
            assert high is None or record["value"] <= high + 1e-9, record
            seen.add(record["metric"])
    assert len(seen) >= 20


def test_help_is_for_users_and_shows_defaults(capsys) -> None:
    from align.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "Command line:" not in text and "intermediate-task training" in text
    with pytest.raises(SystemExit):
        main(["retrieve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 32)" in text and "(default: all)" in text
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: hub)" not in text and "bible-paraphrase, need none" in text


def test_cli_flags_come_from_the_config(tmp_path: Path) -> None:
    from align.cli import build_parser, config_from_args
    from align.commands.train import TrainCommandConfig

    args = build_parser().parse_args(
        ["train", "--bf16", "--task-dir", "mnli=/x", "--no-group-by-length", "--out", str(tmp_path)]
    )
    cfg = config_from_args(TrainCommandConfig, args)
    assert cfg.precision == "bf16" and cfg.task_dirs == {"mnli": Path("/x")}
    assert cfg.group_by_length is False and cfg.out == tmp_path
    assert cfg.lr == TrainCommandConfig().lr  # each default is written once, in the config
