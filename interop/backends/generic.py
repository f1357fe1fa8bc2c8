"""The generic protocols, consulted after every framework backend, in this order.

1. :class:`ArrayApiBackend`: objects with ``__array_namespace__`` (the Array API
   standard), moved to the CPU with ``to_device`` when they live elsewhere.
2. :class:`DLPackBackend`: objects with ``__dlpack__`` (DLPack 1.0 negotiated with
   ``max_version=(1, 0)`` by :func:`numpy.from_dlpack`, which falls back to the
   legacy protocol on ``TypeError``).
3. :class:`ArrayProtocolBackend`: ``__array__``, ``__array_interface__`` and the
   buffer protocol.
4. :class:`PythonBackend`: Python scalars, and lists and tuples (converted like
   :func:`numpy.asarray`, after converting any framework tensors inside them).

The order goes from the protocol that says the most about copies and devices to
the one that says the least.
"""

from __future__ import annotations

import inspect
import numbers
import operator
from typing import Any

import numpy as np

from interop import _dtypes, _plan, _registry
from interop._errors import ConversionError, TransferError, type_name
from interop._options import Options
from interop._plan import Plan
from interop._registry import Backend

__all__ = [
    "ArrayApiBackend",
    "ArrayProtocolBackend",
    "DLPackBackend",
    "PythonBackend",
    "generic_backends",
]

# DLPack device types (dlpack.h): which ones are host memory NumPy can read.
_DL_CPU = 1
_DL_HOST_TYPES = {1: "cpu", 3: "cuda_host", 13: "cuda_managed"}
_DL_NAMES = {2: "cuda", 4: "opencl", 7: "vulkan", 8: "metal", 9: "vpi", 10: "rocm", 14: "oneapi"}


def _dl_device(x: Any) -> tuple[int, int]:
    dev: Any = None
    try:
        dev = x.__dlpack_device__()
        kind, index = dev  # exactly two entries
        kind, index = operator.index(kind), operator.index(index)  # ints (or IntEnums)
    except Exception as exc:
        raise ConversionError(
            f"expected __dlpack_device__() to return (device_type, device_id), got an "
            f"error or nonsense from `{type_name(x)}`: {exc!r}. hint: convert it with "
            "its own library's API first"
        ) from exc
    if kind < 1 or index < 0:
        raise ConversionError(
            f"expected __dlpack_device__() to return a DLPack device type (1 = CPU, 2 = CUDA, "
            f"...) and a device id >= 0, got {dev!r} from `{type_name(x)}`. hint: convert "
            "it with its own library's API first"
        )
    return kind, index


def _dl_device_str(kind: int, index: int) -> str:
    if kind in _DL_HOST_TYPES:
        return _DL_HOST_TYPES[kind]
    return f"{_DL_NAMES.get(kind, f'dlpack_device_{kind}')}:{index}"


def _from_dlpack(x: Any, plan: Plan) -> np.ndarray[Any, Any]:
    try:
        return np.from_dlpack(x)
    except BufferError as exc:
        raise ConversionError(
            f"expected a DLPack capsule NumPy can read, got an error from `{type_name(x)}`: {exc}"
        ) from exc


def _from_dlpack_copy_to_host(x: Any, plan: Plan) -> np.ndarray[Any, Any]:
    try:
        return np.from_dlpack(x, device="cpu", copy=True)
    except (BufferError, ValueError, TypeError) as exc:
        raise TransferError(
            f"expected `{type_name(x)}` to copy its {plan.device} data to host memory through "
            f"DLPack, but it refused: {exc}. hint: move it to the CPU with its own API first"
        ) from exc


class DLPackBackend(Backend):
    """Objects that implement ``__dlpack__`` and ``__dlpack_device__``."""

    name = "dlpack"

    def __init__(self) -> None:
        super().__init__()
        self.steps.update(from_dlpack=_from_dlpack, dlpack_to_host=_from_dlpack_copy_to_host)

    def matches(self, cls: type) -> bool:
        return hasattr(cls, "__dlpack__") and hasattr(cls, "__dlpack_device__")

    def plan(self, x: Any, options: Options, /) -> Plan:
        kind, index = _dl_device(x)
        device = _dl_device_str(kind, index)
        transfer = kind not in _DL_HOST_TYPES
        if transfer:
            steps = ["dlpack_to_host"]
            reason: str | None = f"the data is on {device} and must be copied to host memory"
        else:
            steps, reason = ["from_dlpack"], None
        return _plan.finish(
            self.name,
            device,
            steps,
            source_dtype=None,
            options=options,
            copy_reason=reason,
            transfer=transfer,
        )

    def run(self, x: Any, plan: Plan, /) -> np.ndarray[Any, Any]:
        a: np.ndarray[Any, Any] = self.steps[plan.steps[0]](x, plan)
        return _finish_unknown_dtype(self, a, plan)  # type: ignore[no-any-return]


