"""``option()``: a config-dataclass field with its help text, read by the CLI to build flags.

Config dataclasses live beside the code they configure (library or command); the CLI builds
every flag from them, so a default and its help are written once.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def option(default: Any = dataclasses.MISSING, help: str = "", **cli: Any) -> Any:
    """A config field with its help text and CLI hints.

    Hints: ``flag`` (the flag's name, e.g. ``--no-cache`` for a True-by-default bool),
    ``cli=False`` (not a flag), ``aliases`` (``{"--bf16": "bf16"}``: extra flags that store a
    constant), ``positional`` (``nargs`` for a positional argument), ``append`` with ``parse``
    and ``collect`` (a repeatable flag: parse each, collect the list into the field's value),
    ``required``. Ranges, checked with the type by :func:`check_fields`: ``above`` / ``below``
    (exclusive), ``low`` / ``high`` (inclusive). Mutable defaults are copied per instance.
    """
    metadata = {"help": help, **cli}
    if isinstance(default, list | dict):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def require_at_least(*checks: tuple[str, float, float]) -> None:
    """``(flag, value, lowest allowed)`` each; the first violation is a one-line error."""
    from align.errors import AlignError

    for flag, value, low in checks:
        if value < low:
            raise AlignError(f"{flag} {value}: must be at least {low}")


SEED_LIMIT = 2**32  # numpy's and torch's seeds are 32-bit unsigned


def check_seed(seed: int, flag: str = "--seed") -> None:
    """A seed numpy and torch both take: an integer in [0, 2**32)."""
    from align.errors import AlignError

    if not 0 <= seed < SEED_LIMIT:
        raise AlignError(f"{flag} {seed}: must be an integer in 0..{SEED_LIMIT - 1}")


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """(the type inside ``X | None``, whether None is allowed)."""
    import types
    import typing

    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        allows_none = len(args) < len(typing.get_args(hint))
        return (args[0] if len(args) == 1 else hint), allows_none
    return hint, False


def _bounds_text(meta: dict[str, Any]) -> str:
    """``lie in (0, 1)`` for two bounds, ``be > 0`` for one."""
    low = high = None
    if "above" in meta or "low" in meta:
        low = ("(", meta["above"]) if "above" in meta else ("[", meta["low"])
    if "below" in meta or "high" in meta:
        high = (")", meta["below"]) if "below" in meta else ("]", meta["high"])
    if low and high:
        return f"lie in {low[0]}{low[1]}, {high[1]}{high[0]}"
    if low:
        return f"be {'>' if low[0] == '(' else '>='} {low[1]}"
    assert high is not None
    return f"be {'<' if high[0] == ')' else '<='} {high[1]}"


def _check_number(name: str, value: Any, kind: Any, meta: dict[str, Any]) -> None:
    import math

    from align.errors import AlignError

    if isinstance(value, bool) or not isinstance(value, int | float):
        expected = "an integer" if kind is int else "a number"
        raise AlignError(f"{name} {value!r}: expected {expected}", param=name)
    if kind is int and not isinstance(value, int):
        raise AlignError(f"{name} {value!r}: expected an integer", param=name)
    if not math.isfinite(value):
        raise AlignError(f"{name} {value}: must be a finite number", param=name)
    low_ok = value > meta["above"] if "above" in meta else value >= meta.get("low", -math.inf)
    high_ok = value < meta["below"] if "below" in meta else value <= meta.get("high", math.inf)
    if not (low_ok and high_ok):
        raise AlignError(f"{name} {value}: must {_bounds_text(meta)}", param=name)


def check_fields(config: Any) -> None:
    """Every field of a config dataclass against its type (an int, a finite number, a string of
    a ``Literal``'s choices, a bool) and its declared range (``option(..., above=0)``, ``low``,
    ``below``, ``high``): one :class:`~align.errors.AlignError` naming the field (the CLI shows
    its flag), before any data is read. NaN and infinity are never a setting."""
    import typing
    from pathlib import Path

    from align.errors import AlignError

    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        kind, allows_none = _unwrap(hints[f.name])
        if value is None and allows_none:
            continue
        if kind is bool:
            if not isinstance(value, bool):
                raise AlignError(f"{f.name} {value!r}: expected true or false", param=f.name)
        elif kind in (int, float):
            _check_number(f.name, value, kind, dict(f.metadata))
        elif typing.get_origin(kind) is typing.Literal:
            if value not in typing.get_args(kind):
                choices = ", ".join(map(str, typing.get_args(kind)))
                raise AlignError(f"{f.name} {value!r}: expected one of {choices}", param=f.name)
        elif kind is str and not isinstance(value, str):
            raise AlignError(f"{f.name} {value!r}: expected a string", param=f.name)
        elif kind is Path and not isinstance(value, str | Path):
            raise AlignError(f"{f.name} {value!r}: expected a path", param=f.name)
