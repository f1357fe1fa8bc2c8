"""NumPy-side facts about nonstandard dtypes, shared by every backend.

A nonstandard dtype is one NumPy lacks but ``ml_dtypes`` provides: bfloat16, the
float8, float6 and float4 formats, the sub-byte integers int4/int2/int1 (and their
unsigned twins), and complex32. Every backend maps a framework's format to the
*same* ``ml_dtypes`` dtype object, so ``ml_dtypes.bfloat16`` comes back from
PyTorch, TensorFlow and JAX alike.

``ml_dtypes`` stores each sub-byte value (int4, float4, ...) in one byte of its
own, reading the low bits; a framework that packs two values per byte must unpack
them, which copies.

``ml_dtypes`` is imported only when a nonstandard dtype is met, never at
``import interop``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "NONSTANDARD",
    "NUMPY_NAMES",
    "bit_width",
    "bits_dtype",
    "cast_hint",
    "cast_on_device",
    "has_nan",
    "holds",
    "holds_bool",
    "holds_format",
    "holds_raw_bytes",
    "is_raw_bytes",
    "complex32",
    "exact_on_device",
    "is_standard",
    "ml_dtype",
    "upcast_target",
]

#: NumPy's own numbers and booleans, by name: the dtypes every framework shares with it.
NUMPY_NAMES = (
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
)

#: Every nonstandard format, by its ``ml_dtypes`` name, in the order docs/dtypes.md lists them.
NONSTANDARD = (
    "bfloat16",
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "float8_e4m3b11fnuz",
    "float8_e4m3",
    "float8_e3m4",
    "float8_e8m0fnu",
    "float6_e2m3fn",
    "float6_e3m2fn",
    "float4_e2m1fn",
    "int4",
    "uint4",
    "int2",
    "uint2",
    "int1",
    "uint1",
    "complex32",
)

# complex32 pairs in ml_dtypes (real and imaginary parts of 16 bits each).
_COMPLEX_PAIRS = ("complex32", "bcomplex32")


@functools.cache
def ml_dtype(name: str) -> np.dtype[Any] | None:
    """The ``ml_dtypes`` dtype called ``name`` (``"bfloat16"``, ``"float8_e4m3fn"``, ...).

    ``None`` where the installed ``ml_dtypes`` does not have that format.
    """
    import ml_dtypes

    t = getattr(ml_dtypes, name, None)
    return None if t is None else np.dtype(t)


@functools.cache
def complex32() -> np.dtype[Any]:
    """The dtype of a pair of float16 (PyTorch's ``complex32``/``chalf``).

    ``ml_dtypes.complex32`` where the installed ``ml_dtypes`` has it (0.6 and
    later); otherwise a structured dtype with float16 fields ``real`` and ``imag``,
    which holds the same bits.
    """
    found = ml_dtype("complex32")
    if found is not None:
        return found
    return np.dtype([("real", np.float16), ("imag", np.float16)])


def bits_dtype(itemsize: int) -> np.dtype[Any]:
    """The unsigned integer dtype of the same width, used to reinterpret bits."""
    return np.dtype(f"u{itemsize}")


def _is_complex_pair(dtype: np.dtype[Any]) -> bool:
    if dtype.names == ("real", "imag") and dtype.itemsize == 4:
        return True
    return dtype.type.__module__ == "ml_dtypes" and dtype.name in _COMPLEX_PAIRS


# (Bounded: programs meet many structured and string dtypes, made on the fly.)
@functools.lru_cache(maxsize=256)
def bit_width(dtype: np.dtype[Any]) -> int:
    """The number of bits one value of ``dtype`` holds (4 for int4, 16 for bfloat16).

    Example:
        >>> import ml_dtypes, numpy as np
        >>> bit_width(np.dtype(ml_dtypes.int4)), bit_width(np.dtype(np.float32))
        (4, 32)
    """
    if is_standard(dtype) or _is_complex_pair(dtype):
        return 8 * dtype.itemsize
    import ml_dtypes

    for info in (ml_dtypes.finfo, ml_dtypes.iinfo):
        try:
            return int(info(dtype).bits)
        except (ValueError, TypeError):
            continue
    return 8 * dtype.itemsize


def holds(dtype: np.dtype[Any] | None, kind: Callable[[np.dtype[Any]], bool], /) -> bool:
    """Whether ``dtype``, one of its fields (at any depth) or its elements is of ``kind``."""
    if dtype is None:
        return False
    if kind(dtype):
        return True
    if dtype.subdtype is not None:
        return holds(dtype.subdtype[0], kind)
    return dtype.fields is not None and any(holds(f[0], kind) for f in dtype.fields.values())


def holds_bool(dtype: np.dtype[Any] | None) -> bool:
    """Whether ``dtype`` is bool, or has a bool field (at any depth) or bool elements.

    Example:
        >>> holds_bool(np.dtype([("flag", bool), ("x", "f4")])), holds_bool(np.dtype("i1"))
        (True, False)
    """
    return holds(dtype, _is_bool)


def holds_format(dtype: np.dtype[Any] | None) -> bool:
    """Whether ``dtype`` is an ``ml_dtypes`` format, or has one as a field or its elements."""
    return holds(dtype, _is_format)


def holds_raw_bytes(dtype: np.dtype[Any] | None) -> bool:
    """Whether ``dtype`` is raw bytes (``np.void`` without fields), or holds them.

    Example:
        >>> holds_raw_bytes(np.dtype([("key", "V4")])), holds_raw_bytes(np.dtype([("a", "i4")]))
        (True, False)
    """
    return holds(dtype, is_raw_bytes)


def is_raw_bytes(dtype: np.dtype[Any]) -> bool:
    """Whether ``dtype`` is raw bytes: ``np.void`` without fields or elements."""
    return dtype.type is np.void and dtype.fields is None and dtype.subdtype is None


@functools.lru_cache(maxsize=64)
def has_nan(dtype: np.dtype[Any]) -> bool:
    """Whether ``dtype`` holds NaN: NumPy's floating-point and complex dtypes, and the
    ``ml_dtypes`` floats that have one (the 4- and 6-bit formats have none: NaN casts
    to -0 there).

    Example:
        >>> import ml_dtypes
        >>> has_nan(np.dtype(ml_dtypes.bfloat16)), has_nan(np.dtype(ml_dtypes.float4_e2m1fn))
        (True, False)
    """
    if dtype.kind in "fc":
        return True
    if not _is_format(dtype) or not dtype.name.startswith(("float", "bfloat")):
        return False
    return bool(np.isnan(np.array(np.nan).astype(dtype).astype(np.float64)))


def _is_bool(dtype: np.dtype[Any]) -> bool:
    return dtype.kind == "b"


def _is_format(dtype: np.dtype[Any]) -> bool:
    return dtype.type.__module__ == "ml_dtypes"


def cast_hint(dtype: np.dtype[Any]) -> str:
    """A hint's way to turn data of ``dtype``, which a framework cannot hold, into a dtype it can.

    ``upcast=True`` only for the formats it changes (bfloat16, float8, int4, ...):
    NumPy's longdouble and its complex are standard dtypes, which it leaves alone.

    Example:
        >>> cast_hint(np.dtype(np.longdouble))
        'cast it to a standard dtype first, for example with interop.to_numpy(x, dtype=np.float64)'
    """
    if upcast_target(dtype) is not None:
        way = "interop.to_numpy(x, upcast=True)"
    elif dtype.kind in "fc":
        way = f"interop.to_numpy(x, dtype=np.{'complex128' if dtype.kind == 'c' else 'float64'})"
    else:
        way = "interop.to_numpy(x, dtype=...)"
    return f"cast it to a standard dtype first, for example with {way}"


@functools.lru_cache(maxsize=256)
def upcast_target(dtype: np.dtype[Any]) -> np.dtype[Any] | None:
    """The nearest standard dtype that holds every value of ``dtype`` exactly.

    ``None`` for a dtype that is already standard. bfloat16, float8, float6 and
    float4 become float32; int4/int2/int1 become int8 and uint4/uint2/uint1 become
    uint8; complex32 becomes complex64.

    Example:
        >>> import ml_dtypes, numpy as np
        >>> upcast_target(np.dtype(ml_dtypes.bfloat16)), upcast_target(np.dtype(np.int16))
        (dtype('float32'), None)
    """
    if _is_complex_pair(dtype):
        return np.dtype(np.complex64)
    if is_standard(dtype):
        return None
    import ml_dtypes

    try:
        ml_dtypes.finfo(dtype)
        return np.dtype(np.float32)
    except (ValueError, TypeError):
        pass
    try:
        info = ml_dtypes.iinfo(dtype)
    except (ValueError, TypeError):
        return None
    return np.dtype(np.int8 if info.min < 0 else np.uint8)


def is_standard(dtype: np.dtype[Any]) -> bool:
    """Whether ``dtype`` is one of NumPy's own dtypes (not an ``ml_dtypes`` extension)."""
    return dtype.type.__module__ in ("numpy", "builtins") and dtype.names is None


def exact_on_device(source: np.dtype[Any], target: np.dtype[Any], /) -> bool:
    """Whether every framework's cast on an accelerator gives the host cast's exact bits.

    The table of provably exact device casts, the one rule every backend's plan
    (PyTorch, CuPy, JAX, TensorFlow) consults before casting on the device:

    * the same dtype;
    * integer or boolean to integer or boolean: two's-complement wrap-around to a
      narrower integer, sign or zero extension to a wider one, and ``x != 0`` to
      bool are what NumPy's C casts, CUDA's integer conversions, XLA's
      ``ConvertElementType`` and TensorFlow's ``Cast`` all define;
    * bool or an integer of at most 16 bits to float32 or float64, and a 32-bit
      integer to float64: every value is exact in the target.

    Floating-point narrowing is never on the list. PyTorch casts float64 to float16
    through float32 (two roundings: ``1 + 2**-11 + 2**-30`` becomes 1.0, where NumPy
    gives 1.001); PyTorch saturates float8 (1000 and inf become 448 in
    float8_e4m3fn, where ``ml_dtypes`` gives NaN); CUDA's half conversions
    canonicalise NaN payloads. Floating-point widening is exact in value but not
    proven identical in NaN payload bits, and never saves bus bytes, so it is left
    out as well. ``ml_dtypes`` formats are never cast on a device.

    Example:
        >>> import numpy as np
        >>> exact_on_device(np.dtype("int64"), np.dtype("int32"))
        True
        >>> exact_on_device(np.dtype("float64"), np.dtype("float16"))
        False
    """
    if source == target:
        return True
    if not (is_standard(source) and is_standard(target)):
        return False
    if source.kind in "biu" and target.kind in "biu":
        return True
    if target.kind == "f" and source.kind in "biu":
        # float32 holds every integer of up to 24 bits, float64 of up to 53.
        return source.itemsize <= (2 if target.itemsize == 4 else 4) and target.itemsize >= 4
    return False


def cast_on_device(source: np.dtype[Any], target: np.dtype[Any] | None, /) -> bool:
    """Whether a plan casts ``source`` data to ``target`` on the accelerator before its copy.

    Only where the cast moves fewer bytes over the bus (``target`` is narrower) and
    :func:`exact_on_device` proves it gives the host cast's result; anywhere else the
    data is copied as it is and cast on the host.

    Example:
        >>> import numpy as np
        >>> cast_on_device(np.dtype("int64"), np.dtype("int16"))
        True
        >>> cast_on_device(np.dtype("float32"), np.dtype("float16"))
        False
    """
    return (
        target is not None and target.itemsize < source.itemsize and exact_on_device(source, target)
    )
