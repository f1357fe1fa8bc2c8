"""Objects with the buffer protocol, ``__array_struct__``, ``__array_interface__`` or ``__array__``.

NumPy reads an object through the first of these it has, in that order, and so
does this backend. Which one applies is decided once per type, from the class alone
(no code of the class runs; see :func:`~.base.class_attr`):

- The buffer protocol: ``bytearray``, ``memoryview``, ``array.array``,
  ``mmap.mmap``, ``pickle.PickleBuffer`` (Python 3.11 has no ``__buffer__`` on
  classes, so these are named), and on Python 3.12 any type with ``__buffer__``.
  Always a view, read-only where the memory is (``bytes`` is refused with a hint:
  it is text-like data, and ``np.frombuffer`` reads it). A released ``memoryview``
  or a closed ``mmap`` fails with its own error.
- ``ctypes`` arrays, structures, unions and simple types: a view of their memory in
  the dtype NumPy gives their ctypes type (``np.dtype(type(x))``); their buffer's
  format string is not read, since Python's is wrong for padded structures (NumPy
  warns and guesses).
- ``__array_struct__`` and ``__array_interface__``: always a view. A declared
  ``__array_interface__`` is checked against the buffer it describes, which NumPy
  itself trusts.
- ``__array__`` written for NumPy 2 (it takes ``copy=``): asked for a view
  (``copy=False``) first. Under the NumPy 2 protocol an ``__array__`` that can only
  copy raises ``ValueError`` then; under ``copy=None`` it is asked once more, without
  ``copy=``, for its copy.
- ``__array__`` written for NumPy 1 (no ``copy`` parameter, read from its signature):
  called once per conversion, without ``copy=``, as ``np.asarray`` calls it. One call
  cannot tell whether its array is the object's own memory or a new one, so it is
  taken as a view: ``copy=True`` copies it (the result then shares nothing), and
  ``copy=False`` is refused before it is called, as NumPy 2 refuses it, since no
  view can be promised.

An xarray, zarr or h5py object read through ``__array__`` whose ``chunks`` is a
tuple holds its data in chunks elsewhere (an xarray object on Dask, a zarr or HDF5
array): its ``__array__`` computes or reads them into new memory, whatever
``copy=`` says (xarray's turns ``copy=False`` into ``copy=None``). It is planned as
that copy without being called, from the dtype it declares: ``explain`` computes
nothing, and ``copy=False`` is refused before any work. What it returns is copied
once more where it is read-only, as the plan promises a writable result. (A chunked
xarray ``Dataset`` has a mapping of chunks, and no array form.) Other classes with a
``chunks`` attribute (a chunked writer, a cache) are read as any ``__array__``
object is: nothing is known of their ``chunks``.

Only the class is looked at: an ``__array_interface__`` that an object sets on
itself (not on its class) is not seen, since dispatch is per type.
"""

from __future__ import annotations

import array
import inspect
import sys
from typing import Any

import numpy as np
from numpy.lib.array_utils import byte_bounds

from interop import _dtypes, _plan
from interop._backend import class_attr
from interop._errors import ConversionError, type_name
from interop._options import Options
from interop._plan import Plan, is_masked_array
from interop.backends.generic.base import GenericBackend

__all__ = [
    "ArrayProtocolBackend",
    "array_protocol_plan",
    "array_takes_copy",
    "compute_chunks",
    "host_array",
    "protocol_kind",
]

# The ways NumPy reads an object (see the module docstring), in its order.
BUFFER = "buffer"
CTYPES = "ctypes"
INTERFACE = "interface"
ARRAY = "array"  # __array__ taking copy= (NumPy 2)
LEGACY = "legacy"  # __array__ without copy= (NumPy 1)


class ArrayProtocolBackend(GenericBackend):
    """Objects with a buffer, ``__array_struct__``, ``__array_interface__`` or ``__array__``."""

    arrays = False
    name = "array_protocol"

    def __init__(self) -> None:
        super().__init__()
        self.steps.update(as_array=lambda x, p: p.prepared, compute=compute_chunks)

    def matches(self, cls: type) -> bool:
        return protocol_kind(cls) is not None

    def plan(self, x: Any, options: Options, /) -> Plan:
        return array_protocol_plan(self.name, x, options)

    def readonly_source(self, x: Any, /) -> bool:
        # The buffer protocol, ctypes and array interfaces say whether their memory is
        # read-only, and NumPy's view of it shows that (a bytearray's is writable, a
        # bytes object's or a read-only memoryview's is not); what an __array__
        # returns tells nothing of the memory behind it.
        return protocol_kind(type(x)) in (ARRAY, LEGACY)


