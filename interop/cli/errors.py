"""The command line's error class, and how it quotes the exceptions of other libraries."""

from __future__ import annotations

from interop import InteropError

__all__ = ["ConvertError", "first_line"]


class ConvertError(InteropError, ValueError):
    """A conversion that cannot go ahead; nothing has been written.

    Attributes:
        code: The exit status: 1 for an input that cannot be read or converted,
            2 for a usage error (unknown format, existing output, bad option).
    """

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, or its type's name when it has none.

    Example:
        >>> first_line(ValueError("bad value\\nmore detail"))
        'bad value'
    """
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
