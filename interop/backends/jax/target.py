"""JAX as the target of :func:`interop.convert`: devices, dtypes and imports.

With ``jax_enable_x64`` off JAX holds 64-bit data as 32-bit: the target dtype says
so (the caller reports the cast), and integers that would wrap around are refused.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from interop import _dtypes
from interop._backend import Backend
from interop._devices import ROW_MAJOR_LAYOUT, LayoutNeeds, dlpack_device_of, split_device
from interop._dtypes import bit_width
from interop._errors import ConversionError, type_name
from interop._memory import aligned_copy, layout_problem
from interop.backends.jax.source import unpacked

__all__ = ["JaxTarget"]

# The layout XLA's DLPack import aliases: row-major by the order of the strides, the
# strides of size-1 dimensions included, and 64-byte aligned. It copies any other.
_XLA_LAYOUT = {"contiguous": True, "aligned": True, "ordered": True}


class JaxTarget(Backend):
    """The hooks that create JAX arrays (the source side is in the subclass)."""

    #: The ``jax`` module, set by ``load()``.
    jax: Any
    #: ``(dtype, device)`` -> why JAX cannot hold that dtype there (``None``: it can).
    held_dtypes: dict[tuple[np.dtype[Any], Any], str | None]

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
        if not isinstance(x, self.jax.Array):
            x = x.data  # (a jax.experimental.sparse array: where its values are)
        devices = x.devices()
        return next(iter(devices)) if len(devices) == 1 else x.sharding

    def dlpack_device(self, device: Any, /) -> tuple[int, int]:
        if isinstance(device, self.jax.sharding.Sharding):
            devices = device.device_set
            if len(devices) != 1:
                # Host memory, wherever the shards are in it; else no one DLPack device.
                return (1, 0) if all(d.platform == "cpu" for d in devices) else (-1, -1)
            device = next(iter(devices))
        if device.platform == "cpu":
            return (1, 0)
        if device.platform in ("gpu", "cuda", "rocm"):
            rocm = device.platform == "rocm" or "rocm" in device.client.platform_version
            return (10 if rocm else 2, device.local_hardware_id)
        return (-1, device.id)

    def target_dtype(self, dtype: np.dtype[Any], device: Any, /) -> np.dtype[Any]:
        if dtype.kind in "fc" and dtype.itemsize > (16 if dtype.kind == "c" else 8):
            # NumPy's longdouble (and its complex): no JAX dtype, no DLPack type.
            raise ConversionError(
                f"expected a dtype JAX can hold, got {dtype}. hint: {_dtypes.cast_hint(dtype)}"
            )
        if dtype.type.__module__ != "numpy":
            self._check_held(dtype, device)
        # With jax_enable_x64 off JAX holds 64-bit data as 32-bit; the caller reports
        # the cast (a copy) rather than hiding it.
        canonical: np.dtype[Any] = np.dtype(self.jax.dtypes.canonicalize_dtype(dtype))
        return canonical

    def _check_held(self, dtype: np.dtype[Any], device: Any) -> None:
        """Raise :class:`ConversionError` unless arrays of ``dtype`` can exist on ``device``.

        Which ``ml_dtypes`` formats an XLA device holds depends on the device and
        the version (the CPU holds no float6, no device complex32): asked once per
        dtype and device, with an empty array.
        """
        known = self.held_dtypes
        key = (dtype, device)
        if key not in known:
            try:
                self.jax.device_put(np.zeros(0, dtype), device)
            except (TypeError, self.jax.errors.JaxRuntimeError) as exc:
                known[key] = str(exc).splitlines()[0]
            else:
                known[key] = None
        problem = known[key]
        if problem is not None:
            raise ConversionError(
                f"expected a dtype JAX can hold on {device}, got {dtype} (JAX: {problem}). "
                f"hint: {_dtypes.cast_hint(dtype)}"
            )

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

    def dlpack_layout(self) -> LayoutNeeds:
        # Compact row-major and 64-byte aligned: XLA aliases that layout; another
        # permutation of compact strides is a non-default layout it refuses or
        # copies (see interop._devices.PERMUTED_LAYOUT), and anything else it refuses.
        return ROW_MAJOR_LAYOUT

    def numpy_problem(self, a: np.ndarray[Any, Any], /) -> str | None:
        dtype = a.dtype
        if dtype.itemsize == 1 and dtype.type.__module__ == "ml_dtypes" and bit_width(dtype) < 8:
            # (NumPy and ml_dtypes hold one value per byte.)
            return f"XLA stores {dtype} packed, several values per byte, so importing copies"
        return layout_problem(a, contiguous=True, aligned=True)

    def from_numpy(self, a: np.ndarray[Any, Any], /, *, device: Any, copy: bool) -> Any:
        native = a.dtype if a.dtype.isnative else a.dtype.newbyteorder("=")
        target = self.target_dtype(native, device)
        if target != native and native.kind in "iu" and a.size:
            self._check_fits(a, target)
        on_host = self.dlpack_device(device) == (1, 0)
        if not on_host and a.dtype == target:
            # The upload is the one copy, from memory of any alignment or writability.
            return self.jax.device_put(a, device)
        if copy and (on_host or self.numpy_problem(a) is not None):
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
        if not copy:
            return x
        if x.dtype.name in ("int1", "uint1"):
            # JAX cannot compile its own copy of these: the values go through host memory.
            return self.jax.device_put(unpacked(x), device)
        return self.jax.numpy.array(x, copy=True)

    def readonly_source(self, x: Any, /) -> bool:
        return True

    def dlpack_export(self, x: Any, dtype: np.dtype[Any], /) -> Any:
        # (A single-device sharding answers without the set of devices made per call.)
        if type(x.sharding) is not self.jax.sharding.SingleDeviceSharding and len(x.devices()) != 1:
            return None
        if self.dlpack_problem(dtype, None, (1, 0)) is not None:
            return None
        return x
