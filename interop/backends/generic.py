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
from collections.abc import Callable
from typing import Any

import numpy as np

from interop import _dtypes, _plan
from interop._backend import Backend
from interop._devices import HOST_KINDS, device_name, dlpack_device_of, split_device
from interop._errors import ConversionError, TransferError, type_name
from interop._memory import aligned_copy, layout_problem
from interop._options import Options
from interop._plan import Plan

__all__ = [
    "ArrayApiBackend",
    "ArrayProtocolBackend",
    "DLPackBackend",
    "PythonBackend",
]

Lookup = Callable[[type], Backend | None]


def _from_dlpack(x: Any, plan: Plan) -> np.ndarray[Any, Any]:
    if plan.prepared is not None:
        return plan.prepared  # type: ignore[no-any-return]
    return _dlpack_view(x)


def _dlpack_view(x: Any) -> np.ndarray[Any, Any]:
    try:
        return np.from_dlpack(x)
    except (BufferError, TypeError) as exc:
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


class _Generic(Backend):
    """A generic protocol: its result is refused where NumPy could only keep Python objects."""

    def check_result(self, x: Any, out: np.ndarray[Any, Any], options: Options, /) -> None:
        if out.dtype.hasobject and options.dtype is None:
            raise _object_error(x, out)


class DLPackBackend(_Generic):
    """Objects that implement ``__dlpack__`` and ``__dlpack_device__``."""

    name = "dlpack"

    def __init__(self) -> None:
        super().__init__()
        self.steps.update(
            from_dlpack=_from_dlpack,
            dlpack_to_host=_from_dlpack_copy_to_host,
            as_array=lambda x, p: p.prepared,
        )

    def matches(self, cls: type) -> bool:
        return hasattr(cls, "__dlpack__") and hasattr(cls, "__dlpack_device__")

    def plan(self, x: Any, options: Options, /) -> Plan:
        kind, index = dlpack_device_of(x)
        device = device_name((kind, index))
        transfer = kind not in HOST_KINDS
        if not transfer and hasattr(type(x), "__array__") and _array_takes_copy(type(x)):
            # For data already in host memory, an __array__ that honours copy= is the
            # object's own bridge to NumPy: it hands out the same view DLPack would, and
            # also converts what DLPack cannot carry (for example pyarrow arrays with
            # nulls or bit-packed booleans), copying only when it must.
            return _array_protocol_plan(self.name, x, options)
        view: np.ndarray[Any, Any] | None = None
        if transfer:
            steps = ["dlpack_to_host"]
            reason: str | None = f"the data is on {device} and must be copied to host memory"
        else:
            # A host view copies nothing, and tells the dtype the tail steps need.
            view = _dlpack_view(x)
            steps, reason = ["from_dlpack"], None
        return _plan.finish(
            self.name,
            device,
            steps,
            source_dtype=None if view is None else view.dtype,
            options=options,
            copy_reason=reason,
            transfer=transfer,
            readonly=view is not None and not view.flags.writeable,
            upcast_to=None if view is None else _dtypes.upcast_target(view.dtype),
            prepared=view,
        )

    def run(self, x: Any, plan: Plan, /) -> np.ndarray[Any, Any]:
        a: np.ndarray[Any, Any] = self.steps[plan.steps[0]](x, plan)
        return _finish_unknown_dtype(self, a, plan)  # type: ignore[no-any-return]


def _finish_unknown_dtype(backend: Backend, a: np.ndarray[Any, Any], plan: Plan) -> Any:
    """Run the shared tail of a plan whose source dtype was only known after the view."""
    for step in plan.steps[1:]:
        a = backend.steps[step](a, plan)
    return a


