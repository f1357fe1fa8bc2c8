"""Dense TensorFlow tensors and variables as a source: their plans, steps and host view.

The zero-copy path for a CPU ``EagerTensor`` is a NumPy array over the tensor's
buffer (``Tensor.numpy()`` copies it). That memory belongs to an immutable
tensor, so the array is read-only, and for good: NumPy lets no one set the flag
back, because the array's base exports no writable buffer (a read-only
memoryview, or TensorFlow's own wrapper of the tensor's buffer). A read-only
*view* of a writable array would not do: its flag can be set back.

A tensor on a GPU is read the same way: TensorFlow copies it to host memory once and
keeps that host copy with the tensor for every later reader (``Tensor.numpy()``
copies it again), so the result is that copy, sealed read-only, and ``copy=True``
copies it again. After a cast on the device the host copy belongs to a temporary
tensor that nothing else reads, and the result is writable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from interop import _dtypes, _plan
from interop._backend import Step
from interop._errors import ConversionError, text_format_error, truth_cast_error, type_name
from interop._memory import aligned_copy
from interop._options import Options
from interop._plan import Plan

__all__ = ["NO_DATA", "TensorSource", "no_data_error", "short_device", "symbolic_error"]

# TensorFlow's DataType enum values of tensors that hold handles, not values:
# DT_RESOURCE and DT_VARIANT.
NO_DATA = frozenset({20, 21})
# DT_QINT8, DT_QUINT8, DT_QINT32, DT_QINT16 and DT_QUINT16: quantized integers,
# whose scale lives outside the tensor.
_QUANTIZED = frozenset({11, 12, 13, 15, 16})
# Those, and DT_STRING: the tensors without a host view.
_NO_VIEW = NO_DATA | _QUANTIZED | {7}

_SYMBOLIC_HINT = (
    "hint: run the code eagerly (outside tf.function, or with "
    "tf.config.run_functions_eagerly(True)), or run NumPy code on the values inside "
    "the graph with tf.py_function"
)


def short_device(name: str) -> str:
    """``/job:localhost/replica:0/task:0/device:GPU:0`` -> ``gpu:0``."""
    if not name:
        return "cpu"
    tail = name.rsplit("device:", 1)[-1]
    kind, _, index = tail.partition(":")
    kind = kind.lower()
    return kind if kind == "cpu" else f"{kind}:{index or 0}"


def symbolic_error(x: Any, *, variable: bool = False) -> ConversionError:
    """The error for a tensor (or a variable read) that has no values: a graph is traced."""
    if variable:
        what = f"a tf.Variable read eagerly, got `{type_name(x)}` ({x.name}) read"
    else:
        what = (
            f"an eager tensor with values, got a symbolic `{type_name(x)}` "
            f"({getattr(x, 'name', type(x).__name__)}), which has a shape and dtype but no values"
        )
    return ConversionError(
        f"expected {what} while a graph is traced (inside tf.function, or while a Keras "
        f"model builds its graph). {_SYMBOLIC_HINT}"
    )


def no_data_error(x: Any) -> ConversionError:
    """The error for a resource or variant tensor: a handle to an object, not data."""
    return ConversionError(
        f"expected a tensor with values, got a {x.dtype.name} tensor (`{type_name(x)}`), "
        "which holds a handle to a TensorFlow object (a variable, a dataset, ...), not "
        "data. hint: convert the object's values instead (for a variable, the variable "
        "itself or variable.read_value(); for a dataset, its elements)"
    )


def _snapshot(v: Any, plan: Plan) -> np.ndarray[Any, Any]:
    """The ``snapshot`` step: a variable's values now, in a new array (0-d ones too)."""
    value = v.numpy()
    if isinstance(value, bytes):
        # A 0-d string variable, as a tensor (NumPy's own bytes dtype would drop
        # trailing NUL bytes).
        return _boxed(value)
    return np.asarray(value)  # (a 0-d variable of numbers gives a scalar)


def _boxed(value: bytes) -> np.ndarray[Any, Any]:
    """A new 0-d object array holding one ``bytes`` object (a 0-d string's value)."""
    out = np.empty((), dtype=object)
    out[()] = value
    return out


