"""Writing NumPy arrays into Arrow memory: :func:`to_arrow`.

Imported only once ``pyarrow`` is (by :class:`~interop.backends.arrow.ArrowBackend`).

:func:`to_arrow` wraps a C-contiguous NumPy array in Arrow buffers without
copying (the buffers keep the array alive): a 1-d array becomes a primitive array,
an n-d one a canonical ``arrow.fixed_shape_tensor`` whose rows are the first axis.
Booleans are packed into bits, which copies.

Dtypes that Arrow lacks are written as the extension type
:class:`~interop.backends.arrow.reading.DtypeType` (see
:mod:`interop.backends.arrow.encoding`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from interop._errors import ConversionError
from interop._memory import aligned_copy
from interop.backends.arrow.encoding import _bits, is_encoded
from interop.backends.arrow.reading import _NUMERIC, _STORAGE, DtypeType

__all__ = ["to_arrow"]

_ARROW_OF = {dtype: arrow for arrow, dtype in _NUMERIC.items()}

# (dtype, row shape) -> the Arrow type of a tensor column; few in a process.
_tensor_types: dict[tuple[np.dtype[Any], tuple[int, ...]], pa.DataType] = {}


def _tensor_type(dtype: np.dtype[Any], shape: tuple[int, ...]) -> pa.DataType:
    key = (dtype, shape)
    found = _tensor_types.get(key)
    if found is None:
        if is_encoded(dtype):
            found = DtypeType(dtype, shape)
        else:
            value = pa.bool_() if dtype.kind == "b" else _ARROW_OF[dtype]
            found = pa.fixed_shape_tensor(value, shape)
        if len(_tensor_types) > 1024:
            _tensor_types.clear()
        _tensor_types[key] = found
    return found


# dtype -> the Arrow type of a column of single values of that dtype.
_scalar_types: dict[np.dtype[Any], pa.DataType] = {}


def _scalar_type(dtype: np.dtype[Any]) -> pa.DataType:
    found = _scalar_types.get(dtype)
    if found is None:
        if is_encoded(dtype):
            found = DtypeType(dtype)
        elif dtype.kind == "b":
            found = pa.bool_()
        else:
            found = _ARROW_OF[dtype]
        _scalar_types[dtype] = found
    return found


def arrow_problem(a: np.ndarray[Any, Any]) -> str | None:
    """Why :func:`to_arrow` cannot wrap ``a``'s memory as it is, or ``None`` if it can."""
    if a.dtype.kind == "b":
        return "Arrow packs booleans into bits"
    if not a.dtype.isnative:
        return "the data is not in native byte order"
    if not a.flags.c_contiguous:
        return "Arrow stores values in C order, and the data is not C-contiguous"
    return None


def check_arrow_dtype(dtype: np.dtype[Any]) -> None:
    """Raise :class:`ConversionError` unless Arrow (with ``interop.dtype``) can hold ``dtype``."""
    if dtype.kind in "biuf" and (dtype in _ARROW_OF or dtype.kind == "b"):
        return
    if is_encoded(dtype) and dtype.itemsize in _STORAGE:
        return
    raise ConversionError(
        f"expected a numeric dtype to convert to Arrow, got {dtype}. hint: convert it with "
        "interop.to_numpy and build the Arrow array with pyarrow.array"
    )


class _Writing:
    """How arrays of one dtype become Arrow buffers (worked out once per dtype)."""

    __slots__ = ("bits", "item", "scalar")

    def __init__(self, dtype: np.dtype[Any]) -> None:
        check_arrow_dtype(dtype)
        encoded = is_encoded(dtype)
        # ml_dtypes arrays export no buffer: their bits are exported as unsigned
        # integers of the same width.
        self.bits = _bits(dtype) if encoded else None
        self.item: pa.DataType = _STORAGE[dtype.itemsize] if encoded else _ARROW_OF.get(dtype)
        self.scalar = _scalar_type(dtype)


_writing: dict[np.dtype[Any], _Writing] = {}


def ndim_error(ndim: int) -> ConversionError:
    """The refusal of ``ndim``-dimensional data (0-d: an Arrow array is a column of rows)."""
    return ConversionError(
        f"expected an array with at least one dimension to convert to Arrow, got a {ndim}-d "
        "array: an Arrow array is a column of rows. hint: x.reshape(1) gives one row"
    )


def to_arrow(a: np.ndarray[Any, Any]) -> pa.Array:
    """An Arrow array of ``a``'s rows; zero-copy unless :func:`arrow_problem` says otherwise.

    Where there is a problem, the data is copied once (booleans: packed into bits).
    """
    ndim = a.ndim
    if ndim == 0:
        raise ndim_error(ndim)
    dtype = a.dtype
    if not dtype.isnative:
        dtype = dtype.newbyteorder("=")
    how = _writing.get(dtype)
    if how is None:
        how = _writing[dtype] = _Writing(dtype)
    if dtype.kind == "b":
        flat = pa.array(np.ascontiguousarray(a).reshape(-1), pa.bool_())
    else:
        if not a.flags.c_contiguous or a.dtype is not dtype:
            a = aligned_copy(a, dtype)
        # A py_buffer holds on to the array (and through it to the memory it views),
        # so the Arrow array keeps its source alive.
        bits = a if how.bits is None else a.view(how.bits)
        buffer = pa.py_buffer(bits if ndim == 1 else bits.reshape(-1))
        flat = pa.Array.from_buffers(how.item, a.size, [None, buffer])
    if ndim == 1:
        scalar = how.scalar
        if type(scalar) is DtypeType:
            return pa.ExtensionArray.from_storage(scalar, flat)
        return flat
    ty = _tensor_type(dtype, a.shape[1:])
    storage = pa.Array.from_buffers(ty.storage_type, a.shape[0], [None], children=[flat])
    return pa.ExtensionArray.from_storage(ty, storage)
