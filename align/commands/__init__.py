"""The commands: one module each, a config dataclass and ``run(cfg) -> RunResult``.

The CLI (``align.cli``) builds its flags from these config dataclasses (help text in field
metadata) and only dispatches; everything here is usable from Python::

    from align.commands import retrieve
    run = retrieve.run(retrieve.RetrieveConfig(langs="deu,fra", layers="6,12"))

The library packages (encode, retrieval, probes, train, report, data, models) never import
this package.
"""

import importlib
from typing import Any

from align.commands.base import RunResult

# command name (as typed after ``align``) -> module; each module has HELP, Config and run
COMMANDS: dict[str, str] = {
    "retrieve": "align.commands.retrieve",
    "cka": "align.commands.cka",
    "probe": "align.commands.probe",
    "compare": "align.commands.compare",
    "report": "align.commands.report",
    "demo": "align.commands.demo",
    "train": "align.commands.train",
    "data bible": "align.commands.data",
    "data tatoeba": "align.commands.data_tatoeba",
    "data bucc": "align.commands.data_bucc",
    "data flores": "align.commands.data_flores",
    "models": "align.commands.models",
}


def config_of(name: str) -> type:
    """The config dataclass of command ``name`` (``align.commands.<name>.Config``)."""
    return importlib.import_module(COMMANDS[name]).Config


def run_command(name: str, **fields: Any) -> RunResult:
    """Run command ``name`` with its config built from ``fields``: how a composite command
    (the demo) drives the others without importing their modules."""
    module = importlib.import_module(COMMANDS[name])
    return module.run(module.Config(**fields))


__all__ = ["COMMANDS", "RunResult", "config_of", "run_command"]