def array_protocol_plan(name: str, x: Any, options: Options) -> Plan:
    """The plan of a conversion through the buffer protocol, an array interface or ``__array__``.

    Errors that the object's own protocol raises propagate: :func:`interop.to_numpy`
    reports them as a :class:`~interop.ConversionError` that names the protocol
    (and lets a :class:`MemoryError` through unchanged).
    """
    if protocol_kind(type(x)) in (ARRAY, LEGACY) and _chunked(x):
        return _chunked_plan(name, x, options)
    try:
        a, reason = host_array(x, options)
    except Exception as exc:
        if _has_class(type(x), "KerasTensor"):
            raise _keras_tensor_error(x, exc) from exc
        raise
    if a is None:
        # copy=False, and only a copy would do: report without making it.
        return _plan.finish(
            name, "cpu", ["as_array"], source_dtype=None, options=options, copy_reason=reason
        )
    _check_declared_bounds(x, a)
    if a.dtype.hasobject and options.dtype is None:
        # As for a list: Python objects only where a dtype (dtype=object) is asked.
        raise ConversionError(
            f"expected numeric data, got `{type_name(x)}` whose __array__ returned an "
            "object array. hint: convert its elements first, or pass dtype=object to keep "
            "the objects"
        )
    # A view keeps the writability its owner gave it (pandas and pyarrow hand out
    # read-only views of memory they share). A copy the object made read-only (one it
    # caches, say) is handed out as it is, read-only; copy=True copies it again.
    # An immutable object that hands out its own memory writable (a pandas Index's
    # __array__ does) gives a read-only view of it.
    readonly = not a.flags.writeable or (reason is None and _immutable(type(x)))
    return _plan.finish(
        name,
        "cpu",
        ["as_array"],
        source_dtype=a.dtype,
        options=options,
        copy_reason=reason,
        readonly=readonly,
        kept=reason is not None and readonly,
        upcast_to=_dtypes.upcast_target(a.dtype),
        prepared=a,
    )


def _immutable(cls: type) -> bool:
    """Whether ``cls`` is a class whose objects never change, known by its library.

    A pandas ``Index`` (and its subclasses): its ``__array__`` hands out the memory it
    holds, writable, where writes would corrupt the index (its lookups, its cached
    values).
    """
    return _has_class(cls, "Index", "pandas")


def _has_class(cls: type, name: str, library: str | None = None) -> bool:
    """Whether ``cls`` or a base of it is called ``name`` (and defined in ``library``).

    For the classes of libraries this backend knows without importing them.
    """
    return any(
        c.__name__ == name and (library is None or c.__module__.partition(".")[0] == library)
        for c in cls.__mro__
    )


def _chunked_plan(name: str, x: Any, options: Options) -> Plan:
    """The plan of an object whose ``__array__`` computes its chunks: made without calling it."""
    declared = getattr(x, "dtype", None)
    dtype = declared if isinstance(declared, np.dtype) else None
    # What __array__ returns may be an array a graph or a cache holds: copy=True
    # promises memory the result owns, which the tail copies unless a cast there
    # copies already (kept: not the result's own memory until then).
    return _plan.finish(
        name,
        "cpu",
        ["compute"],
        source_dtype=dtype,
        options=options,
        copy_reason=(
            f"`{type_name(x)}` holds its data in chunks (a lazy graph, a store), which its "
            "__array__ computes into new memory"
        ),
        kept=options.copy is True,
        upcast_to=None if dtype is None else _dtypes.upcast_target(dtype),
        prepared=dtype,
    )


def compute_chunks(x: Any, plan: Plan) -> np.ndarray[Any, Any]:
    """The ``compute`` step: ``x``'s chunks computed by its ``__array__``, in the planned dtype.

    ``plan.prepared`` is the dtype ``x`` declared (or ``None``), which the tail of the
    plan was made from.
    """
    a = np.asarray(x)
    declared = plan.prepared
    if declared is not None and a.dtype != declared:
        raise ConversionError(
            f"expected `{type_name(x)}` to compute to the dtype it declares, {declared}, got "
            f"{a.dtype}. hint: fix the dtype of the computation that made it (the dtype= of "
            "a map_blocks, say), or convert np.asarray(x) yourself"
        )
    # A read-only result is memory something else holds (a cache of the store's): the
    # plan promises new, writable memory.
    return a if a.flags.writeable else a.copy(order="K")


# The libraries whose arrays with a tuple ``chunks`` hold their data in chunks that
# __array__ computes or reads into new memory.
_CHUNKED_LIBRARIES = frozenset({"xarray", "zarr", "h5py"})


