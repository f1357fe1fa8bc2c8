"""NumPy-side facts about nonstandard dtypes, shared by every backend.

``ml_dtypes`` is imported only when a nonstandard dtype is met, never at
``import interop``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

__all__ = ["bits_dtype", "ml_dtype", "upcast_target"]


@functools.cache
def ml_dtype(name: str) -> np.dtype[Any] | None:
    """The ``ml_dtypes`` dtype called ``name`` (``"bfloat16"``, ``"float8_e4m3fn"``, ...)."""
    import ml_dtypes

    t = getattr(ml_dtypes, name, None)
    return None if t is None else np.dtype(t)


def bits_dtype(itemsize: int) -> np.dtype[Any]:
    """The unsigned integer dtype of the same width, used to reinterpret bits."""
    return np.dtype(f"u{itemsize}")


@functools.cache
def upcast_target(dtype: np.dtype[Any]) -> np.dtype[Any] | None:
    """The nearest standard dtype that holds every value of ``dtype`` exactly.

    ``None`` for a dtype that is already standard. bfloat16, float8, float6 and
    float4 become float32; int4/int2 become int8 and uint4/uint2 become uint8;
    complex32 (a pair of float16 fields named ``real`` and ``imag``) becomes complex64.
    """
    if dtype.names == ("real", "imag") and dtype.itemsize == 4:
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