def _finish_unknown_dtype(backend: Backend, a: np.ndarray[Any, Any], plan: Plan) -> Any:
    """Run the shared tail of a plan whose source dtype was only known after the view."""
    for step in plan.steps[1:]:
        a = backend.steps[step](a, plan)
    return a


class ArrayApiBackend(Backend):
    """Array API objects (``__array_namespace__``), through DLPack after ``to_device``."""

    name = "array_api"

    def __init__(self) -> None:
        super().__init__()
        self.steps.update(
            from_dlpack=_from_dlpack,
            to_cpu=self._to_cpu,
            array_protocol=lambda x, p: np.asarray(x),
        )

    def matches(self, cls: type) -> bool:
        return hasattr(cls, "__array_namespace__")

    def plan(self, x: Any, options: Options, /) -> Plan:
        import array_api_compat

        dev = array_api_compat.device(x)
        device = str(dev)
        # Array API devices have no common type; every CPU device names itself so.
        on_cpu = "cpu" in device.lower()
        steps: list[str] = []
        reason: str | None = None
        if not on_cpu:
            steps.append("to_cpu")
            reason = f"the data is on {device} and must be copied to host memory"
        steps.append("from_dlpack" if hasattr(x, "__dlpack__") else "array_protocol")
        return _plan.finish(
            self.name,
            "cpu" if on_cpu else device,
            steps,
            source_dtype=None,
            options=options,
            copy_reason=reason,
            transfer=not on_cpu,
        )

    def run(self, x: Any, plan: Plan, /) -> np.ndarray[Any, Any]:
        obj = x
        i = 0
        if plan.steps[0] == "to_cpu":
            obj = self._to_cpu(obj, plan)
            i = 1
        a: np.ndarray[Any, Any] = self.steps[plan.steps[i]](obj, plan)
        for step in plan.steps[i + 1 :]:
            a = self.steps[step](a, plan)
        return a

    def _to_cpu(self, x: Any, plan: Plan) -> Any:
        import array_api_compat

        return array_api_compat.to_device(x, "cpu")


class ArrayProtocolBackend(Backend):
    """Objects with ``__array__``, ``__array_interface__`` or the buffer protocol."""

    name = "array_protocol"

    def __init__(self) -> None:
        super().__init__()
        self.steps.update(as_array=lambda x, p: p.prepared)

    def matches(self, cls: type) -> bool:
        if issubclass(cls, (str, bytes)):
            return False
        return (
            hasattr(cls, "__array__")
            or hasattr(cls, "__array_interface__")
            or hasattr(cls, "__buffer__")
            or issubclass(cls, (memoryview, bytearray))
            or _has_buffer(cls)
        )

    def plan(self, x: Any, options: Options, /) -> Plan:
        # Ask for a view first; only if the object cannot give one, let it copy.
        try:
            a = _asarray_view(x)
            reason = None
        except ValueError:
            if options.copy is False:
                # Report without making the copy that copy=False forbids.
                return _plan.finish(
                    self.name,
                    "cpu",
                    ["as_array"],
                    source_dtype=None,
                    options=options,
                    copy_reason=f"`{type_name(x)}` cannot hand out a view of its data",
                )
            a = _asarray_copy(x)
            reason = f"`{type_name(x)}` cannot hand out a view of its data; it is copied"
        _check_declared_bounds(x, a)
        if a.dtype == object:
            raise ConversionError(
                f"expected numeric data, got `{type_name(x)}` whose __array__ returned an "
                "object array. hint: convert its elements first"
            )
        return _plan.finish(
            self.name,
            "cpu",
            ["as_array"],
            source_dtype=a.dtype,
            options=options,
            copy_reason=reason,
            readonly=False,
            upcast_to=_dtypes.upcast_target(a.dtype),
            prepared=a,
        )


# type -> whether its ``__array__`` predates NumPy 2's ``copy`` keyword.
_legacy_types: dict[type, bool] = {}


def _legacy_array(cls: type) -> bool:
    """Whether NumPy would call ``cls.__array__`` without being able to pass ``copy``.

    NumPy 2 then emits a DeprecationWarning and cannot promise a view; the library
    avoids the warning by not asking such an object for ``copy`` at all.
    """
    try:
        return _legacy_types[cls]
    except KeyError:
        pass
    legacy = False
    method = getattr(cls, "__array__", None)
    # NumPy reads the buffer protocol and __array_interface__ before __array__.
    if method is not None and not hasattr(cls, "__array_interface__") and not _has_buffer(cls):
        try:
            params = inspect.signature(method).parameters.values()
        except (TypeError, ValueError):  # a C method: NumPy 2-era, takes copy
            params = None
        if params is not None:
            legacy = not any(p.name == "copy" or p.kind is p.VAR_KEYWORD for p in params)
    _legacy_types[cls] = legacy
    return legacy


def _asarray_view(x: Any) -> np.ndarray[Any, Any]:
    """``np.asarray(x, copy=False)``: a view, or ValueError where only a copy would do."""
    if _legacy_array(type(x)):
        # NumPy's own answer for such an object, without its DeprecationWarning.
        raise ValueError(f"`{type_name(x)}.__array__` does not accept NumPy 2's copy keyword")
    return np.asarray(x, copy=False)


