"""Host memory: alignment, copies every framework can alias, and layout problems.

A leaf module shared by the backends (their ``from_numpy`` and ``numpy_problem``
hooks) and :func:`interop.convert`.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import operator
import sys
from typing import Any

import numpy as np

from interop._errors import ConversionError

__all__ = [
    "ALIGNED_COPY_BYTES",
    "ALIGNMENT",
    "aligned_copy",
    "check_numeric",
    "is_aligned",
    "layout_problem",
    "misalignment",
    "owned_copy",
]

#: The alignment TensorFlow and XLA (JAX) need to use host memory they did not allocate.
ALIGNMENT = 64

_u8 = np.dtype(np.uint8)


class _ArrayInterface(ctypes.Structure):
    """NumPy's ``PyArrayInterface``: the struct an array's ``__array_struct__`` capsule holds."""

    _fields_ = (
        ("two", ctypes.c_int),
        ("nd", ctypes.c_int),
        ("typekind", ctypes.c_char),
        ("itemsize", ctypes.c_int),
        ("flags", ctypes.c_int),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("data", ctypes.c_void_p),
        ("descr", ctypes.c_void_p),
    )


# A prototype of its own rather than ctypes.pythonapi's shared function object, whose
# argument types other code in the process may set differently.
_capsule_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi)
)
_interface_at = _ArrayInterface.from_address
_array_struct = np.ndarray.__array_struct__.__get__


def _address_from_interface(a: np.ndarray[Any, Any]) -> int:
    """The address of ``a``'s data, read from NumPy's ``__array_struct__`` capsule.

    ``__array_struct__`` costs half of ``__array_interface__``, which builds a dict of
    the shape, strides and type. The capsule owns the struct it points to, so it is
    held until the address has been read.
    """
    # (NumPy's own attribute: a subclass may override it.)
    capsule = a.__array_struct__ if type(a) is np.ndarray else _array_struct(a)
    address: int | None = _interface_at(_capsule_pointer(capsule, None)).data
    del capsule
    return address or 0


# NumPy's C struct of an array (PyArrayObject_fields, part of its C API) holds the
# data pointer right after the object header; in CPython an object's id is its
# address. Reading that field costs a third of the capsule's two ctypes calls.
_HEADER = object.__basicsize__
_pointer_at = ctypes.c_void_p.from_address


def _address_from_field(a: np.ndarray[Any, Any]) -> int:
    """The address of ``a``'s data, read from the array's C struct."""
    return _pointer_at(id(a) + _HEADER).value or 0


def _field_readable() -> bool:
    """Whether the data pointer field gives what NumPy's interface says, for probes.

    Only CPython's ids are addresses; the probes include a read-only view at an
    offset and an array of a dtype without a buffer.
    """
    if sys.implementation.name != "cpython":
        return False
    base = np.arange(8, dtype=np.float64)
    probes = [base, base[3:], base[::-2], base.view(np.dtype([("v", "<f8")])), base.reshape(2, 4).T]
    probes[1].setflags(write=False)
    return all(_address_from_field(p) == _address_from_interface(p) for p in probes)


#: The address of ``a``'s data, for any array (read-only ones included).
_data_address = _address_from_field if _field_readable() else _address_from_interface


def misalignment(a: np.ndarray[Any, Any], alignment: int = ALIGNMENT) -> int:
    """How many bytes past a multiple of ``alignment`` ``a``'s data starts (empty arrays: 0)."""
    if a.size == 0:
        return 0
    return _data_address(a) % alignment


def is_aligned(a: np.ndarray[Any, Any], alignment: int = ALIGNMENT) -> bool:
    """Whether ``a``'s data starts at a multiple of ``alignment`` bytes (empty arrays: yes)."""
    return misalignment(a, alignment) == 0


def aligned_copy(a: np.ndarray[Any, Any], dtype: Any = None) -> np.ndarray[Any, Any]:
    """One copy of ``a`` into fresh C-contiguous, native-endian, 64-byte aligned memory.

    The copy is what every framework can alias without copying again; ``dtype``
    casts in the same pass. An array of Python objects is copied by NumPy, unaligned.
    """
    dtype = a.dtype if dtype is None else np.dtype(dtype)
    if not dtype.isnative:
        dtype = dtype.newbyteorder("=")
    if dtype.hasobject:
        # References, not bytes: an array over raw memory would hold garbage pointers,
        # which the assignment below releases. NumPy's own allocation starts them as
        # None; no framework aliases such an array, so its alignment does not matter.
        return np.array(a, dtype=dtype, order="C", copy=True)
    nbytes = a.size * dtype.itemsize
    raw = np.empty(nbytes + ALIGNMENT, dtype=_u8)
    start = -_data_address(raw) % ALIGNMENT
    out: np.ndarray[Any, Any] = np.ndarray(a.shape, dtype, raw, start)
    out[...] = a
    return out


