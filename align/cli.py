"""Command line: flags built from each command's config dataclass, then ``run(cfg)``; nothing else.

Every flag comes from a field of the command's config (``align.commands.<name>.Config``): its
name, type, default, choices (a ``Literal``) and help (the field's metadata). Errors in the
input end in one line on stderr and exit status 2; Ctrl-C ends in one line and status 130.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from align.commands import COMMANDS
from align.errors import AlignError

log = logging.getLogger("align")

DESCRIPTION = (
    "Layer-wise cross-lingual alignment and sentence retrieval for multilingual encoders: "
    "how does intermediate-task training change a model's alignment, layer by layer, and does "
    "that change account for its retrieval gains? Offline by default (multilingual-e5-small "
    "and a Bible demo set)."
)
EPILOG = "Run 'align COMMAND --help' for a command's flags. Docs: README.md."


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default, except where there is none worth showing (None, a switch)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default in (None, False, True, argparse.SUPPRESS) or action.option_strings == []:
            return text
        if isinstance(action.default, list | dict) and not action.default:
            return text
        return super()._get_help_string(action)


def _unwrap(hint: Any) -> Any:
    """``X | None`` -> ``X``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _parser(parse: Any) -> Any:
    """A flag's parse function whose AlignError argparse reports as the message itself."""

    def wrapped(text: str) -> Any:
        try:
            return parse(text)
        except AlignError as exc:
            raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from None

    wrapped.__name__ = getattr(parse, "__name__", "value")
    return wrapped


class _Parser(argparse.ArgumentParser):
    """Bad flags end in one line (and where to find help), not a usage block."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag", "--" + f.name.replace("_", "-"))


def _add_field(parser: argparse.ArgumentParser, f: dataclasses.Field, hint: Any) -> None:
    meta = f.metadata
    kind = _unwrap(hint)
    default = f.default if f.default is not dataclasses.MISSING else None
    kwargs: dict[str, Any] = {"help": meta.get("help", ""), "dest": f.name}
    if "positional" in meta:
        parser.add_argument(f.name, nargs=meta["positional"], type=Path, help=kwargs["help"])
        return
    if kind is bool:
        kwargs["action"] = "store_false" if default else "store_true"
        parser.add_argument(_flag(f), default=default, **kwargs)
        return
    if meta.get("append"):
        kwargs |= {"action": "append", "type": _parser(meta["parse"]), "default": []}
    elif typing.get_origin(kind) is typing.Literal:
        kwargs |= {"choices": typing.get_args(kind), "default": default}
    elif "choices" in meta:
        kwargs |= {"choices": meta["choices"], "default": default}
    else:
        kwargs |= {"type": kind if kind in (int, float, Path) else str, "default": default}
    for key in ("metavar", "required"):
        if key in meta:
            kwargs[key] = meta[key]
    aliases = meta.get("aliases")
    group = parser.add_mutually_exclusive_group() if aliases else parser
    group.add_argument(_flag(f), **kwargs)
    for alias, value in (aliases or {}).items():
        group.add_argument(
            alias, dest=f.name, action="store_const", const=value, help=f"= {_flag(f)} {value}"
        )


def flags_of(config: type) -> dict[str, str]:
    """Each config field's flag: how an error naming the field is shown on the command line."""
    return {f.name: _flag(f) for f in dataclasses.fields(config) if f.metadata.get("cli", True)}


# The flags a user sets to say what to measure: shown first, in their own group.
MAIN_FIELDS = ("ckpt", "base", "task", "data", "data_dir", "langs", "layers", "preset")
STATISTICS_FIELDS = ("n_boot", "n_boot_spearman", "confidence", "correction", "alpha")
OUTPUT_FIELDS = ("out", "use_cache", "plot", "seed")
_SHARED_GROUPS = {  # a shared config class -> the title of its flags' group
    "EncodeRunConfig": "encoding (how sentences become vectors)",
    "SearchConfig": "nearest-neighbour index",
    "GeometryConfig": "geometry (retrieval after whitening and cross-fitted maps)",
    "MapConfig": "geometry (retrieval after whitening and cross-fitted maps)",
}


def _group_of(config: type, name: str) -> str:
    """The help group a field's flag is listed in."""
    if name in MAIN_FIELDS:
        return "what to measure"
    if name in STATISTICS_FIELDS:
        return "statistics"
    if name in OUTPUT_FIELDS:
        return "output and run"
    defined = [k for k in config.__mro__ if name in getattr(k, "__annotations__", {})]
    owner = defined[-1].__name__ if defined else ""
    return _SHARED_GROUPS.get(owner, "options of this command")


def add_config_arguments(parser: argparse.ArgumentParser, config: type) -> None:
    """One flag per field of the ``config`` dataclass (fields with ``cli=False`` excepted).
    Where the command measures models, the flags come in groups: what to measure first, then
    the command's own options, statistics, encoding, the index, output."""
    hints = typing.get_type_hints(config)
    fields = [f for f in dataclasses.fields(config) if f.metadata.get("cli", True)]
    if not any(f.name in MAIN_FIELDS for f in fields):
        for f in fields:
            _add_field(parser, f, hints[f.name])
        return
    order = ["what to measure", "options of this command", "statistics", *_SHARED_GROUPS.values()]
    order.append("output and run")
    groups = {title: parser.add_argument_group(title) for title in order}
    rank = {name: i for i, name in enumerate(MAIN_FIELDS)}
    for f in sorted(fields, key=lambda f: rank.get(f.name, len(rank))):
        _add_field(groups[_group_of(config, f.name)], f, hints[f.name])  # type: ignore[arg-type]


def config_from_args(config: type, args: argparse.Namespace) -> Any:
    """The typed config of one command from its parsed flags (and the terminal state)."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        if f.name == "progress":
            values[f.name] = sys.stderr.isatty()
        elif hasattr(args, f.name):
            value = getattr(args, f.name)
            collect = f.metadata.get("collect")
            values[f.name] = collect(value) if collect else value
    return config(**values)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="align", description=DESCRIPTION, epilog=EPILOG, formatter_class=_HelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        where, leaf = sub, name
        if " " in name:  # a command group, e.g. "data bible"
            group, leaf = name.split(" ", 1)
            if group not in groups:
                holder = sub.add_parser(
                    group, help=f"{group} commands", formatter_class=_HelpFormatter
                )
                groups[group] = holder.add_subparsers(
                    dest=f"{group}_command", required=True, parser_class=_Parser
                )
            where = groups[group]
        p = where.add_parser(
            leaf,
            help=module.HELP,
            description=module.HELP,
            formatter_class=_HelpFormatter,
        )
        add_config_arguments(p, module.Config)
        p.set_defaults(module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("faiss").setLevel(logging.WARNING)
    module = args.module
    try:
        outcome = module.run(config_from_args(module.Config, args))
    except AlignError as exc:
        log.error("%s", exc.for_flags(flags_of(module.Config)))
        return 2
    except OSError as exc:  # a write that failed (no space, a file size limit, permissions)
        where = f"{exc.filename}: " if exc.filename else ""
        log.error("%scannot be written or read (%s)", where, exc.strerror or exc)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted; nothing half-written was kept (finished files are whole)")
        return 130
    sys.stdout.write(outcome.render() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