def check_text_dtype(x: Any, dtype: np.dtype[Any] | None) -> None:
    """Refuse a ``dtype=`` that the text of string tensor ``x`` (or of its values) never casts to.

    A bool (NumPy casts the bytes by their truth: see :func:`truth_cast_error`) or an
    ``ml_dtypes`` format (none parses text), at any depth of ``dtype``.
    """
    got = f"`{type_name(x)}` of tf.string"
    if _dtypes.holds_bool(dtype):
        raise truth_cast_error(
            got,
            "parse the text in TensorFlow first (x == b'True', or tf.strings.to_number(x) "
            "!= 0 for numbers)",
        )
    if _dtypes.holds_format(dtype):
        raise text_format_error(got, dtype)


def _quantized_error(x: Any) -> ConversionError:
    """The error for a quantized tensor, whose integers mean nothing without their scale."""
    name = x.dtype.name
    plain = name.removeprefix("q")  # qint8 -> int8, quint8 -> uint8
    return ConversionError(
        f"expected a tensor of plain values, got a quantized {name} tensor "
        f"(`{type_name(x)}`): its integers are meaningful only with the scale and range "
        "kept outside it. hint: tf.quantization.dequantize(x, min_range, max_range) for "
        f"the values, or tf.bitcast(x, tf.{plain}) for the stored integers"
    )


def _seal(a: np.ndarray[Any, Any], plan: Plan) -> np.ndarray[Any, Any]:
    """The ``readonly`` step after ``numpy_view``, whose array is new: sealed in place.

    A read-only view of it would not do: NumPy lets a view's flag be set back while
    its base is writable (see the module docstring).
    """
    a.setflags(write=False)
    return a


