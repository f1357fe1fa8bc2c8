"""The bounds on what one input file may make ``interop convert`` do, all checked before writing.

A small file can describe a great deal of work: a pickle whose dicts share
references 40 levels deep has 2**40 paths, and a 2 MB zip of zeros expands to
gigabytes. Every reader therefore walks each object once and checks its input
against :class:`Limits` as it reads, and the converter checks the size of the
output it is about to write before it writes a byte.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interop.cli.errors import ConvertError, shown

__all__ = [
    "MAX_ARRAYS",
    "MAX_DEPTH",
    "MAX_DIMS",
    "MAX_KEY_LENGTH",
    "Limits",
    "check_key",
    "check_shape",
    "free_bytes",
    "output_size",
]

#: Containers nested deeper than this are refused (state dicts and optimizer
#: states nest about five deep).
MAX_DEPTH = 64
#: The default for the number of arrays an input may hold (``--max-arrays``).
MAX_ARRAYS = 100_000
#: The most characters of one key, dotted path included.
MAX_KEY_LENGTH = 4096
#: The most dimensions of an array: NumPy's own limit (``NPY_MAXDIMS``).
MAX_DIMS = 64
# Over-estimates of what the .npz container adds to each array: the .npy header
# (a 64-byte aligned dict holding the dtype and the shape) and the zip records
# (local header, data descriptor, central directory entry, each with ZIP64 fields
# and the member's name), plus the end records.
_NPY_HEADER = 128
_NPY_HEADER_PER_DIM = 24
_ZIP_MEMBER = 200
_ZIP_END = 200


@dataclasses.dataclass(frozen=True)
class Limits:
    """The bounds of one conversion.

    Attributes:
        max_bytes: The most bytes the output file may take (arrays and file
            headers, estimated before writing from each array's shape and dtype).
        max_arrays: The most arrays (tensors, numbers) the input may hold.
        max_depth: The deepest nesting of containers in a PyTorch file.
    """

    max_bytes: int
    max_arrays: int = MAX_ARRAYS
    max_depth: int = MAX_DEPTH

    def check_arrays(self, count: int, where: str) -> None:
        """Refuse ``count`` arrays in ``where`` if there are more than allowed."""
        if count > self.max_arrays:
            raise ConvertError(
                f"expected at most {self.max_arrays} arrays, got more in {where}. hint: "
                "--max-arrays raises the limit if you trust the file"
            )

    def check_depth(self, depth: int, path: str) -> None:
        """Refuse containers nested ``depth`` deep at ``path``."""
        if depth > self.max_depth:
            raise ConvertError(
                f"expected containers nested at most {self.max_depth} deep, got deeper "
                f"nesting at {_short(path)!r}"
            )

    def check_bytes(self, size: int, dst: Path) -> None:
        """Refuse an output of ``size`` bytes if it is larger than allowed."""
        if size > self.max_bytes:
            raise ConvertError(
                f"expected an output of at most {self.max_bytes} bytes, got about {size} "
                f"bytes for {shown(dst)}; nothing was written. hint: --max-bytes "
                "raises the limit (the default is the free space at the destination)"
            )


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_key(key: str) -> None:
    """Refuse a key longer than :data:`MAX_KEY_LENGTH` characters."""
    if len(key) > MAX_KEY_LENGTH:
        raise ConvertError(
            f"expected keys of at most {MAX_KEY_LENGTH} characters, got one of {len(key)} "
            f"starting {_short(key)!r}"
        )


def check_shape(key: str, shape: Sequence[int], dtype: np.dtype[Any], where: str) -> None:
    """Refuse a declared shape that no NumPy array can have, before any data is read.

    A NumPy array has at most :data:`MAX_DIMS` dimensions, and its size in
    bytes, counted over every dimension but those of length 0, fits in a signed
    machine word: NumPy refuses ``(2**40, 2**40, 0)`` although it holds no
    value. The dimensions are counted first, so that the product (of Python
    integers, which never overflow) has at most 64 factors.

    Raises:
        ConvertError: ``shape`` has too many dimensions or is too large.
    """
    if len(shape) > MAX_DIMS:
        raise ConvertError(
            f"expected an array of at most {MAX_DIMS} dimensions for {_short(key)!r} in "
            f"{where}, got {len(shape)}: NumPy arrays have no more"
        )
    nbytes = math.prod(n for n in shape if n) * dtype.itemsize
    if nbytes > sys.maxsize:
        raise ConvertError(
            f"expected an array of at most {sys.maxsize} bytes (zero-length dimensions "
            f"aside) for {_short(key)!r} in {where}, got {dtype} of shape "
            f"{_short(str(tuple(shape)))}: no NumPy array is that large"
        )


def free_bytes(directory: Path) -> int:
    """The bytes an unprivileged user may still write on ``directory``'s filesystem."""
    try:
        return shutil.disk_usage(directory).free
    except OSError as exc:
        raise ConvertError(
            f"expected to measure the free space in {shown(directory)}, got "
            f"{type(exc).__name__}: {exc.strerror}. hint: give --max-bytes"
        ) from exc


def output_size(arrays: Sequence[tuple[str, Sequence[int], np.dtype[Any]]], npz: bool) -> int:
    """An upper bound on the bytes of a .npz (or .npy) file of ``(name, shape, dtype)`` arrays."""
    size = _ZIP_END if npz else 0
    for name, shape, dtype in arrays:
        size += math.prod(shape) * dtype.itemsize + _NPY_HEADER + _NPY_HEADER_PER_DIM * len(shape)
        if npz:
            size += _ZIP_MEMBER + 2 * len(name.encode("utf-8"))
    return size
