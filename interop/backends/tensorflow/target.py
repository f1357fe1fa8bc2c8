"""TensorFlow as the target of :func:`interop.convert`: devices, dtypes and imports.

TensorFlow imports DLPack only as legacy capsules, which cannot say read-only, and
its kernels assume 64-byte aligned, compact buffers, which its import does not
check: both are checked here before aliasing any memory (for data on a GPU, by
:func:`interop._devices.layout_problem` with :data:`~interop._devices.ROW_MAJOR_LAYOUT`).

As a source on a GPU, a tensor is exported through :class:`GpuExport`: TensorFlow's
``EagerTensor.__dlpack__`` raises ``RuntimeError`` for any ``stream`` but ``None``,
and PyTorch's ``from_dlpack`` passes its current stream for CUDA data (and retries
only on ``TypeError``); ``tf.experimental.dlpack.to_dlpack`` takes no stream and,
as its documentation says, "ensures the underlying data memory is ready when
returns", so every consumer may read it on any stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from interop import _dtypes
from interop._backend import Backend
from interop._devices import ROW_MAJOR_LAYOUT, DeviceExport, LayoutNeeds, split_device
from interop._errors import ConversionError, type_name
from interop._memory import aligned_copy, layout_problem

__all__ = ["GpuExport", "TensorFlowTarget"]

# TensorFlow's name of the device that DLPack imports from host memory land on.
_HOST = "/device:CPU:0"


class GpuExport(DeviceExport):
    """The DLPack export of a TensorFlow tensor on a GPU: a legacy capsule, for any stream.

    ``stream`` is accepted and not passed on (see the module docstring), and so is
    ``max_version``: DLPack lets a producer that has no versioned capsule return a
    legacy one, which PyTorch, JAX and NumPy import. TensorFlow allocates compact
    row-major tensors from its aligned allocator: no layout to check.
    """

    __slots__ = ("to_dlpack",)

    def __init__(self, to_dlpack: Any, t: Any, device: tuple[int, int]) -> None:
        super().__init__(t, device, None)
        self.to_dlpack = to_dlpack

    def __dlpack__(
        self,
        *,
        stream: Any = None,
        max_version: tuple[int, int] | None = None,
        dl_device: Any = None,
        copy: bool | None = None,
    ) -> Any:
        if copy or dl_device not in (None, self.device):
            # (DLPack's answer for a request the producer cannot meet.)
            raise BufferError(
                f"expected a DLPack request TensorFlow can meet, got copy={copy!r} and "
                f"dl_device={dl_device!r}. hint: import without them and copy afterwards"
            )
        return self.to_dlpack(self.array)

    def compact(self) -> GpuExport:
        return self  # (never asked: layout is None)


class TensorFlowTarget(Backend):
    """The hooks that create TensorFlow tensors (the source side is in the subclass)."""

    #: The ``tensorflow`` module and its ``EagerTensor`` type, set by ``load()``.
    tf: Any
    eager: Any
    #: TensorFlow's ``context.context``, and what is learnt once per process, set by
    #: :meth:`load_target`: parsed device strings (TensorFlow's logical devices are
    #: fixed once it runs), the device of a new constant per device scope, and the
    #: NumPy dtypes TensorFlow holds.
    _eager_context: Callable[[], Any]
    _parsed_devices: dict[str, str]
    _default_devices: dict[str, str]
    _held_dtypes: set[np.dtype[Any]]

    mutable = False

    def load_target(self) -> None:
        """Set up the target side (``load()`` calls it, once ``tf`` is set)."""
        from tensorflow.python.eager import context

        self._eager_context = context.context
        self._parsed_devices = {}
        self._default_devices = {}
        self._held_dtypes = set()

    def parse_device(self, device: Any, /) -> Any:
        parsed = self._parsed_devices
        if type(device) is str:
            found = parsed.get(device)
            if found is None:
                found = self._parse_device(device)
                if len(parsed) < 256:
                    parsed[device] = found
            return found
        return self._parse_device(device)

    def _parse_device(self, device: Any) -> str:
        tf = self.tf
        if isinstance(device, tf.DeviceSpec):
            spec = device
        elif isinstance(device, str):
            if "/" in device or device[:3].isupper():
                spec = tf.DeviceSpec.from_string(device)
            else:
                kind, index = split_device(device)
                kind = "GPU" if kind in ("cuda", "gpu", "rocm") else kind.upper()
                spec = tf.DeviceSpec(device_type=kind, device_index=index or 0)
        else:
            raise TypeError(f"expected a device string or tf.DeviceSpec, got `{type_name(device)}`")
        kind = (spec.device_type or "CPU").upper()
        index = spec.device_index or 0
        available = tf.config.list_logical_devices(kind)
        if index >= len(available):
            raise ValueError(
                f"expected a device TensorFlow can use, got {device!r}: {len(available)} "
                f"{kind} device(s) are available. hint: use device='cpu'"
            )
        return f"/device:{kind}:{index}"

    def default_device(self) -> Any:
        scope = self._eager_context().device_name
        cache = self._default_devices
        found = cache.get(scope)
        if found is None:
            # Where TensorFlow puts a new constant in this device scope: the GPU when
            # one is visible, else the CPU.
            # (Eagerly: a graph being traced, inside tf.function, places nothing yet,
            # and the tensors convert makes there are eager ones too.)
            with self.tf.init_scope():
                placed = self.tf.constant(0.0).device
            found = cache[scope] = self.parse_device(placed)
        return found

    def device_of(self, x: Any, /) -> Any:
        return self.parse_device(x.device or "cpu")

    def dlpack_device(self, device: Any, /) -> tuple[int, int]:
        _, kind, index = device.rsplit(":", 2)
        if kind == "CPU":
            return (1, 0)
        return (2, int(index)) if kind == "GPU" else (-1, int(index))

    def target_dtype(self, dtype: np.dtype[Any], device: Any, /) -> np.dtype[Any]:
        held = self._held_dtypes
        if dtype in held:
            return dtype
        try:
            self.tf.as_dtype(dtype)
        except TypeError as exc:
            raise ConversionError(
                f"expected a dtype TensorFlow can hold, got {dtype}. "
                f"hint: {_dtypes.cast_hint(dtype)}"
            ) from exc
        if len(held) < 256:
            held.add(dtype)
        return dtype

    def _dlpack_dtype_problem(self, dtype: np.dtype[Any]) -> str | None:
        if _narrow_format(dtype):
            return f"TensorFlow exchanges no {dtype} through DLPack"
        return None

    def dlpack_problem(
        self, dtype: np.dtype[Any], view: np.ndarray[Any, Any] | None, device: tuple[int, int], /
    ) -> str | None:
        problem = self._dlpack_dtype_problem(dtype)
        if problem is not None:
            return problem
        if device != (1, 0):
            gpus = self.tf.config.list_logical_devices("GPU")
            if device[0] != 2 or device[1] >= len(gpus):
                return "TensorFlow has no access to that device"
            return None
        if view is None:
            return None
        # TensorFlow's kernels assume 64-byte aligned, compact buffers; its DLPack
        # import does not check the alignment, so the check is made here.
        return layout_problem(view, contiguous=True, aligned=True)

    def dlpack_layout(self) -> LayoutNeeds:
        return ROW_MAJOR_LAYOUT

    def numpy_problem(self, a: np.ndarray[Any, Any], /) -> str | None:
        if not a.flags.writeable:
            return (
                "TensorFlow imports NumPy memory only as a legacy DLPack capsule, which "
                "cannot carry NumPy's read-only flag"
            )
        return self.dlpack_problem(a.dtype, a, (1, 0))

    def from_numpy(self, a: np.ndarray[Any, Any], /, *, device: Any, copy: bool) -> Any:
        tf = self.tf
        if copy and a.size and device == _HOST and self._dlpack_dtype_problem(a.dtype) is None:
            # One copy into fresh aligned memory that TensorFlow then aliases: a third
            # of the time of tf.convert_to_tensor on small arrays. Nothing else holds it.
            return self.from_numpy(aligned_copy(a), device=device, copy=False)
        if copy:
            with tf.device(device):
                # One copy into memory TensorFlow allocates (aligned, any dtype it holds).
                t = tf.convert_to_tensor(a)
                return t if self.device_of(t) == device else tf.identity(t)
        dlpack = tf.experimental.dlpack
        if a.dtype.type.__module__ == "ml_dtypes":  # bfloat16: through its bits
            bits = dlpack.from_dlpack(a.view(np.uint16).__dlpack__())
            return tf.bitcast(bits, tf.bfloat16)
        return dlpack.from_dlpack(a.__dlpack__())

    def numpy_importer(self) -> Any:
        self.default_device()  # sets up what the importer reads
        scope_of = self._eager_context
        defaults = self._default_devices
        held = self._held_dtypes
        import_dlpack = self.tf.experimental.dlpack.from_dlpack
        # Dtypes met here that TensorFlow holds and imports through DLPack as they
        # are: NumPy's own numeric dtypes, which NumPy exports (not ml_dtypes', some
        # of which have kind "f" too).
        plain: set[np.dtype[Any]] = set()

        def importer(a: np.ndarray[Any, Any], copy: bool) -> Any:
            dtype = a.dtype
            if dtype not in plain:
                if (
                    dtype not in held  # (unknown yet: target_dtype is asked first)
                    or dtype.kind not in "biufc"
                    or dtype.type.__module__ != "numpy"
                    or not dtype.isnative
                ):
                    return None
                plain.add(dtype)
            if defaults.get(scope_of().device_name) != _HOST:
                return None
            if copy:
                # from_numpy's copy: fresh aligned memory, then aliased.
                return import_dlpack(aligned_copy(a).__dlpack__()) if a.size else None
            if layout_problem(a, contiguous=True, aligned=True) is None:  # (a is writable)
                return import_dlpack(a.__dlpack__())
            return None

        return importer

    def from_dlpack(self, x: Any, /, *, device: Any, copy: bool) -> Any:
        tf = self.tf
        # TensorFlow takes legacy capsules only, so none with max_version is asked for.
        t = tf.experimental.dlpack.from_dlpack(x.__dlpack__())
        if self.device_of(t) != device:
            with tf.device(device):
                return tf.identity(t)
        return tf.raw_ops.DeepCopy(x=t) if copy else t

    def adopt(self, x: Any, /, *, device: Any, copy: bool) -> Any:
        tf = self.tf
        if isinstance(x, tf.Variable):
            # A variable gives its value now, as a tensor: zero-copy and immutable, as
            # the plan says (an assign later writes into a new buffer of the variable's
            # own and leaves this one alone), where the variable itself would change.
            x = x.read_value()
        moved = self.device_of(x) != device
        if not moved and not copy:
            return x
        # A ragged or sparse tensor is copied component by component.
        with tf.device(device):
            return tf.nest.map_structure(
                (lambda t: tf.identity(t)) if moved else self._deep_copy,
                x,
                expand_composites=True,
            )

    def _deep_copy(self, t: Any) -> Any:
        """A copy of tensor ``t`` in new memory, on the current device."""
        tf = self.tf
        dtype = t.dtype
        if dtype.is_quantized or _narrow_format(np.dtype(dtype.as_numpy_dtype)):
            # TensorFlow has no copy kernel for these (float8, int4, ..., qint8): their
            # values go through host memory into a new tensor of the same dtype.
            return tf.constant(t.numpy(), dtype=dtype)
        return tf.raw_ops.DeepCopy(x=t)

    def readonly_source(self, x: Any, /) -> bool:
        return True

    def dlpack_export(self, x: Any, dtype: np.dtype[Any], /) -> Any:
        if type(x) is not self.eager or self._dlpack_dtype_problem(dtype) is not None:
            return None
        if ":GPU:" in x.device:
            to_dlpack = self.tf.experimental.dlpack.to_dlpack
            return GpuExport(to_dlpack, x, self.dlpack_device(self.device_of(x)))
        if not x.device.endswith("CPU:0"):
            # Another logical CPU device (/CPU:1): TensorFlow exports it as a CPU
            # device that importers do not know; the host view goes instead.
            return None
        return x


def _narrow_format(dtype: np.dtype[Any]) -> bool:
    """Whether ``dtype`` is an ``ml_dtypes`` format of a byte or less (float8, float4,
    int4, int2, ...), which TensorFlow neither exchanges through DLPack nor copies with
    a kernel: bfloat16 is the only wider one."""
    return dtype.type.__module__ == "ml_dtypes" and dtype.name != "bfloat16"
