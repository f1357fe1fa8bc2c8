"""DLPack data in the formats NumPy cannot import (bfloat16, float8, ...), read through its bits.

DLPack names a dtype by ``(type code, bits, lanes)``. :func:`numpy.from_dlpack`
imports the codes of bool, int, uint, float and complex, and refuses the others
(bfloat16, the float8 family, float6, float4, complex32) although ``ml_dtypes``
holds each with the very same bits. A capsule of such data is imported here as the
unsigned integer of the same width, and the result viewed as the exact
``ml_dtypes`` dtype: the same memory, no copy, and NumPy's own import does all the
rest (the device check, strides and offset, the read-only flag of DLPack 1.0, and
the deleter that keeps the producer's memory alive as long as the array).

How: :class:`Reinterpreter` stands between the producer and NumPy. NumPy calls its
``__dlpack__`` as it would the producer's (same keywords, same fallback to a call
without them); it forwards the call, and before handing the capsule on, reads the
``DLManagedTensor`` (legacy) or ``DLManagedTensorVersioned`` (DLPack 1.x) it holds
through ``ctypes`` and rewrites the dtype's code (and, for sub-byte formats one
value per byte, its bits) in place. That struct is the consumer's to read from
the moment ``__dlpack__`` returns it until its deleter runs, and the deleter
releases what ``manager_ctx`` holds: DLPack gives the dtype no part in it.
A capsule that is not a DLPack capsule, already used, or of a DLPack major version
this layout does not describe, is handed on untouched for NumPy to refuse.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from interop import _dtypes
from interop._errors import ConversionError, type_name

__all__ = ["Reinterpreter"]


class _Device(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _Tensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", _Device),
        ("ndim", ctypes.c_int32),
        ("dtype", _DataType),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("byte_offset", ctypes.c_uint64),
    ]


class _Managed(ctypes.Structure):
    _fields_ = [
        ("dl_tensor", _Tensor),
        ("manager_ctx", ctypes.c_void_p),
        ("deleter", ctypes.c_void_p),
    ]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint32), ("minor", ctypes.c_uint32)]


class _ManagedVersioned(ctypes.Structure):
    _fields_ = [
        ("version", _Version),
        ("manager_ctx", ctypes.c_void_p),
        ("deleter", ctypes.c_void_p),
        ("flags", ctypes.c_uint64),
        ("dl_tensor", _Tensor),
    ]


# Prototypes of their own, rather than the shared ``ctypes.pythonapi`` attributes,
# whose argtypes any other code in the process may set differently.
_is_valid = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_IsValid", ctypes.pythonapi)
)
_get_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi)
)

_LEGACY = b"dltensor"
_VERSIONED = b"dltensor_versioned"
# DLPACK_FLAG_BITMASK_IS_COPIED: the producer copied the data for this export.
_COPIED = 1 << 1
# DLPACK_FLAG_BITMASK_IS_SUBBYTE_TYPE_PADDED: one sub-byte value per byte, not packed.
_PADDED = 1 << 2
_UINT = 1

# (type code, bits) pairs NumPy imports by itself.
_NUMPY = frozenset(
    {(6, 8)}
    | {(code, bits) for code in (0, 1) for bits in (8, 16, 32, 64)}
    | {(2, 16), (2, 32), (2, 64), (5, 64), (5, 128)}
)
# The other (type code, bits) pairs of dlpack.h (DLPack 1.1), by ml_dtypes name.
_FORMATS = {
    (4, 16): "bfloat16",
    (5, 32): "complex32",
    (7, 8): "float8_e3m4",
    (8, 8): "float8_e4m3",
    (9, 8): "float8_e4m3b11fnuz",
    (10, 8): "float8_e4m3fn",
    (11, 8): "float8_e4m3fnuz",
    (12, 8): "float8_e5m2",
    (13, 8): "float8_e5m2fnuz",
    (14, 8): "float8_e8m0fnu",
    (15, 6): "float6_e2m3fn",
    (16, 6): "float6_e3m2fn",
    (17, 4): "float4_e2m1fn",
    (0, 4): "int4",
    (1, 4): "uint4",
    (0, 2): "int2",
    (1, 2): "uint2",
    (0, 1): "int1",
    (1, 1): "uint1",
}


class Reinterpreter:
    """A DLPack producer standing in for ``source`` that :func:`numpy.from_dlpack` imports.

    After the import, :attr:`dtype` is the ``ml_dtypes`` dtype to view NumPy's
    result as, or ``None`` where NumPy's dtype is the data's own, and :attr:`copied`
    whether the producer says (DLPack 1.0's ``IS_COPIED`` flag) that the capsule
    holds a copy it made for this export. Data of a dtype
    with no NumPy form at all raises :class:`~interop.ConversionError` from
    ``__dlpack__`` (NumPy lets it through; the unused capsule calls its deleter).
    """

    __slots__ = ("copied", "dtype", "source")

    def __init__(self, source: Any) -> None:
        self.source = source
        self.dtype: np.dtype[Any] | None = None
        self.copied = False

    def __dlpack__(self, **kwargs: Any) -> Any:
        capsule = self.source.__dlpack__(**kwargs)
        dtype, problem, flags = _rewrite(capsule)
        self.copied = bool(flags & _COPIED)
        if problem is not None:
            raise ConversionError(
                f"expected DLPack data of a dtype NumPy can hold, got `{type_name(self.source)}`"
                f": {problem}. hint: convert it to a standard dtype (float32, say) with its "
                "own library first"
            )
        self.dtype = dtype
        return capsule

    def __dlpack_device__(self) -> Any:
        return self.source.__dlpack_device__()


def _rewrite(capsule: Any) -> tuple[np.dtype[Any] | None, str | None, int]:
    """Rewrite the dtype of an ml_dtypes format in ``capsule`` as same-width unsigned ints.

    Returns ``(the ml_dtypes dtype, None, flags)`` after a rewrite, ``(None, None,
    flags)`` where NumPy reads the capsule as it is (or refuses it for a reason of its
    own), and ``(None, why, flags)`` for a dtype without any NumPy form (left
    untouched); ``flags`` are those of a DLPack 1.x capsule, 0 for a legacy one.
    """
    flags = 0
    if _is_valid(capsule, _VERSIONED):
        versioned = _ManagedVersioned.from_address(_get_pointer(capsule, _VERSIONED))
        if versioned.version.major != 1:  # a layout this struct does not describe
            return None, None, 0
        flags = versioned.flags
        dtype = versioned.dl_tensor.dtype
    elif _is_valid(capsule, _LEGACY):
        dtype = _Managed.from_address(_get_pointer(capsule, _LEGACY)).dl_tensor.dtype
    else:
        return None, None, 0
    code, bits, lanes = dtype.code, dtype.bits, dtype.lanes
    if lanes == 1 and (code, bits) in _NUMPY:
        return None, None, flags
    described = f"(type code {code}, {bits} bits, {lanes} lanes)"
    name = _FORMATS.get((code, bits))
    if lanes != 1 or name is None:
        return None, f"DLPack dtype {described} has no NumPy or ml_dtypes counterpart", flags
    target = _dtypes.complex32() if name == "complex32" else _dtypes.ml_dtype(name)
    if target is None:
        return None, f"the installed ml_dtypes has no {name} for DLPack dtype {described}", flags
    if bits < 8 and not flags & _PADDED:
        return (
            None,
            f"the DLPack data is {name} packed several values per byte, and ml_dtypes "
            "holds one value per byte: no view of that memory can hold it",
            flags,
        )
    dtype.code = _UINT
    dtype.bits = 8 * target.itemsize
    return target, None, flags