def _chunked(x: Any) -> bool:
    """Whether ``x`` says its data is in chunks: a tuple ``chunks`` (xarray in memory: ``None``)."""
    if not _declares_chunks(type(x)):
        return False
    return isinstance(x.chunks, tuple)


# type -> whether its class declares ``chunks`` (see _chunked), bounded like _KINDS.
_CHUNKS: dict[type, bool] = {}


def _declares_chunks(cls: type) -> bool:
    found = _CHUNKS.get(cls)
    if found is None:
        # The class that declares chunks is the library's (a user's subclass of an
        # xarray DataArray is as lazy as the DataArray).
        owner = next((c for c in cls.__mro__ if "chunks" in c.__dict__), None)
        found = owner is not None and owner.__module__.partition(".")[0] in _CHUNKED_LIBRARIES
        if len(_CHUNKS) >= _MAX_KINDS:
            _CHUNKS.clear()
        _CHUNKS[cls] = found
    return found


def _keras_tensor_error(x: Any, exc: Exception) -> ConversionError:
    return ConversionError(
        f"expected a tensor with values, got `{type_name(x)}`, whose __array__ raised "
        f"{type(exc).__name__}: {str(exc).rstrip('.')}. A KerasTensor is the symbolic "
        "placeholder of a Keras functional model: it has a shape and dtype but no values. "
        "hint: call the model on data (model(x) or model.predict(x)) and convert the "
        "result, use keras.ops inside layers, or run NumPy code on the values with "
        "tf.py_function under the TensorFlow backend (or run eagerly)"
    )


# type -> how NumPy reads its objects (see protocol_kind); bounded like the registry's
# tables, since types made on the fly must not pile up.
_KINDS: dict[type, str | None] = {}
_MAX_KINDS = 2048
_UNKNOWN = "unknown"


def protocol_kind(cls: type, /) -> str | None:
    """How NumPy reads objects of type ``cls``, or ``None`` where it reads none of them.

    One of ``"buffer"``, ``"ctypes"`` (buffers too, of ``ctypes`` data),
    ``"interface"`` (``__array_struct__`` or ``__array_interface__``), ``"array"``
    (an ``__array__`` that takes ``copy=``) and ``"legacy"`` (an ``__array__``
    without it), in the order NumPy tries them.
    Decided once per type, from the class alone.
    """
    kind = _KINDS.get(cls, _UNKNOWN)
    if kind is _UNKNOWN:
        kind = _kind(cls)
        if len(_KINDS) >= _MAX_KINDS:
            _KINDS.clear()
        _KINDS[cls] = kind
    return kind


def _kind(cls: type) -> str | None:
    if issubclass(cls, (str, bytes)):
        return None  # text; and bytes are refused with a hint (np.frombuffer)
    ctypes = sys.modules.get("ctypes")  # no ctypes object exists before it is imported
    # Pointers are left out: their buffer is the address, not the data.
    if ctypes is not None and issubclass(
        cls, (ctypes.Array, ctypes.Structure, ctypes.Union, ctypes._SimpleCData)
    ):
        return CTYPES
    if _has_buffer(cls):
        return BUFFER
    if (
        class_attr(cls, "__array_struct__") is not None
        or class_attr(cls, "__array_interface__") is not None
    ):
        return INTERFACE
    method = class_attr(cls, "__array__")
    if method is None:
        return None
    return ARRAY if _takes_copy(method) else LEGACY


def _takes_copy(method: Any) -> bool:
    """Whether an ``__array__`` accepts ``copy=``; not where its signature cannot be read.

    NumPy would pass ``copy=`` to one without it only to emit a DeprecationWarning.
    """
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind is p.VAR_KEYWORD or (p.name == "copy" and p.kind is not p.POSITIONAL_ONLY)
        for p in params
    )


def array_takes_copy(cls: type) -> bool:
    """Whether ``np.asarray(x, copy=False)`` is safe for objects of type ``cls``.

    True when NumPy reads the object through the buffer protocol or an array
    interface (it then never calls ``__array__``), or when ``__array__`` accepts
    ``copy``. False for an ``__array__`` without it, or one whose signature cannot be
    read, on which passing ``copy=`` would make NumPy emit a DeprecationWarning.
    """
    return protocol_kind(cls) != LEGACY


