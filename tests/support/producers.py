"""Tiny, real producers of the generic array protocols, shared by the tests.

Each wraps a NumPy array (or a tensor) and exposes its memory through exactly one
protocol, the way a third-party library would, so that a test can check which
protocol ``interop`` used and whether the result aliases the producer's memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class DLPackProducer:
    """A minimal DLPack producer: it exports another array's memory and nothing else.

    ``exports`` records the keywords of every ``__dlpack__`` call.
    """

    def __init__(self, array: Any) -> None:
        self.array = array
        self.exports: list[dict[str, Any]] = []

    def __dlpack__(self, **kwargs: Any) -> Any:
        self.exports.append(kwargs)
        return self.array.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.array.__dlpack_device__()  # type: ignore[no-any-return]


class LegacyDLPackProducer:
    """A DLPack producer from before DLPack 1.0: ``__dlpack__`` takes only ``stream``."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.exports = 0

    def __dlpack__(self, stream: Any = None) -> Any:
        self.exports += 1
        return self.array.__dlpack__(stream=stream)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.array.__dlpack_device__()  # type: ignore[no-any-return]


class ArrayMethod:
    """An object with a NumPy 2 style ``__array__`` over memory it keeps."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.calls: list[dict[str, Any]] = []

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        self.calls.append({"dtype": dtype, "copy": copy})
        if copy:
            return np.array(self.array, dtype=dtype, copy=True)
        return np.asarray(self.array, dtype=dtype)


class LegacyArrayMethod:
    """An ``__array__`` written before NumPy 2 (no ``copy`` keyword) that returns its memory."""

    def __init__(self, array: np.ndarray, *, fresh: bool = False) -> None:
        self.array = array
        self.fresh = fresh

    def __array__(self, dtype: Any = None) -> np.ndarray:
        return self.array.copy() if self.fresh else self.array


class InterfaceOnly:
    """An object that exposes its memory only through ``__array_interface__``."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    @property
    def __array_interface__(self) -> dict[str, Any]:
        return self.array.__array_interface__


class DLPackAndArrayMethod(DLPackProducer):
    """Both ``__dlpack__`` and ``__array__``: DLPack comes first in the dispatch order."""

    def __init__(self, array: np.ndarray) -> None:
        super().__init__(array)
        self.array_calls = 0

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        self.array_calls += 1
        return np.array(self.array, dtype=dtype, copy=copy)


class DLPackAndLegacyArrayMethod(DLPackProducer):
    """Both ``__dlpack__`` and an ``__array__`` written before NumPy 2 (no ``copy``)."""

    def __init__(self, array: np.ndarray) -> None:
        super().__init__(array)
        self.array_calls = 0

    def __array__(self, dtype: Any = None) -> np.ndarray:
        self.array_calls += 1
        return np.asarray(self.array, dtype=dtype)