#: From this size up, a copy made for a framework that can alias any host memory
#: (PyTorch) is 64-byte aligned too, so that converting the result on to TensorFlow
#: or JAX aliases it rather than copying it again. Below it, NumPy's own allocation
#: costs a fifth as much as the aligned one, and a second copy next to nothing.
ALIGNED_COPY_BYTES = 1 << 16


def owned_copy(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """One copy of ``a`` into fresh native-endian memory with positive strides.

    64-byte aligned (:func:`aligned_copy`) from ``ALIGNED_COPY_BYTES`` up.
    """
    if a.nbytes >= ALIGNED_COPY_BYTES:
        return aligned_copy(a)
    dtype = a.dtype
    if type(a) is np.ndarray and dtype.isnative:
        return a.copy(order="K")  # (the method costs two thirds of np.array)
    return np.array(a, dtype=dtype if dtype.isnative else dtype.newbyteorder("="), order="K")


def layout_problem(
    a: np.ndarray[Any, Any],
    *,
    contiguous: bool,
    aligned: bool,
    positive: bool = True,
    ordered: bool = False,
) -> str | None:
    """Why a framework with these needs cannot alias ``a``'s memory, or ``None``.

    Strides that are not whole items are a problem for every framework: PyTorch
    refuses them, and DLPack counts strides in items. ``contiguous``: the data must be
    C-contiguous as NumPy defines it (dimensions of size 1 may have any stride).
    ``ordered``: the strides must also not grow from one dimension to the next, those
    of size-1 dimensions included; an importer that reads the order of the dimensions
    from the sorted strides (XLA's DLPack import) copies any other layout.
    """
    dtype = a.dtype
    if not dtype.isnative:
        return "the data is not in native byte order"
    shape = a.shape
    flags = a.flags
    # The strides of a C-contiguous array with no dimension of size 0 or 1 are the
    # compact ones, which pass every test below but the alignment.
    if flags.c_contiguous and 1 not in shape and 0 not in shape:
        if not aligned:
            return None
        offset = _data_address(a) % ALIGNMENT
    else:
        problem = _strides_problem(a, contiguous, positive, ordered)
        if problem is not None:
            return problem
        offset = misalignment(a) if aligned else 0
    if offset:
        return (
            f"the data is not {ALIGNMENT}-byte aligned (it starts {offset} bytes past a boundary)"
        )
    return None


def _strides_problem(
    a: np.ndarray[Any, Any], contiguous: bool, positive: bool, ordered: bool
) -> str | None:
    strides = a.strides
    itemsize = a.itemsize
    mask = itemsize - 1
    if itemsize & mask == 0:  # a power of two: one test of the strides' low bits
        odd = bool(functools.reduce(operator.or_, strides, 0) & mask)
    else:
        odd = any(s % itemsize for s in strides)
    if odd:
        return f"the strides {strides} are not whole multiples of the item size ({itemsize} bytes)"
    if contiguous and not a.flags.c_contiguous:
        return "the data is not C-contiguous"
    if positive and strides and min(strides) < 0:
        return "the data has negative strides"
    if ordered and any(s < t for s, t in itertools.pairwise(strides)):
        return f"the strides {strides} are not in row-major order"
    return None


# Dtypes check_numeric has accepted (few: it is asked about the dtypes of real data).
_numeric: set[np.dtype[Any]] = set()


def check_numeric(dtype: np.dtype[Any], target: str) -> None:
    """Raise :class:`ConversionError` unless ``dtype`` holds numbers (or booleans)."""
    if dtype in _numeric:
        return
    if dtype.type.__module__ == "ml_dtypes" or (dtype.names is None and dtype.kind in "biufc"):
        if len(_numeric) < 256:
            _numeric.add(dtype)
        return
    raise ConversionError(
        f"expected numeric data to convert to {target}, got dtype {dtype}. "
        "hint: convert it with interop.to_numpy and handle it in NumPy"
    )