def host_array(x: Any, options: Options) -> tuple[np.ndarray[Any, Any] | None, str | None]:
    """A view of ``x``'s host memory, or else a copy: ``(array, why it is a copy)``.

    Under ``copy=False`` no copy is made: where only a copy would do, the array is
    ``None``. See the module docstring for how each protocol is read.
    """
    kind = protocol_kind(type(x))
    if kind == LEGACY:
        if options.copy is False:
            return None, (
                f"`{type_name(x)}`.__array__ takes no copy= (it was written for NumPy 1), so "
                "no view can be promised (NumPy 2 refuses copy=False for it too)"
            )
        return _called(x, None), None
    if kind == BUFFER:
        # memoryview() raises the buffer's own error (a released memoryview, a closed
        # mmap), where NumPy would wrap the object in a 0-d array of Python objects.
        memoryview(x).release()
        return np.asarray(x, copy=False), None
    if kind == CTYPES:
        # A ctypes array type maps to a subarray dtype, which NumPy spreads into the
        # shape; a ctypes type without a dtype (a bit field, c_char_p) is a TypeError.
        return np.ndarray((), np.dtype(type(x)), buffer=x), None
    if kind == INTERFACE:
        # An array interface is always viewed; NumPy's ValueError here is the
        # declaration's own failure.
        return np.asarray(x, copy=False), None
    if kind is None:  # an Array API object without DLPack, say
        raise ConversionError(
            "expected an object NumPy reads (through the buffer protocol, "
            f"__array_interface__ or __array__), got `{type_name(x)}`, which offers none "
            "of them. hint: convert it with its own library's API first"
        )
    try:
        return _called(x, False), None
    except ValueError as exc:
        # NumPy 2's protocol: an __array__ that can only copy raises ValueError when
        # asked for a view. Nothing but an exception carries that answer.
        refusal = exc
    said = str(refusal).partition("\n")[0].rstrip(".")
    if options.copy is False:
        if not _speaks_of_copies(said):
            # Not a refusal to hand out a view: the object's protocol failed (reported
            # as a ConversionError naming the object and the protocol).
            raise refusal
        return None, f"`{type_name(x)}` cannot hand out a view of its data ({said})"
    # What __array__() then returns is taken as it is: an object may hand out a view
    # there all the same (pandas does for a column of Arrow memory, read-only).
    return _called(x, None), (
        f"`{type_name(x)}` cannot promise a view of its data (its __array__ refuses "
        "copy=False); it is read with __array__()"
    )


def _called(x: Any, copy: bool | None) -> np.ndarray[Any, Any]:
    """What ``np.asarray(x)`` (``copy=None``) or ``np.asarray(x, copy=False)`` gives.

    Except for a masked array: NumPy keeps only the data beneath its mask (the values
    a netCDF variable hides under its fill value, say), where a masked array handed
    in directly is kept. It is kept here too, so that the mask is not lost silently.
    """
    a = x.__array__() if copy is None else x.__array__(copy=copy)
    if is_masked_array(a):
        return a  # type: ignore[no-any-return]
    if not isinstance(a, np.ndarray):
        raise ValueError("object __array__ method not producing an array")  # as NumPy's own
    return np.asarray(a)


def _speaks_of_copies(message: str) -> bool:
    """Whether an ``__array__(copy=False)`` error says it would need a copy.

    NumPy's own refusal ("Unable to avoid copy ...") is the wording pandas, pyarrow
    and others use; any refusal speaks of a copy or a view.
    """
    lowered = message.lower()
    return "copy" in lowered or "view" in lowered


def _check_declared_bounds(x: Any, a: np.ndarray[Any, Any]) -> None:
    """Refuse an ``__array_interface__`` whose shape, strides or offset overrun its buffer.

    NumPy trusts the declared geometry: a 10**15-element shape over an 8-byte
    buffer would give an array that reads (or writes) far outside it. A raw
    pointer (``data=(address, readonly)``) cannot be checked, as in NumPy itself.
    """
    base = a.base
    if (
        a.size == 0
        or base is None
        or base is x
        or class_attr(type(x), "__array_interface__") is None
    ):
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
    if sys.version_info >= (3, 12):
        return class_attr(cls, "__buffer__") is not None
    # Python 3.11 shows no __buffer__ on classes: the standard library's buffer
    # types are named. Those of a module not imported cannot have objects yet.
    return issubclass(cls, _stdlib_buffer_types())


def _stdlib_buffer_types() -> tuple[type, ...]:
    found: list[type] = [memoryview, bytearray, array.array]
    modules = sys.modules
    mmap = modules.get("mmap")
    if mmap is not None:
        found.append(mmap.mmap)
    pickle = modules.get("pickle")
    if pickle is not None:
        found.append(pickle.PickleBuffer)
    return tuple(found)
