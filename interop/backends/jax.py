"""JAX arrays, and the JAX objects that look like arrays but hold no values.

A JAX array on one CPU device is converted with a read-only zero-copy view of its
buffer (JAX arrays are immutable). Arrays on an accelerator are copied to host
memory. The special cases, each visible in :func:`interop.explain`:

* Tracers (inside ``jit``, ``vmap``, ``grad``, ``lax.scan``, ...) have no values yet:
  :class:`~interop.ConversionError`, suggesting ``jax.pure_callback`` or
  ``jax.debug.print``.
* Deleted or donated arrays have no buffer left: :class:`~interop.ConversionError`.
* Typed PRNG key arrays (``jax.random.key``) have an opaque dtype NumPy cannot
  hold: :class:`~interop.ConversionError` naming ``jax.random.key_data``.
* An array sharded over several devices is assembled from its shards into one new
  array (``assemble_shards``); a fully replicated one is a view of one local replica
  (``local_replica``). An array that is not fully addressable (spread over several
  processes) converts only if it is fully replicated, from the local replica and
  with no collective; otherwise gathering it is a collective every process must
  join, which this library does not start behind the caller's back.
* ``jax.experimental.sparse`` arrays (``BCOO``, ``BCSR``) follow the ``sparse=``
  policy.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from interop import _dtypes, _plan
from interop._backend import Backend
from interop._devices import dlpack_device_of, split_device
from interop._errors import ConversionError, type_name
from interop._memory import aligned_copy, layout_problem
from interop._options import Options
from interop._plan import Plan

if TYPE_CHECKING:
    import jax

__all__ = ["JaxBackend", "placement"]

Placement = Literal["single", "replica", "assemble", "gather", "absent"]
# The layout XLA's DLPack import aliases: row-major by the order of the strides, the
# strides of size-1 dimensions included, and 64-byte aligned. It copies any other.
_XLA_LAYOUT = {"contiguous": True, "aligned": True, "ordered": True}


def _device_str(d: Any) -> str:
    return "cpu" if d.platform == "cpu" else f"{d.platform}:{d.id}"


def placement(
    fully_addressable: bool, fully_replicated: bool, n_devices: int, n_local: int
) -> Placement:
    """How the values of an array laid out like this reach this process.

    Args:
        fully_addressable: ``jax.Array.is_fully_addressable``: every shard lives on a
            device of this process.
        fully_replicated: ``jax.Array.is_fully_replicated``: every shard holds the
            whole array.
        n_devices: The number of devices the array is laid out on.
        n_local: The number of its shards this process holds.

    Returns:
        ``"single"`` (one device: its buffer), ``"replica"`` (the whole array on each
        device: one local replica, no collective), ``"assemble"`` (pieces on several
        local devices: put them together), ``"gather"`` (pieces in other processes:
        only a collective over every process can gather them) or ``"absent"`` (a
        replicated array of which this process holds no copy).

    Example:
        >>> placement(True, False, 4, 4), placement(False, True, 8, 4)
        ('assemble', 'replica')
    """
    if fully_addressable:
        if n_devices == 1:
            return "single"
        return "replica" if fully_replicated else "assemble"
    if not fully_replicated:
        return "gather"
    return "replica" if n_local > 0 else "absent"


class JaxBackend(Backend):
    """``jax.Array`` (including tracers, which hold no data) and ``jax.experimental.sparse``
    arrays."""

    name = "jax"
    module = "jax"

    def load(self) -> None:
        import jax

        self.jax = jax
        from jax import core

        self._tracer = core.Tracer
        # The concrete array type of the fast path, learned from the first plain array
        # planned (the type is private to jaxlib; typed PRNG key arrays have another).
        self._view_type: Any = None
        # Shardings already seen to place the data in host memory on one device.
        self._host_shardings: set[Any] = set()
        # Shardings -> whether they place data outside host memory.
        self._device_shardings: dict[Any, bool] = {}
        self.steps.update(
            numpy_view=self._numpy_view,
            unpack=lambda x, p: np.array(x),
            to_host=self._to_host,
            cast_on_device=self._cast_on_device,
            local_replica=lambda x, p: x.addressable_data(0),
            assemble_shards=self._assemble_shards,
            densify=lambda x, p: np.array(x.todense()),
            to_scipy=self._to_scipy,
        )

    def matches(self, cls: type) -> bool:
        if issubclass(cls, self.jax.Array) or issubclass(cls, self._tracer):
            return True
        # A sparse array can only exist once its module was imported; never import it.
        sparse = sys.modules.get("jax.experimental.sparse")
        return sparse is not None and issubclass(cls, sparse.JAXSparse)

    def host_view_for(self, cls: type, /) -> Any:
        # jaxlib's concrete array type (typed PRNG key arrays and tracers have others).
        if not cls.__module__.startswith("jaxlib"):
            return None
        asarray = np.asarray
        bit_width = _dtypes.bit_width
        host_shardings = self._host_shardings
        # The sharding object last found in host_shardings: JAX reuses one object
        # for a device, and an identity test is much cheaper than its Python __hash__.
        seen: list[Any] = [None]

        def view(x: Any) -> np.ndarray[Any, Any] | None:
            # One device in host memory (the plan learns which shardings those are),
            # a live array: the plan's own numpy_view step, JAX's read-only view.
            sharding = x.sharding
            if sharding is not seen[0]:
                if sharding not in host_shardings:
                    return None
                seen[0] = sharding
            if x.is_deleted():
                return None
            a = asarray(x)
            # A packed sub-byte dtype (int4, float4, ...): the plan unpacks it into a
            # writable copy, not JAX's cached read-only unpacking. (The dtype of the
            # NumPy array costs a fraction of JAX's dtype property.)
            if a.itemsize == 1 and bit_width(a.dtype) < 8:
                return None
            return a

        return view

    # -- accelerators ---------------------------------------------------------------

    def accelerator_check(self) -> Any:
        # Asking JAX for its devices would initialise its backends (seconds, and on a
        # GPU machine most of the GPU memory) in a program that may never have made
        # a JAX array. The dict of backends already initialised answers without that;
        # a JAX array cannot exist before its backend is.
        bridge = sys.modules.get("jax._src.xla_bridge")
        initialized = getattr(bridge, "_backends", None)
        if initialized is None or not any(name != "cpu" for name in tuple(initialized)):
            return None
        return self._on_device

    def _on_device(self, x: Any) -> bool:
        sharding = getattr(x, "sharding", None)  # a tracer has none: the plan refuses it
        if sharding is None:
            return False
        found = self._device_shardings.get(sharding)
        if found is None:
            if len(self._device_shardings) > 256:
                self._device_shardings.clear()
            found = any(d.platform != "cpu" for d in sharding.device_set)
            self._device_shardings[sharding] = found
        return found

    def start_copy(self, obj: Any, /) -> tuple[Any, int, Any] | None:
        obj.copy_to_host_async()
        # The `to_host` step itself still runs; it waits only for this array's copy.
        return obj, 0, None

    # -- planning -----------------------------------------------------------------

    def plan(self, x: Any, options: Options, /) -> Plan:
        jax = self.jax
        if isinstance(x, self._tracer):
            raise _tracer_error(x)
        if not isinstance(x, jax.Array):
            return self._plan_sparse(x, options)
        if x.is_deleted():
            raise ConversionError(
                f"expected a live array, got a `{type_name(x)}` whose buffer was deleted or "
                "donated (x.delete(), or passed to a jit function with donate_argnums). "
                "hint: convert before donating the array, or keep a copy"
            )
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            raise ConversionError(
                f"expected an array of numbers, got a typed PRNG key array of dtype {x.dtype} "
                f"and shape {x.shape}, whose key data is opaque. "
                "hint: call jax.random.key_data(keys) for the raw uint32 key data"
            )
        sharding = x.sharding
        devices = sharding.device_set
        on_host = all(d.platform == "cpu" for d in devices)
        where = placement(
            x.is_fully_addressable,
            x.is_fully_replicated,
            len(devices),
            len(sharding.addressable_devices),
        )
        if where == "single":
            device = _device_str(next(iter(devices)))
        else:
            kinds = sorted({d.platform for d in devices})
            device = f"{len(devices)} {'/'.join(kinds)} devices"
        if where == "gather":
            raise ConversionError(
                f"expected an array this process holds, got a `{type_name(x)}` of shape "
                f"{x.shape} sharded over {device} in several processes; this process holds "
                "only some of its shards, and gathering the rest is a collective every "
                "process must join. hint: call "
                "jax.experimental.multihost_utils.process_allgather(x) in every process, "
                "or convert x.addressable_shards one by one"
            )
        if where == "absent":
            raise ConversionError(
                f"expected an array this process holds, got a `{type_name(x)}` whose "
                f"replicas all live on devices of other processes ({device}). "
                "hint: convert it in a process that holds a replica"
            )
        steps: list[str] = []
        reason: str | None = None
        source = np.dtype(x.dtype)
        target = options.dtype
        if options.upcast and target is None:
            target = _dtypes.upcast_target(source)
        if where == "replica":
            steps.append("local_replica")
        if where == "assemble":
            steps.append("assemble_shards")
            reason = (
                f"the array is sharded over {device}; its shards are assembled into one new array"
            )
        elif not on_host:
            if target is not None and target.itemsize < source.itemsize:
                steps.append("cast_on_device")
                source = target
            steps.append("to_host")
            reason = f"the data is on {device} and must be copied to host memory"
        else:
            if _dtypes.bit_width(source) < 8:
                # XLA keeps sub-byte dtypes (int4, float4, ...) packed; NumPy and
                # ml_dtypes hold one value per byte, so np.asarray unpacks into a copy.
                steps.append("unpack")
                reason = reason or (
                    f"JAX stores {source} packed, several values per byte; unpacking copies"
                )
            else:
                steps.append("numpy_view")
            if where == "single":
                self._host_shardings.add(sharding)
                if self._view_type is None:
                    self._view_type = type(x)
        return _plan.finish(
            "jax",
            "cpu" if where == "single" and on_host else device,
            steps,
            source_dtype=source,
            options=options,
            copy_reason=reason,
            transfer=not on_host,
            readonly=True,
            upcast_to=_dtypes.upcast_target(source),
        )

    def _plan_sparse(self, x: Any, options: Options) -> Plan:
        data = x.data
        if isinstance(data, self._tracer):
            raise _tracer_error(data)
        kind = type(x).__name__
        if options.sparse == "error":
            raise ConversionError(
                f"expected a dense array, got a sparse `{type_name(x)}` of shape {x.shape}. "
                "hint: pass sparse='dense' to densify it, or sparse='scipy' for a "
                f"scipy.sparse {'csr' if kind == 'BCSR' else 'coo'}_array"
            )
        if options.sparse == "dense":
            steps = ["densify"]
            reason = "densifying a sparse array builds a new dense array"
        else:
            if x.n_batch or x.n_dense or kind not in ("BCOO", "BCSR"):
                raise ConversionError(
                    f"expected a sparse array scipy can hold, got a `{type_name(x)}` with "
                    f"{x.n_batch} batch and {x.n_dense} dense dimensions; scipy.sparse has "
                    "neither. hint: pass sparse='dense' to densify it"
                )
            steps = ["to_scipy"]
            reason = "a scipy.sparse array is built from copies of the indices and values"
        devices = data.sharding.device_set
        on_host = all(d.platform == "cpu" for d in devices)
        device = _device_str(next(iter(devices))) if len(devices) == 1 else "several devices"
        source = np.dtype(x.dtype)
        return _plan.finish(
            "jax",
            device,
            steps,
            source_dtype=source,
            options=options,
            copy_reason=reason,
            transfer=not on_host,
            upcast_to=_dtypes.upcast_target(source),
        )

    # -- steps ----------------------------------------------------------------------

    def _numpy_view(self, x: jax.Array, plan: Plan) -> np.ndarray[Any, Any]:
        return np.asarray(x)

    def _to_host(self, x: jax.Array, plan: Plan) -> np.ndarray[Any, Any]:
        # device_get blocks until the copy is complete; the result owns its memory.
        return np.array(self.jax.device_get(x))

    def _cast_on_device(self, x: jax.Array, plan: Plan) -> jax.Array:
        assert plan.dtype is not None
        return x.astype(plan.dtype)

    def _assemble_shards(self, x: jax.Array, plan: Plan) -> np.ndarray[Any, Any]:
        # np.asarray(x) would assemble too, but it caches the result inside x and hands
        # the same read-only array to every caller; this result is the caller's own.
        out = np.empty(x.shape, dtype=np.dtype(x.dtype))
        done: set[Any] = set()
        for shard in x.addressable_shards:
            key = tuple((s.start, s.stop, s.step) for s in shard.index)
            if key in done:  # a replica of a piece already copied
                continue
            done.add(key)
            out[shard.index] = np.asarray(shard.data)
        return out

    def _to_scipy(self, x: Any, plan: Plan) -> Any:
        import scipy.sparse

        data = np.array(x.data)
        indices = np.array(x.indices)
        shape = tuple(x.shape)
        if type(x).__name__ == "BCSR":
            indptr = np.array(x.indptr)
            # Entries past indptr[-1] are padding.
            nse = int(indptr[-1])
            return scipy.sparse.csr_array((data[:nse], indices[:nse], indptr), shape=shape)
        # BCOO pads with out-of-bounds indices (equal to the shape) and zero values;
        # repeated indices are summed, as scipy does too.
        keep = (indices < np.asarray(shape)).all(axis=1)
        return scipy.sparse.coo_array((data[keep], tuple(indices[keep].T)), shape=shape)

    # -- conversion into this framework --

    mutable = False

    def parse_device(self, device: Any, /) -> Any:
        jax = self.jax
        if isinstance(device, (jax.Device, jax.sharding.Sharding)):
            return device
        if not isinstance(device, str):
            raise TypeError(
                f"expected a device string, jax.Device or Sharding, got `{type_name(device)}`"
            )
        kind, index = split_device(device)
        platform = "gpu" if kind in ("cuda", "rocm") else kind
        try:
            devices = jax.devices(platform)
        except RuntimeError as exc:
            raise ValueError(
                f"expected a device JAX can use, got {device!r}: JAX has no {platform} "
                f"backend here (devices: {jax.devices()}). hint: use device='cpu'"
            ) from exc
        if (index or 0) >= len(devices):
            raise ValueError(
                f"expected a device JAX can use, got {device!r}: only {len(devices)} "
                f"{platform} device(s) exist"
            )
        return devices[index or 0]

    def default_device(self) -> Any:
        configured = self.jax.config.jax_default_device
        if configured is None:
            # The first device of the default backend, fixed once JAX has started.
            first = self.__dict__.get("_first_device")
            if first is None:
                first = self._first_device = self.jax.devices()[0]
            return first
        return self.parse_device(configured)

    def device_of(self, x: Any, /) -> Any:
        devices = x.devices()
        return next(iter(devices)) if len(devices) == 1 else x.sharding

    def dlpack_device(self, device: Any, /) -> tuple[int, int]:
        if isinstance(device, self.jax.sharding.Sharding):
            if len(device.device_set) != 1:
                return (-1, -1)
            device = next(iter(device.device_set))
        if device.platform == "cpu":
            return (1, 0)
        if device.platform in ("gpu", "cuda", "rocm"):
            rocm = device.platform == "rocm" or "rocm" in device.client.platform_version
            return (10 if rocm else 2, device.local_hardware_id)
        return (-1, device.id)

    def target_dtype(self, dtype: np.dtype[Any], device: Any, /) -> np.dtype[Any]:
        # With jax_enable_x64 off JAX holds 64-bit data as 32-bit; the caller reports
        # the cast (a copy) rather than hiding it.
        canonical: np.dtype[Any] = np.dtype(self.jax.dtypes.canonicalize_dtype(dtype))
        return canonical

    def cast_reason(self, dtype: np.dtype[Any], result_dtype: np.dtype[Any], /) -> str:
        return (
            f"JAX has 64-bit types disabled (jax_enable_x64=False), so {dtype} becomes "
            f"{result_dtype}; casting copies"
        )

    def dlpack_problem(
        self, dtype: np.dtype[Any], view: np.ndarray[Any, Any] | None, device: tuple[int, int], /
    ) -> str | None:
        if dtype.type.__module__ == "ml_dtypes" and not dtype.name.startswith(
            ("bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e8m0")
        ):
            return f"DLPack has no {dtype} that JAX exchanges"
        if device != (1, 0):
            try:
                devices = self.jax.devices("gpu")
            except RuntimeError:
                return "JAX has no GPU backend here to import the data"
            if not any(self.dlpack_device(d) == device for d in devices):
                return "JAX has no access to that device"
            return None
        if view is None:
            return None
        return layout_problem(view, **_XLA_LAYOUT)

    def numpy_problem(self, a: np.ndarray[Any, Any], /) -> str | None:
        return layout_problem(a, contiguous=True, aligned=True)

    def from_numpy(self, a: np.ndarray[Any, Any], /, *, device: Any, copy: bool) -> Any:
        native = a.dtype if a.dtype.isnative else a.dtype.newbyteorder("=")
        target = self.target_dtype(native, device)
        if target != native and native.kind in "iu" and a.size:
            self._check_fits(a, target)
        if copy and (self.dlpack_device(device) == (1, 0) or self.numpy_problem(a) is not None):
            # One copy into memory JAX then aliases; device_put would copy again only
            # to reach another device.
            a = aligned_copy(a, target)
            if (
                isinstance(device, self.jax.Device)
                and device.platform == "cpu"
                and a.dtype.type.__module__ == "numpy"  # (NumPy exports ml_dtypes as bytes)
            ):
                return self._dlpack_alias()(a, device)
        return self.jax.device_put(a, device)

    def numpy_importer(self) -> Any:
        jax = self.jax
        config = jax.config
        if config.jax_default_device is not None:
            return None
        cpu = self.default_device()
        if self.dlpack_device(cpu) != (1, 0):
            return None  # the default backend is an accelerator's: uploads plan
        device_put = jax.device_put
        alias = self._dlpack_alias()
        # The dtypes JAX holds as they are: all but the 64-bit ones, which only with x64.
        narrow = {np.dtype(t) for t in "?bBhHiIefF"}
        wide = {np.dtype(t) for t in "qQdD"}

        def importer(a: np.ndarray[Any, Any], copy: bool) -> Any:
            dtype = a.dtype
            if (
                dtype not in narrow and (dtype not in wide or not config.jax_enable_x64)
            ) or config.jax_default_device is not None:
                return None
            if copy:
                return alias(aligned_copy(a), cpu)  # from_numpy's copy, which JAX aliases
            # What device_put aliases (from_numpy's import) XLA's DLPack import
            # aliases as well, in a fraction of the time, if the layout is row-major
            # by the order of the strides (and NumPy exports a, which is writable).
            if layout_problem(a, **_XLA_LAYOUT) is None:
                return alias(a, cpu)
            if layout_problem(a, contiguous=True, aligned=True) is None:
                return device_put(a, cpu)
            return None

        return importer

    def _dlpack_alias(self) -> Callable[[Any, Any], Any]:
        """``alias(x, device)``: a JAX array on the CPU ``device`` over a host DLPack producer.

        What ``jax.dlpack.from_dlpack(x)`` gives for data in host memory, without its
        per-call work: jaxlib's own import where this jaxlib has the one known (a
        fifth of the time of ``device_put``, which aliases NumPy memory XLA takes as
        it is), else the public function. XLA aliases the layout ``_XLA_LAYOUT`` and
        copies any other compact one; a NumPy producer must be writable.
        """
        found = self.__dict__.get("_alias")
        if found is not None:
            return found  # type: ignore[no-any-return]
        jax = self.jax
        lib = sys.modules.get("jax._src.lib")
        to_buffer = getattr(getattr(lib, "_jax", None), "dlpack_managed_tensor_to_buffer", None)
        if getattr(lib, "jaxlib_extension_version", 0) < 467:  # it took other arguments
            to_buffer = None
        canonical = jax.dtypes.canonicalize_dtype
        asarray = jax.numpy.asarray

        def alias(x: Any, device: Any) -> Any:
            if to_buffer is None:
                return jax.dlpack.from_dlpack(x, device=device)
            # (capsule, device, stream, copy, DLPack device type): no stream for the CPU.
            out = to_buffer(x.__dlpack__(), device, None, None, 1)
            dtype = out.dtype
            if canonical(dtype) != dtype:  # as from_dlpack: 64-bit data without x64
                return asarray(out, dtype=canonical(dtype))
            return out

        self._alias = alias
        return alias

    def _check_fits(self, a: np.ndarray[Any, Any], target: np.dtype[Any]) -> None:
        # JAX itself wraps 2**40 to 0 here without a word; a wrong value is worse
        # than an error.
        info = np.iinfo(target)
        if a.min() < info.min or a.max() > info.max:
            raise ConversionError(
                f"expected {a.dtype} values that fit {target}, got values in "
                f"[{a.min()}, {a.max()}]: JAX has 64-bit types disabled (jax_enable_x64=False), "
                "so they would wrap around. hint: jax.config.update('jax_enable_x64', True)"
            )

    def from_dlpack(self, x: Any, /, *, device: Any, copy: bool) -> Any:
        jax = self.jax
        if (
            isinstance(device, jax.Device)
            and device.platform == "cpu"
            and dlpack_device_of(x) == (1, 0)
        ):
            out = self._dlpack_alias()(x, device)
        else:
            out = jax.dlpack.from_dlpack(x)
        if self.dlpack_device(self.device_of(out)) != self.dlpack_device(device):
            return jax.device_put(out, device)
        return jax.numpy.array(out, copy=True) if copy else out

    def adopt(self, x: Any, /, *, device: Any, copy: bool) -> Any:
        if self.device_of(x) != device:
            return self.jax.device_put(x, device)
        return self.jax.numpy.array(x, copy=True) if copy else x

    def readonly_source(self, x: Any, /) -> bool:
        return True

    def dlpack_export(self, x: Any, dtype: np.dtype[Any], /) -> Any:
        if len(x.devices()) != 1 or self.dlpack_problem(dtype, None, (1, 0)) is not None:
            return None
        return x


def _tracer_error(x: Any) -> ConversionError:
    return ConversionError(
        f"expected a concrete array, got a tracer (`{type_name(x)}`) with shape "
        f"{x.shape} and dtype {x.dtype}: inside jit, vmap, grad or scan the values "
        "do not exist yet. hint: use jax.pure_callback to run NumPy code on the "
        "values, or jax.debug.print to look at them"
    )
