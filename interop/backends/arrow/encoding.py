"""How ``interop.dtype`` records the NumPy dtypes that Arrow lacks: names and metadata.

Arrow has no bfloat16, float8, float6, float4, sub-byte integer or complex value
type. Such arrays are stored bit for bit as unsigned integers of the same width
(``uint8`` for float8 and the sub-byte formats, which ``ml_dtypes`` keeps one per
byte; ``uint16`` for bfloat16; ``uint32`` for complex32; ``uint64`` for complex64;
``fixed_size_binary(16)`` for complex128), as the extension type
:class:`~interop.backends.arrow.reading.DtypeType`: name ``interop.dtype``,
metadata the JSON object ``{"dtype": "<NumPy or ml_dtypes name>"}``, plus
``"shape": [...]`` for a tensor column, whose storage is then
``fixed_size_list<uintN>[prod(shape)]``, one row per tensor in C order. A reader
that does not know the type sees those unsigned integers and, on the column's
field, the standard extension metadata keys ``ARROW:extension:name`` and
``ARROW:extension:metadata``.

Why a tensor of such a dtype is not a canonical ``fixed_shape_tensor`` of
``interop.dtype`` values: a reader that does not know ``interop.dtype`` rebuilds
the outer canonical type and drops the inner type's metadata, which would leave
unsigned integers with nothing saying what they are. The metadata of a top-level
column's field survives every reader.

This module imports no ``pyarrow``: the type itself, with its arrays and scalars,
is in :mod:`interop.backends.arrow.reading`, whose layouts read them.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from interop import _dtypes

__all__ = ["EXTENSION_NAME"]

#: The name of the extension type of exact dtypes (``ARROW:extension:name``).
EXTENSION_NAME = "interop.dtype"
# NumPy's own dtypes that Arrow lacks, encoded like the ml_dtypes ones.
_NUMPY_ENCODED = ("complex64", "complex128")


def _encoded_names() -> tuple[str, ...]:
    return (*_dtypes.NONSTANDARD, *_NUMPY_ENCODED)


def dtype_name(dtype: np.dtype[Any]) -> str:
    """The name under which ``dtype`` is recorded (``complex32`` for the float16 pair too)."""
    if dtype.names is not None:  # the structured stand-in of complex32
        return "complex32"
    return dtype.name


def dtype_named(name: str) -> np.dtype[Any] | None:
    """The dtype recorded as ``name``, or ``None`` for a name this version does not know."""
    if name in _NUMPY_ENCODED:
        return np.dtype(name)
    if name == "complex32":
        return _dtypes.complex32()
    if name in _dtypes.NONSTANDARD:
        return _dtypes.ml_dtype(name)
    return None


def is_encoded(dtype: np.dtype[Any]) -> bool:
    """Whether Arrow lacks ``dtype``, so that it is stored as ``interop.dtype``."""
    return not _dtypes.is_standard(dtype) or dtype.kind == "c"


def parse_metadata(serialized: bytes) -> tuple[np.dtype[Any], tuple[int, ...] | None]:
    """The dtype and row shape that ``interop.dtype`` metadata records; ``ValueError`` if bad."""
    try:
        meta = json.loads(serialized)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"expected JSON metadata for {EXTENSION_NAME}, got {exc}") from exc
    name = meta.get("dtype") if isinstance(meta, dict) else None
    dtype = dtype_named(name) if isinstance(name, str) else None
    if dtype is None:
        raise ValueError(
            f"expected {EXTENSION_NAME} metadata naming one of {', '.join(_encoded_names())}, "
            f"got {serialized[:200].decode(errors='replace')}"
        )
    shape = meta.get("shape")
    if shape is None:
        return dtype, None
    if not (
        isinstance(shape, list)
        and 0 < len(shape) <= 64
        and all(type(n) is int and 0 <= n < 2**62 for n in shape)
        and math.prod(shape) < 2**31
    ):
        raise ValueError(
            f"expected a shape of at most 64 non-negative integers in {EXTENSION_NAME} "
            f"metadata, got {json.dumps(shape)[:200]}"
        )
    return dtype, tuple(shape)


def _bits(dtype: np.dtype[Any]) -> np.dtype[Any]:
    return np.dtype(f"u{dtype.itemsize}") if dtype.itemsize <= 8 else np.dtype("V16")
