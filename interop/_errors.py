"""The exception hierarchy of :mod:`interop`.

Every error the library raises on purpose derives from :class:`InteropError`, and
also from the built-in class a caller would naturally catch (``TypeError`` for an
unsupported type, ``ValueError`` for a refused copy, ...), so that code written
against NumPy's own errors keeps working.
"""

from __future__ import annotations

__all__ = [
    "ConversionError",
    "CopyRequiredError",
    "InteropError",
    "TransferError",
    "UnsupportedTypeError",
]


class InteropError(Exception):
    """Base class of every error raised by :mod:`interop`."""


class UnsupportedTypeError(InteropError, TypeError):
    """No registered backend knows how to convert this object."""


class CopyRequiredError(InteropError, ValueError):
    """``copy=False`` was requested, but the conversion cannot avoid a copy."""


class TransferError(InteropError, RuntimeError):
    """``allow_transfer=False`` was requested, but the data is not in host memory."""


class ConversionError(InteropError, ValueError):
    """The object is recognised, but it holds no data that can be converted."""


def type_name(obj: object) -> str:
    """The qualified name of ``type(obj)``, as used in every error message."""
    cls = type(obj)
    module = cls.__module__
    if module in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"
