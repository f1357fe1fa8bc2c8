"""Dense JAX arrays as a source: their plans, steps and host view.

A JAX array on one CPU device is converted with a read-only zero-copy view of its
buffer (JAX arrays are immutable; NumPy reads the buffer through the buffer
protocol, as a read-only memoryview, so the flag cannot be set back; the dtypes of
``ml_dtypes``, which that protocol does not carry, are read by jaxlib's own reader
of the buffer, read-only the same way). An array on an
accelerator is read through the host copy JAX makes and keeps inside the array
(``np.asarray`` reaches it; one device-to-host copy, made once): JAX hands it out
read-only, shared by every reader of that array, so the result is a read-only view
of it, and ``copy=True`` copies it again. After a cast on the device the host copy
belongs to a temporary array that nothing else reads, and the result is writable.
XLA keeps sub-byte dtypes (int4, float4,
...) packed, several values per byte, where NumPy and ``ml_dtypes`` hold one value
per byte: those arrays are unpacked into a new writable array on every call, never
handed out as the read-only unpacking JAX caches inside the array.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from interop import _dtypes, _plan
from interop._backend import Step
from interop._errors import ConversionError, type_name
from interop._options import Options
from interop._plan import Plan
from interop.backends.jax.sharding import assemble_shards, layout

__all__ = ["ArraySource", "deleted_error", "tracer_error"]


def tracer_error(x: Any) -> ConversionError:
    """The error for a tracer: inside a transformation, the values do not exist yet."""
    return ConversionError(
        f"expected a concrete array, got a tracer (`{type_name(x)}`) with shape "
        f"{x.shape} and dtype {x.dtype}: inside jit, vmap, grad or scan the values "
        "do not exist yet. hint: use jax.pure_callback to run NumPy code on the "
        "values, or jax.debug.print to look at them"
    )


def deleted_error(x: Any) -> ConversionError:
    """The error for a deleted or donated array, whose buffer is gone."""
    return ConversionError(
        f"expected a live array, got a `{type_name(x)}` whose buffer was deleted or "
        "donated (x.delete(), or passed to a jit function with donate_argnums). "
        "hint: convert before donating the array, or keep a copy"
    )


# How many sharding objects a host view keeps by id before it starts afresh.
_KNOWN_SHARDINGS = 64


def _unpack(x: Any, plan: Plan) -> np.ndarray[Any, Any]:
    return unpacked(x)


def unpacked(x: Any) -> np.ndarray[Any, Any]:
    """The values of a JAX array of a sub-byte dtype, one per byte, in memory they own.

    ``np.array`` copies JAX's unpacking; JAX gives int1 and uint1 values as booleans,
    of the same bits (``True`` is int1's -1), which are seen as the array's dtype.
    """
    a = np.array(x, copy=True)
    dtype = x.dtype
    if a.dtype != dtype and a.dtype.itemsize == dtype.itemsize:
        return a.view(dtype)
    return a


def _to_host(x: Any, plan: Plan) -> np.ndarray[Any, Any]:
    # np.asarray waits for the copy (started by copy_to_host_async, or now) and
    # returns the read-only host copy JAX keeps for every later reader.
    a = np.asarray(x)
    if "cast_on_device" not in plan.steps:
        # A new view of it: its flag cannot be set back while JAX's stays read-only
        # (JAX's array owns its memory), and a reshape in place by the caller does
        # not reach JAX's array.
        return a.view()
    # x is the temporary of a cast on the device: its host copy has no other reader,
    # and the result is writable. JAX's host copy owns its memory, so its flag can be
    # set back; an alias of a buffer cannot, and is copied.
    if a.flags.owndata:
        a.setflags(write=True)
        return a
    return np.array(a)


def _unread(x: Any) -> None:
    return None


def _reader(cls: type, dtype: np.dtype[Any]) -> Callable[[Any], np.ndarray[Any, Any] | None]:
    """How the host view reads an array of ``dtype`` on one CPU device.

    A packed sub-byte dtype: it does not (it answers ``None``), the plan unpacks it
    (see the module). NumPy's
    own dtypes: ``np.asarray``, through jaxlib's buffer protocol. The dtypes of
    ``ml_dtypes`` (bfloat16, float8, ...), which the buffer protocol does not carry:
    ``np.asarray`` would try it, fail, and fall back to ``__array__`` at several
    times the cost; jaxlib's own reader of a single-device buffer gives the same
    read-only view directly, and where it would copy (a layout NumPy cannot view)
    the plan decides instead.
    """
    if _dtypes.bit_width(dtype) < 8:
        return _unread
    direct = getattr(cls, "_single_device_array_to_np_array_did_copy", None)
    if dtype.type.__module__ == "numpy" or direct is None:
        return np.asarray

    def read(x: Any) -> np.ndarray[Any, Any] | None:
        a, copied = direct(x)
        return None if copied else a  # type: ignore[no-any-return]

    return read


def _numpy_view(x: Any, plan: Plan) -> np.ndarray[Any, Any]:
    """The plan's read-only view of a single-device array in host memory (see :func:`_reader`)."""
    a = _reader(type(x), x.aval.dtype)(x)
    return np.asarray(x) if a is None else a


class ArraySource:
    """Plans, steps and the host view of ``jax.Array``."""

    def __init__(self, jax: Any) -> None:
        self.jax = jax
        # Shardings already seen to place the data in host memory on one device.
        self.host_shardings: set[Any] = set()

    def steps(self) -> dict[str, Step]:
        """The steps of this module's plans, by name."""
        return {
            "numpy_view": _numpy_view,
            "unpack": _unpack,
            "to_host": _to_host,
            "cast_on_device": self._cast_on_device,
            "local_replica": lambda x, p: x.addressable_data(0),
            "assemble_shards": assemble_shards,
        }

    def host_view(self, cls: type) -> Callable[[Any], np.ndarray[Any, Any] | None]:
        """The host view of jaxlib's array type ``cls``: the plan's ``numpy_view``, or ``None``.

        It reads ``_sharding``, the attribute of jaxlib's array type behind the public
        ``sharding`` property, which costs more than the other checks together, and
        the dtype of ``aval`` (a fraction of the ``dtype`` property), whose class
        says how the buffer is read (see :func:`_reader`).
        """
        host_shardings = self.host_shardings
        # The unbound method: no bound method object made per call.
        is_deleted: Callable[[Any], bool] = cls.is_deleted  # type: ignore[attr-defined]
        readers: dict[type, Callable[[Any], np.ndarray[Any, Any] | None]] = {}
        # The sharding object last found in host_shardings, and every one found so
        # far by id (each held here, so that its id cannot be taken by another object):
        # JAX reuses a few sharding objects (one per device and kind of array), and an
        # identity test is much cheaper than the Python __hash__ that a lookup in
        # host_shardings runs. A tree whose leaves alternate between two of them (a
        # weight and a bias) finds each by id. Bounded, for programs that make
        # sharding objects anew.
        seen: Any = None
        known: dict[int, Any] = {}

        def view(x: Any) -> np.ndarray[Any, Any] | None:
            nonlocal seen
            # One device in host memory (the plan learns which shardings those are;
            # an array sharded over several devices never has one of them).
            sharding = x._sharding
            if sharding is not seen:
                if known.get(id(sharding)) is not sharding:
                    if sharding not in host_shardings:
                        return None
                    if len(known) >= _KNOWN_SHARDINGS:
                        known.clear()
                    known[id(sharding)] = sharding
                seen = sharding
            # A deleted or donated array keeps its sharding, not its buffer.
            if is_deleted(x):
                return None
            kind = type(x.aval.dtype)
            read = readers.get(kind)
            if read is None:
                read = readers[kind] = _reader(cls, x.aval.dtype)
            return read(x)

        return view

    def plan(self, x: Any, options: Options) -> Plan:
        """The plan of a concrete ``jax.Array``."""
        jax = self.jax
        if x.is_deleted():
            raise deleted_error(x)
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            raise ConversionError(
                f"expected an array of numbers, got a typed PRNG key array of dtype {x.dtype} "
                f"and shape {x.shape}, whose key data is opaque. "
                "hint: call jax.random.key_data(keys) for the raw uint32 key data"
            )
        where, device, on_host = layout(x)
        steps: list[str] = []
        reason: str | None = None
        kept = False
        source = np.dtype(x.dtype)
        if where == "replica":
            steps.append("local_replica")
        if where == "assemble":
            steps.append("assemble_shards")
            reason = (
                f"the array is sharded over {device}; its shards are assembled into one new array"
            )
        elif not on_host:
            reason, source, kept = _plan.device_to_host(
                steps, device, source, options, kept_by="JAX keeps with the array"
            )
        elif _dtypes.bit_width(source) < 8:
            # NumPy and ml_dtypes hold one value per byte: np.array unpacks into a copy.
            steps.append("unpack")
            reason = f"JAX stores {source} packed, several values per byte; unpacking copies"
        else:
            steps.append("numpy_view")
            if where == "single":
                self.host_shardings.add(x.sharding)
        return _plan.finish(
            "jax",
            "cpu" if where == "single" and on_host else device,
            steps,
            source_dtype=source,
            options=options,
            copy_reason=reason,
            transfer=not on_host,
            readonly=True,
            kept=kept,
            upcast_to=_dtypes.upcast_target(source),
        )

    def _cast_on_device(self, x: Any, plan: Plan) -> Any:
        assert plan.dtype is not None
        return x.astype(plan.dtype)