class ArrayApiBackend(_Generic):
    """Array API objects (``__array_namespace__``), through DLPack after ``to_device``."""

    name = "array_api"

    def __init__(self) -> None:
        super().__init__()
        self.steps.update(
            from_dlpack=_from_dlpack,
            to_cpu=self._to_cpu,
            array_protocol=lambda x, p: p.prepared if p.prepared is not None else np.asarray(x),
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
        view: np.ndarray[Any, Any] | None = None
        if not on_cpu:
            steps.append("to_cpu")
            reason = f"the data is on {device} and must be copied to host memory"
        elif hasattr(x, "__dlpack__"):
            # A host view copies nothing, and tells the dtype the tail steps need.
            view = _dlpack_view(x)
        else:
            view, reason = _host_array(x, options)
        steps.append("from_dlpack" if hasattr(x, "__dlpack__") else "array_protocol")
        return _plan.finish(
            self.name,
            "cpu" if on_cpu else device,
            steps,
            source_dtype=None if view is None else view.dtype,
            options=options,
            copy_reason=reason,
            transfer=not on_cpu,
            readonly=view is not None and not view.flags.writeable,
            upcast_to=None if view is None else _dtypes.upcast_target(view.dtype),
            prepared=view,
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

        return array_api_compat.to_device(x, _cpu_device(x))

    # -- conversion into this framework --
    # The target is the namespace of `like` (array_api_strict, ...); a device here is
    # the pair (namespace, the namespace's own device object).

    mutable = True

    def target_device(self, device: Any, like: Any, /) -> Any:
        if like is None:
            raise TypeError(
                "expected like= an array of the Array API library to convert to, got "
                "to='array_api': the Array API is a standard that many libraries implement. "
                "hint: convert(x, like=xp.asarray(0)) for the namespace xp you want"
            )
        import array_api_compat

        xp = array_api_compat.array_namespace(like)
        if device is None:
            return (xp, array_api_compat.device(like))
        return (xp, self._parse_device(xp, device))

    def _parse_device(self, xp: Any, device: Any) -> Any:
        devices = list(xp.__array_namespace_info__().devices())
        if isinstance(device, str):
            kind, _ = split_device(device)
            found = [d for d in devices if kind in str(d).lower()]
            if found:
                return found[0]
        elif device in devices:
            return device
        raise ValueError(
            f"expected a device of {xp.__name__}, got {device!r}. hint: use one of {devices}"
        )

    def device_of(self, x: Any, /) -> Any:
        import array_api_compat

        return (array_api_compat.array_namespace(x), array_api_compat.device(x))

    def dlpack_device(self, device: Any, /) -> tuple[int, int]:
        dev = device[1]
        if "cpu" in str(dev).lower():
            return (1, 0)
        # A device DLPack cannot name (array_api_strict's test devices, say): it only
        # ever equals itself.
        return (-1, hash(str(dev)) & 0xFFFF)

    def owns(self, x: Any, device: Any, /) -> bool:
        import array_api_compat

        return self.lookup(type(x)) is self and array_api_compat.array_namespace(x) is device[0]

    def target_dtype(self, dtype: np.dtype[Any], device: Any, /) -> np.dtype[Any]:
        xp, dev = device
        names = xp.__array_namespace_info__().dtypes(device=dev)
        if dtype.name not in names:
            raise ConversionError(
                f"expected a dtype {xp.__name__} supports, got {dtype} (it has: "
                f"{', '.join(names)}). hint: cast to one of those first"
            )
        return dtype

    def dlpack_problem(
        self, dtype: np.dtype[Any], view: np.ndarray[Any, Any] | None, device: tuple[int, int], /
    ) -> str | None:
        if device != (1, 0):
            return "the Array API target imports DLPack data from host memory only"
        return None

    def numpy_problem(self, a: np.ndarray[Any, Any], /) -> str | None:
        if not a.flags.writeable:
            return "the NumPy array is read-only, and Array API arrays are writable"
        return layout_problem(a, contiguous=False, aligned=False, positive=False)

    def from_numpy(self, a: np.ndarray[Any, Any], /, *, device: Any, copy: bool) -> Any:
        xp, dev = device
        b = aligned_copy(a) if copy else a
        if self.dlpack_device(device) == (1, 0):
            return xp.from_dlpack(b)
        return xp.asarray(b, device=dev)

    def from_dlpack(self, x: Any, /, *, device: Any, copy: bool) -> Any:
        xp, dev = device
        out = xp.from_dlpack(x)
        if copy or self.device_of(out) != device:
            return xp.asarray(out, device=dev, copy=True)
        return out

    def adopt(self, x: Any, /, *, device: Any, copy: bool) -> Any:
        xp, dev = device
        if copy or self.device_of(x) != device:
            return xp.asarray(x, device=dev, copy=True)
        return x

    def readonly_source(self, x: Any, /) -> bool:
        # Array API arrays support __setitem__; read-only memory shows in the view.
        return False

    def dlpack_export(self, x: Any, dtype: np.dtype[Any], /) -> Any:
        return x if hasattr(x, "__dlpack__") and dtype.type.__module__ != "ml_dtypes" else None


def _cpu_device(x: Any) -> Any:
    """The CPU device object of ``x``'s namespace, or ``"cpu"`` where it lists none.

    Array API devices are namespace-specific objects (``array_api_strict.Device``,
    ``torch.device``, ...); the inspection API lists them, and a CPU device names
    itself so.
    """
    try:
        info = x.__array_namespace__().__array_namespace_info__()
        devices = list(info.devices())
    except Exception:
        return "cpu"
    return next((d for d in devices if "cpu" in str(d).lower()), "cpu")


class ArrayProtocolBackend(_Generic):
    """Objects with ``__array__``, ``__array_interface__`` or the buffer protocol."""

    arrays = False
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
        return _array_protocol_plan(self.name, x, options)


def _array_protocol_plan(name: str, x: Any, options: Options) -> Plan:
    """The plan of a conversion through ``__array__``, ``__array_interface__`` or a buffer.

    Errors that the object's own protocol raises propagate: :func:`interop.to_numpy`
    reports them as a :class:`~interop.ConversionError` that names the protocol
    (and lets a :class:`MemoryError` through unchanged).
    """
    try:
        a, reason = _host_array(x, options)
    except Exception as exc:
        if any(c.__name__ == "KerasTensor" for c in type(x).__mro__):
            raise _keras_tensor_error(x, exc) from exc
        raise
    if a is None:
        # copy=False, and only a copy would do: report without making it.
        return _plan.finish(
            name, "cpu", ["as_array"], source_dtype=None, options=options, copy_reason=reason
        )
    _check_declared_bounds(x, a)
    if a.dtype == object:
        raise ConversionError(
            f"expected numeric data, got `{type_name(x)}` whose __array__ returned an "
            "object array. hint: convert its elements first"
        )
    steps = ["as_array"]
    if reason is not None and options.copy is True and not a.flags.writeable:
        # The object copied, but into a read-only array; copy=True promises a writable one.
        steps.append("copy")
    return _plan.finish(
        name,
        "cpu",
        steps,
        source_dtype=a.dtype,
        options=options,
        copy_reason=reason,
        # A view keeps the writability its owner gave it (pandas and pyarrow hand
        # out read-only views of memory they share).
        readonly=not a.flags.writeable,
        upcast_to=_dtypes.upcast_target(a.dtype),
        prepared=a,
    )


def _keras_tensor_error(x: Any, exc: Exception) -> ConversionError:
    return ConversionError(
        f"expected a tensor with values, got `{type_name(x)}`, whose __array__ raised "
        f"{type(exc).__name__}: {str(exc).rstrip('.')}. A KerasTensor is the symbolic "
        "placeholder of a Keras functional model: it has a shape and dtype but no values. "
        "hint: call the model on data (model(x) or model.predict(x)) and convert the "
        "result, use keras.ops inside layers, or run NumPy code on the values with "
        "tf.py_function under the TensorFlow backend (or run eagerly)"
    )


# type -> whether NumPy may pass copy= to its __array__ (see _array_takes_copy).
_TAKES_COPY: dict[type, bool] = {}


def _array_takes_copy(cls: type) -> bool:
    """Whether ``np.asarray(x, copy=False)`` is safe for objects of type ``cls``.

    True when NumPy reads the object through the buffer protocol or an array
    interface (it then never calls ``__array__``), or when ``__array__`` accepts
    ``copy``. False for an ``__array__`` without it, or one whose signature cannot be
    read, on which passing ``copy=`` would make NumPy emit a DeprecationWarning.
    """
    try:
        return _TAKES_COPY[cls]
    except KeyError:
        pass
    result = True
    if not (
        hasattr(cls, "__array_interface__")
        or hasattr(cls, "__array_struct__")
        or hasattr(cls, "__buffer__")
        or issubclass(cls, (memoryview, bytearray))
        or _has_buffer(cls)
    ):
        method = getattr(cls, "__array__", None)
        if method is not None:
            try:
                params = inspect.signature(method).parameters.values()
            except (TypeError, ValueError):
                result = False
            else:
                result = any(
                    p.kind is p.VAR_KEYWORD
                    or (p.name == "copy" and p.kind is not p.POSITIONAL_ONLY)
                    for p in params
                )
    _TAKES_COPY[cls] = result
    return result


def _host_array(x: Any, options: Options) -> tuple[np.ndarray[Any, Any] | None, str | None]:
    """A view of ``x``'s host memory, or else a copy: ``(array, why it is a copy)``.

    NumPy 2 passes ``copy=`` to ``__array__``: asking for a view (``copy=False``)
    tells a NumPy 2 object to refuse when it would have to copy; under
    ``copy=False`` no copy is then made, and the array is ``None``. An
    ``__array__`` written for NumPy 1 has no ``copy`` keyword (NumPy would warn when
    handed one): it is called without it, twice, and its answer is a view when the
    two answers share memory (memory the object keeps), a copy when they do not.
    """
    if not _array_takes_copy(type(x)):
        a = np.asarray(x)
        if np.may_share_memory(a, np.asarray(x)):
            return a, None
        return a, (
            f"`{type_name(x)}`.__array__ (written for NumPy 1, without copy=) returns a new "
            "array on each call"
        )
    try:
        return np.asarray(x, copy=False), None
    except ValueError:
        pass
    reason = f"`{type_name(x)}` cannot hand out a view of its data"
    if options.copy is False:
        return None, reason
    return np.asarray(x), f"{reason}; it made a copy"


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


class PythonBackend(_Generic):
    """Python scalars (``bool``, ``int``, ``float``, ``complex``), lists and tuples."""

    arrays = False
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
        device = "cpu"
        transfer = False
        item_options: Options | None = None
        if isinstance(x, (list, tuple)):
            if _contains_foreign_arrays(self.lookup, x):
                steps.insert(0, "convert_items")
                # Items take every option but the copy and the dtype, which apply to
                # the array built from them (upcast=True upcasts each item).
                item_options = options.replace(copy=None, dtype=None)
                # Items on an accelerator make the whole list a transfer, so that
                # allow_transfer=False refuses it before any item is converted.
                if options.copy is not False:
                    for item_plan in _item_plans(self.lookup, x, item_options):
                        if item_plan.transfer:
                            device, transfer = item_plan.device, True
                            break
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
            device,
            steps,
            source_dtype=options.dtype,
            options=options,
            copy_reason=reason,
            transfer=transfer,
            prepared=item_options,
        )
        return plan

    def _convert_items(self, x: Any, plan: Plan) -> Any:
        return _map_foreign(self.lookup, x, plan.prepared)

    def _asarray(self, x: Any, plan: Plan) -> np.ndarray[Any, Any]:
        return np.asarray(x, dtype=plan.dtype)


# Items np.asarray reads correctly by itself; any other item a backend converts
# (a framework tensor, a DLPack or Array API object) is converted first.
_NATIVE_ITEMS = ("numpy", "python")


def _upcast_nonstandard(a: np.ndarray[Any, Any], plan: Plan) -> np.ndarray[Any, Any]:
    target = _dtypes.upcast_target(a.dtype)
    return a if target is None else a.astype(target)


def _foreign_backend(lookup: Lookup, item: Any) -> Backend | None:
    if isinstance(item, (int, float, complex, bool, np.generic, np.ndarray)):
        return None
    backend = lookup(type(item))
    if backend is None or backend.name in _NATIVE_ITEMS:
        return None
    return backend


def _contains_foreign_arrays(lookup: Lookup, x: list[Any] | tuple[Any, ...]) -> bool:
    for item in x:
        if isinstance(item, (list, tuple)):
            if _contains_foreign_arrays(lookup, item):
                return True
        elif _foreign_backend(lookup, item) is not None:
            return True
    return False


def _item_plans(lookup: Lookup, x: list[Any] | tuple[Any, ...], item_options: Options) -> Any:
    for item in x:
        if isinstance(item, (list, tuple)):
            yield from _item_plans(lookup, item, item_options)
        else:
            backend = _foreign_backend(lookup, item)
            if backend is not None:
                yield backend.plan_for(item, item_options)


def _map_foreign(lookup: Lookup, x: Any, item_options: Options) -> Any:
    if isinstance(x, (list, tuple)):
        return [_map_foreign(lookup, item, item_options) for item in x]
    backend = _foreign_backend(lookup, x)
    return x if backend is None else backend.to_numpy(x, item_options)


def _object_error(x: Any, out: np.ndarray[Any, Any]) -> ConversionError:
    """The error for an object a generic protocol could only turn into Python objects."""
    if isinstance(x, (list, tuple)):
        odd = next((v for v in out.flat if not _fits_numpy(v)), out.flat[0])
        what = f"`{type_name(x)}` holding `{type_name(odd)}` values"
    else:
        what = f"`{type_name(x)}`"
    return ConversionError(
        f"expected numbers, got {what}, which NumPy can only keep as Python objects. "
        "hint: replace None and other non-numbers first (for example with float('nan')), "
        "convert big or exact numbers with float(...), or pass dtype=object to keep the objects"
    )


def _fits_numpy(v: Any) -> bool:
    """Whether NumPy holds ``v`` as a number of its own (not as a Python object)."""
    if type(v) is int:
        return -(2**63) <= v < 2**64
    return isinstance(v, (bool, float, complex, np.generic))