def _asarray_copy(x: Any) -> np.ndarray[Any, Any]:
    """A copy of ``x``'s data that shares nothing with ``x``."""
    if _legacy_array(type(x)):
        # Such an __array__ may hand back its own memory: copy what it returns.
        return np.array(np.asarray(x), copy=True)
    return np.array(x, copy=True)


def _check_declared_bounds(x: Any, a: np.ndarray[Any, Any]) -> None:
    """Refuse an ``__array_interface__`` whose shape, strides or offset overrun its buffer.

    NumPy trusts the declared geometry: a 10**15-element shape over an 8-byte
    buffer would give an array that reads (or writes) far outside it. A raw
    pointer (``data=(address, readonly)``) cannot be checked, as in NumPy itself.
    """
    base = a.base
    if a.size == 0 or base is None or base is x or not hasattr(type(x), "__array_interface__"):
        return
    try:
        owner = base if isinstance(base, np.ndarray) else np.frombuffer(base, np.uint8)
    except (TypeError, ValueError, BufferError):
        return
    from numpy.lib.array_utils import byte_bounds

    low, high = byte_bounds(a)
    owner_low, owner_high = byte_bounds(owner)
    if low < owner_low or high > owner_high:
        raise ConversionError(
            f"expected an __array_interface__ that fits its buffer, got `{type_name(x)}` "
            f"declaring shape {a.shape}, strides {a.strides} and an offset that reach bytes "
            f"{low - owner_low} to {high - owner_low} of a buffer of {owner_high - owner_low} "
            "bytes. hint: fix the object's shape, strides or offset"
        )


def _has_buffer(cls: type) -> bool:
    # Python < 3.12 exposes no __buffer__ on C types; probe the few common ones.
    import array

    return issubclass(cls, array.array)


class PythonBackend(Backend):
    """Python scalars (``bool``, ``int``, ``float``, ``complex``), lists and tuples."""

    name = "python"

    def __init__(self) -> None:
        super().__init__()
        self.steps.update(
            asarray=self._asarray,
            convert_items=self._convert_items,
            upcast_nonstandard=_upcast_nonstandard,
        )

    def matches(self, cls: type) -> bool:
        return issubclass(cls, (list, tuple)) or (
            issubclass(cls, numbers.Number) and not issubclass(cls, (str, bytes))
        )

    def plan(self, x: Any, options: Options, /) -> Plan:
        steps = ["asarray"]
        if isinstance(x, (list, tuple)):
            if _contains_foreign_arrays(x):
                steps.insert(0, "convert_items")
            reason = f"a {type(x).__name__} has no array memory to share; a new array is built"
        else:
            reason = f"a Python {type(x).__name__} has no array memory; a 0-d array is built"
        if options.upcast and options.dtype is None:
            # Items may be bfloat16 tensors: the dtype is only known once built.
            steps.append("upcast_nonstandard")
        # The dtype is what np.asarray infers; the explicit dtype is applied while
        # building, so no separate cast step is needed.
        plan = _plan.finish(
            self.name,
            "cpu",
            steps,
            source_dtype=options.dtype,
            options=options,
            copy_reason=reason,
        )
        return plan

    def _convert_items(self, x: Any, plan: Plan) -> Any:
        return _map_foreign(x)

    def _asarray(self, x: Any, plan: Plan) -> np.ndarray[Any, Any]:
        return np.asarray(x, dtype=plan.dtype)


# Items np.asarray reads correctly by itself.
_NATIVE_ITEMS = ("numpy", "python")


def _upcast_nonstandard(a: np.ndarray[Any, Any], plan: Plan) -> np.ndarray[Any, Any]:
    target = _dtypes.upcast_target(a.dtype)
    return a if target is None else a.astype(target)


def _contains_foreign_arrays(x: list[Any] | tuple[Any, ...]) -> bool:
    for item in x:
        if isinstance(item, (list, tuple)):
            if _contains_foreign_arrays(item):
                return True
        elif not isinstance(item, (int, float, complex, bool, np.generic, np.ndarray)):
            backend = _registry.lookup(type(item))
            # Every item a backend other than NumPy's converts (tensors, DLPack, Array
            # API and __array__ objects) is converted first, under that backend's rules.
            if backend is not None and backend.name not in _NATIVE_ITEMS:
                return True
    return False


def _map_foreign(x: Any) -> Any:
    if isinstance(x, (list, tuple)):
        return [_map_foreign(item) for item in x]
    backend = _registry.lookup(type(x))
    if backend is not None and backend.name not in _NATIVE_ITEMS:
        from interop._api import to_numpy

        return to_numpy(x)
    return x


def generic_backends() -> list[Backend]:
    """The generic protocol backends, in dispatch order."""
    return [ArrayApiBackend(), DLPackBackend(), ArrayProtocolBackend(), PythonBackend()]
