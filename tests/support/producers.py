"""Tiny, real producers of the generic array protocols, shared by the tests.

Each wraps a NumPy array (or a tensor) and exposes its memory through exactly one
protocol, the way a third-party library would, so that a test can check which
protocol ``interop`` used and whether the result aliases the producer's memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interop._devices import DeviceExport, Layout
from interop._memory import aligned_copy


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
    """An ``__array__`` written before NumPy 2 (no ``copy`` keyword) that returns its memory.

    ``calls`` counts the calls of ``__array__``.
    """

    def __init__(self, array: np.ndarray, *, fresh: bool = False) -> None:
        self.array = array
        self.fresh = fresh
        self.calls = 0

    def __array__(self, dtype: Any = None) -> np.ndarray:
        self.calls += 1
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


class HostKindProducer:
    """A DLPack producer of host memory that reports another host device type.

    PyTorch reports a pinned CPU tensor as ``kDLCUDAHost`` (3); CUDA managed memory
    is ``kDLCUDAManaged`` (13) and ROCm pinned memory ``kDLROCMHost`` (11). The
    capsules say so too: their device type is rewritten, as such a producer's
    would be, except in a copy into CPU memory (``dl_device=(1, 0)``, ``copy=True``),
    which is plain CPU memory. ``exports`` records the keywords of every call.
    """

    def __init__(self, array: np.ndarray, device_type: int = 3) -> None:
        self.array = array
        self.device_type = device_type
        self.exports: list[dict[str, Any]] = []

    def __dlpack__(self, **kwargs: Any) -> Any:
        from interop.backends.generic import capsule as c

        self.exports.append(kwargs)
        out = self.array.__dlpack__(**kwargs)
        if kwargs.get("copy") and kwargs.get("dl_device") is not None:
            return out
        if c._is_valid(out, c._VERSIONED):
            managed = c._ManagedVersioned.from_address(c._get_pointer(out, c._VERSIONED))
        else:
            managed = c._Managed.from_address(c._get_pointer(out, c._LEGACY))
        managed.dl_tensor.device.device_type = self.device_type
        return out

    def __dlpack_device__(self) -> tuple[int, int]:
        return (self.device_type, 0)


class HostKindArrayApi(HostKindProducer):
    """A :class:`HostKindProducer` that is also an Array API array on the ``"cpu"`` device.

    Its backend (the generic Array API one) offers the object itself to a target's
    DLPack import: the way a pinned PyTorch tensor reaches JAX.
    """

    device = "cpu"

    def __array_namespace__(self, api_version: Any = None) -> Any:
        return np

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    @property
    def dtype(self) -> Any:
        return self.array.dtype


class HostDeviceExport(DeviceExport):
    """A :class:`~interop._devices.DeviceExport` over host memory, for CPU tests of device routes.

    It stands where a CUDA tensor's export stands in ``convert``'s device route
    (the same class and layout check), over a NumPy array a CPU importer reads.
    ``compacted`` counts the compact copies asked for; ``streams`` records the
    ``stream`` of every export.
    """

    __slots__ = ("compacted", "streams")

    def __init__(self, array: np.ndarray) -> None:
        strides = tuple(s // array.itemsize for s in array.strides)
        address = array.__array_interface__["data"][0]
        super().__init__(array, (1, 0), Layout(array.shape, strides, array.itemsize, address))
        self.compacted = 0
        self.streams: list[Any] = []

    def __dlpack__(self, *, stream: Any = None, **kwargs: Any) -> Any:
        self.streams.append(stream)
        return self.array.__dlpack__(**kwargs)

    def compact(self) -> HostDeviceExport:
        self.compacted += 1
        return HostDeviceExport(aligned_copy(self.array))
