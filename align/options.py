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
    ``required``. Mutable defaults are copied per instance.
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
