"""The one exception type for bad input: the CLI prints its message without a traceback."""


class AlignError(ValueError):
    """Bad user input (file, line, argument) detected before any work is lost."""
