"""Objects with ``__array__``, ``__array_interface__`` or the buffer protocol.

NumPy 2 passes ``copy=`` to ``__array__``; an ``__array__`` written for NumPy 1
has no such keyword, and is then told apart by whether two calls share memory.
A declared ``__array_interface__`` is checked against the buffer it describes,
which NumPy itself trusts.
"""

from __future__ import annotations

import array
import inspect
from typing import Any

import numpy as np
from numpy.lib.array_utils import byte_bounds

from interop import _dtypes, _plan
from interop._errors import ConversionError, type_name
from interop._options import Options
from interop._plan import Plan
from interop.backends.generic.base import GenericBackend

__all__ = ["ArrayProtocolBackend", "array_protocol_plan", "array_takes_copy", "host_array"]


class ArrayProtocolBackend(GenericBackend):
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
        return array_protocol_plan(self.name, x, options)


def array_protocol_plan(name: str, x: Any, options: Options) -> Plan:
    """The plan of a conversion through ``__array__``, ``__array_interface__`` or a buffer.

    Errors that the object's own protocol raises propagate: :func:`interop.to_numpy`
    reports them as a :class:`~interop.ConversionError` that names the protocol
    (and lets a :class:`MemoryError` through unchanged).
    """
    try:
        a, reason = host_array(x, options)
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


def array_takes_copy(cls: type) -> bool:
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


def host_array(x: Any, options: Options) -> tuple[np.ndarray[Any, Any] | None, str | None]:
    """A view of ``x``'s host memory, or else a copy: ``(array, why it is a copy)``.

    NumPy 2 passes ``copy=`` to ``__array__``: asking for a view (``copy=False``)
    tells a NumPy 2 object to refuse when it would have to copy; under
    ``copy=False`` no copy is then made, and the array is ``None``. An
    ``__array__`` written for NumPy 1 has no ``copy`` keyword (NumPy would warn when
    handed one): it is called without it, twice, and its answer is a view when the
    two answers share memory (memory the object keeps), a copy when they do not.
    """
    if not array_takes_copy(type(x)):
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
    return issubclass(cls, array.array)
