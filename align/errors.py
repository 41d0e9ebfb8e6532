"""The one exception type for bad input: the CLI prints its message without a traceback."""

from __future__ import annotations


class AlignError(ValueError):
    """Bad user input (file, line, argument) detected before any work is lost.

    ``param``: the Python parameter (a config field) the message starts with; the CLI names
    the flag instead (``margin_k 9: ...`` -> ``--margin-k 9: ...``).
    """

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param

    def for_flags(self, flags: dict[str, str]) -> str:
        """The message with its leading parameter name replaced by that parameter's flag."""
        message = str(self)
        if self.param in flags and message.startswith(str(self.param)):
            return flags[str(self.param)] + message[len(str(self.param)) :]
        return message


def install_hint(extra: str) -> str:
    """How to install one of align's extras, in both forms a user may need: from an index, and
    in a clone of the repository (an editable install)."""
    return f"pip install 'align[{extra}]' (in a clone: pip install -e \".[{extra}]\")"
