"""One array of an input file, as every reader describes it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["Contents", "Entry"]


@dataclasses.dataclass(frozen=True)
class Entry:
    """One array of a file, known before its data is read.

    Attributes:
        key: The array's dotted key.
        shape: Its shape (the dense shape of a sparse tensor).
        dtype: The NumPy dtype of its values (an ``ml_dtypes`` one for bfloat16, ...).
        load: Reads the array: a NumPy array, or the framework's tensor; raises
            only :class:`~interop.cli.errors.ConvertError` when the file's data
            cannot be read.
    """

    key: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    load: Callable[[], Any]


@dataclasses.dataclass
class Contents:
    """What a reader found in a file.

    Attributes:
        entries: The arrays, in the file's order.
        skipped: The entries that are not arrays or numbers, as ``"key (type)"``.
        aliases: ``(key, first key)`` for each later reference to an object already
            read under its first key (see :mod:`interop.cli.files.flatten`).
    """

    entries: list[Entry]
    skipped: list[str] = dataclasses.field(default_factory=list)
    aliases: list[tuple[str, str]] = dataclasses.field(default_factory=list)