class TensorSource:
    """Plans, steps and the host view of ``tf.Tensor`` (eager) and ``tf.Variable``."""

    def __init__(self, tf: Any, eager: Any) -> None:
        self.tf = tf
        self.eager = eager
        # EagerTensor._numpy_internal returns a new NumPy array over the tensor's
        # buffer on every call (np.asarray reaches the same memory through the buffer
        # protocol, with a memoryview around it); it raises for resource and variant
        # tensors, which hold no buffer.
        self._internal: Callable[[Any], Any] = eager._numpy_internal  # type: ignore[attr-defined]
        # Device strings of tensors already seen to live in host memory.
        self.host_devices: set[str] = set()

    def steps(self) -> dict[str, Step]:
        """The steps of this module's plans, by name."""
        return {
            # Through the buffer protocol (a read-only memoryview: a 0-d tensor too), or
            # for an ml_dtypes dtype through __array__, which gives a new array.
            "numpy_view": lambda t, p: np.asarray(t),
            "readonly": _seal,
            "scalar_view": self._scalar_view,
            "snapshot": self._snapshot,
            "strings_to_bytes": self._strings_to_bytes,
            "to_host": self._to_host,
            "cast_on_device": self._cast_on_device,
        }

    def _scalar_view(self, t: Any, plan: Plan) -> np.ndarray[Any, Any]:
        """The ``scalar_view`` step: a 0-d view of a 0-d tensor of an ``ml_dtypes`` format.

        (The array keeps the reshaped tensor, and through it the buffer, alive.)
        """
        tf = self.tf
        with tf.device(t.device):  # (not where a tf.device block would place it)
            one: np.ndarray[Any, Any] = self._internal(tf.reshape(t, [1]))
        # Sealed before it is viewed: a view of a writable array could be made
        # writable again, and a write would change the tensor.
        _seal(one, plan)
        return one.reshape(())

    def _snapshot(self, v: Any, plan: Plan) -> np.ndarray[Any, Any]:
        """The ``snapshot`` step: one copy of a variable's values now, 64-byte aligned.

        A value read from a variable is a tensor of its own (TensorFlow copies the
        variable's buffer before a later assign changes it), and the array over it
        keeps that tensor alive. Where a cast follows, which copies, it is the
        values as they are; else one aligned copy of them, which every framework
        aliases (``convert`` to JAX or TensorFlow copies no second time).
        """
        value = self._internal(v.read_value())
        if type(value) is not np.ndarray or value.dtype.hasobject:
            return _snapshot(v, plan)  # (0-d ml_dtypes values and strings)
        steps = plan.steps
        if "cast" in steps or "upcast" in steps:
            return value  # type: ignore[no-any-return]
        return aligned_copy(value)

    def host_view(self) -> Callable[[Any], np.ndarray[Any, Any] | None]:
        """The host view of an ``EagerTensor``: the plan's ``numpy_view``, or ``None``."""
        host_devices = self.host_devices
        no_view = _NO_VIEW
        internal = self._internal
        # The unbound method: no bound method object made per call.
        dtype_enum: Callable[[Any], int] = self.eager._datatype_enum
        ndarray = np.ndarray
        # The unbound method called positionally (``setflags(write=None, align=None,
        # uic=None)``, as NumPy documents it; its stubs list keywords only): a third of
        # the time of setting ``flags.writeable``, which goes through a keyword call.
        setflags: Callable[..., None] = ndarray.setflags

        def view(x: Any) -> np.ndarray[Any, Any] | None:
            # A tensor elsewhere than in host memory needs a copy; resource, variant and
            # string tensors are the plan's (to refuse, or to build an object array).
            if x.device not in host_devices or dtype_enum(x) in no_view:
                return None
            out = internal(x)
            # A 0-d tensor comes back as a NumPy scalar: the plan views its buffer.
            if type(out) is not ndarray:
                return None
            setflags(out, False)  # read-only for good: see the module docstring
            return out  # type: ignore[no-any-return]

        return view

    def missing(self, x: Any) -> ConversionError | None:
        """The error for a tensor or variable with no values to read, or ``None``.

        A symbolic tensor, or a variable read while a graph is traced; a resource or
        variant tensor, which holds a handle.
        """
        tf = self.tf
        if isinstance(x, tf.Variable):
            return None if tf.executing_eagerly() else symbolic_error(x, variable=True)
        if not isinstance(x, self.eager):
            return symbolic_error(x)
        return no_data_error(x) if x._datatype_enum() in NO_DATA else None

    def plan(self, x: Any, options: Options) -> Plan:
        """The plan of an eager tensor or a variable (one without values raises)."""
        tf = self.tf
        missing = self.missing(x)
        if missing is not None:
            raise missing
        steps: list[str] = []
        reason: str | None = None
        device_name = x.device
        if isinstance(x, tf.Variable):
            steps.append("snapshot")
            reason = (
                "a tf.Variable is mutable; a snapshot is copied so a later assign cannot change it"
            )
        if x.dtype.is_quantized:
            raise _quantized_error(x)
        device = short_device(device_name)
        source = np.dtype(x.dtype.as_numpy_dtype)
        transfer = device != "cpu"
        if x.dtype == tf.string:
            check_text_dtype(x, options.dtype)
        if not steps and x.dtype == tf.string:
            steps.append("strings_to_bytes")
            if x.shape.rank == 0:
                reason = (
                    "a 0-d string tensor becomes a new 0-d object array holding one Python "
                    "bytes object"
                )
            else:
                reason = "a string tensor becomes a new object array of Python bytes objects"
        kept = False
        if transfer and not steps:
            reason, source, kept = _plan.device_to_host(
                steps, device, source, options, kept_by="TensorFlow keeps with the tensor"
            )
        if not steps:
            steps.append("numpy_view")
            self.host_devices.add(device_name)
            if x.shape.rank == 0 and not _dtypes.is_standard(source):
                # TensorFlow hands out a NumPy scalar for a 0-d tensor of an ml_dtypes
                # format; a reshape to one row shares its buffer, which it shows.
                steps[-1] = "scalar_view"
        return _plan.finish(
            "tensorflow",
            device,
            steps,
            source_dtype=source,
            options=options,
            copy_reason=reason,
            transfer=transfer,
            readonly=True,
            kept=kept,
            upcast_to=_dtypes.upcast_target(source),
        )

    def _to_host(self, t: Any, plan: Plan) -> np.ndarray[Any, Any]:
        # The host copy TensorFlow keeps with the tensor (made now, or found).
        out = self._internal(t)
        if type(out) is not np.ndarray:  # a 0-d tensor: a NumPy scalar, into a new array
            out = np.array(out)
        if "cast_on_device" not in plan.steps:
            out.setflags(write=False)  # read-only for good: see the module docstring
        # (Else t is the temporary of a cast on the device, and nothing else reads its
        # host copy.)
        return out  # type: ignore[no-any-return]

    def _strings_to_bytes(self, t: Any, plan: Plan) -> np.ndarray[Any, Any]:
        # A new object array of bytes on every call (TensorFlow keeps none of it); a
        # 0-d string tensor gives a bytes object, which goes into a new 0-d array.
        out = self._internal(t)
        if type(out) is not np.ndarray:
            return _boxed(out)
        return out  # type: ignore[no-any-return]

    def _cast_on_device(self, t: Any, plan: Plan) -> Any:
        tf = self.tf
        assert plan.dtype is not None
        with tf.device(t.device):
            return tf.cast(t, tf.as_dtype(plan.dtype))
