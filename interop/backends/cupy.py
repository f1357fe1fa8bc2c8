"""CuPy arrays.

CuPy data lives in GPU memory, so every conversion is a device-to-host copy
(``to_host``), refused by ``allow_transfer=False``. The copy is
:func:`cupy.asnumpy` on the current stream of the array's device, the stream that
CuPy's own kernels producing the array were queued on, and it waits for that stream
before returning: the result is complete and owned by the caller.

As a source of :func:`interop.convert`, an array goes to PyTorch or JAX on the GPU
through DLPack (:class:`CupyExport`): CuPy's ``__dlpack__`` follows DLPack's stream
handshake, run with the array's device current.

This module imports nothing from CuPy at import time; the backend is consulted only
once ``cupy`` is in ``sys.modules``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import numpy as np

from interop import _dtypes, _plan
from interop._backend import Backend
from interop._copies import STAGING_BYTES, Copy, Staged
from interop._devices import DeviceExport, Layout, export_stream
from interop._options import Options
from interop._plan import Plan

if TYPE_CHECKING:
    import cupy

__all__ = ["CupyBackend", "CupyExport"]


def _always(x: Any) -> bool:
    return True


class CupyExport(DeviceExport):
    """The DLPack export of a CuPy array to another framework.

    Runs with the array's device current, and orders the consumer after CuPy's
    current stream as :func:`interop._devices.export_stream` decides: a consumer
    that names no stream gets the data after a wait on the host.
    """

    __slots__ = ()

    def __init__(self, x: Any) -> None:
        strides = tuple(s // x.itemsize for s in x.strides)
        layout = Layout(tuple(x.shape), strides, x.itemsize, x.data.ptr)
        super().__init__(x, tuple(x.__dlpack_device__()), layout)  # type: ignore[arg-type]

    def __dlpack__(
        self,
        *,
        stream: Any = None,
        max_version: tuple[int, int] | None = None,
        dl_device: Any = None,
        copy: bool | None = None,
    ) -> Any:
        x = self.array
        plan = export_stream(stream, rocm=self.device[0] == 10)
        kwargs: dict[str, Any] = {}
        if max_version is not None:
            kwargs["max_version"] = max_version
        if dl_device is not None:
            kwargs["dl_device"] = dl_device
        if copy is not None:
            kwargs["copy"] = copy
        with x.device:
            if plan.wait:
                importlib.import_module("cupy").cuda.get_current_stream().synchronize()
                return x.__dlpack__(**kwargs)
            return x.__dlpack__(stream=plan.stream, **kwargs)

    def compact(self) -> CupyExport:
        x = self.array
        with x.device:
            return CupyExport(x.copy(order="C"))  # always new memory, pool-aligned


class CupyBackend(Backend):
    """``cupy.ndarray`` and its subclasses."""

    name = "cupy"
    module = "cupy"

    def load(self) -> None:
        import cupy

        self.cupy = cupy
        self.steps.update(to_host=self._to_host, cast_on_device=self._cast_on_device)

    def matches(self, cls: type) -> bool:
        return issubclass(cls, self.cupy.ndarray)

    def plan(self, x: Any, options: Options, /) -> Plan:
        device = f"cuda:{x.device.id}"
        steps: list[str] = []
        # (CuPy casts to no ml_dtypes format, and its float casts may round: the device
        # cast is made only where it provably gives the host cast's values.)
        reason, source, _ = _plan.device_to_host(steps, device, np.dtype(x.dtype), options)
        return _plan.finish(
            self.name,
            device,
            steps,
            source_dtype=source,
            options=options,
            copy_reason=reason,
            transfer=True,
            upcast_to=_dtypes.upcast_target(source),
        )

    def accelerator_check(self) -> Any:
        return _always  # every CuPy array lives on a GPU

    def start_copy(self, obj: Any, pinned_left: int, /) -> Copy | None:
        cupy = self.cupy
        if not isinstance(obj, cupy.ndarray):
            return None
        cupyx = importlib.import_module("cupyx")
        with obj.device:
            # The current stream of the array's device, after the kernels that produced
            # it; the event recorded right after the copy waits for it alone.
            stream = cupy.cuda.get_current_stream()
            src = cupy.ascontiguousarray(obj)
            nbytes = int(src.nbytes)
            if nbytes > pinned_left:
                return self._staged_copy(src, stream, nbytes)
            host = cupyx.empty_pinned(src.shape, dtype=src.dtype)
            src.get(stream=stream, out=host, blocking=False)
            event = stream.record()
        # The pinned array stands for what `to_host` returns once the event is
        # reached: skip that step. It holds its block of CuPy's pinned memory pool
        # until it is dropped, and the pending copy holds `src` until the copy lands.
        return Copy(host, 1, event, src, pinned=nbytes)

    def _staged_copy(self, src: cupy.ndarray, stream: Any, nbytes: int) -> Copy:
        """The copy of a leaf beyond the pinned bound: staged into pageable memory at the wait."""
        cupy = self.cupy
        cupyx = importlib.import_module("cupyx")
        flat = src.reshape(-1).view(cupy.uint8)
        out = np.empty(nbytes, dtype=np.uint8)
        chunk = STAGING_BYTES // 2
        # The pinned staging buffer, allocated at the wait from CuPy's pinned memory
        # pool, which hands the same block to the next staged copy.
        buffers: list[np.ndarray[Any, Any]] = []

        def copy_chunk(half: int, start: int, stop: int) -> Any:
            if not buffers:
                buffers.append(cupyx.empty_pinned(2 * min(chunk, nbytes), dtype=np.uint8))
            base = half * chunk
            with src.device:
                dst = buffers[0][base : base + stop - start]
                flat[start:stop].get(stream=stream, out=dst, blocking=False)
                return stream.record()

        def read_chunk(half: int, n: int) -> np.ndarray[Any, Any]:
            base = half * chunk
            return buffers[0][base : base + n]

        result = out.view(np.dtype(src.dtype)).reshape(src.shape)
        return Copy(result, 1, Staged(out, chunk, copy_chunk, read_chunk), flat, deferred=True)

    def readonly_source(self, x: Any, /) -> bool:
        return False  # CuPy arrays are written in place

    def dlpack_export(self, x: Any, dtype: np.dtype[Any], /) -> Any:
        return CupyExport(x) if type(x) is self.cupy.ndarray else None

    def _cast_on_device(self, x: cupy.ndarray, plan: Plan) -> cupy.ndarray:
        with x.device:
            return x.astype(plan.dtype)

    def _to_host(self, x: cupy.ndarray, plan: Plan) -> np.ndarray[Any, Any]:
        with x.device:
            stream = self.cupy.cuda.get_current_stream()
            out: np.ndarray[Any, Any] = self.cupy.asnumpy(x, stream=stream)
            # With an explicit stream the copy may be asynchronous: wait for it alone,
            # not for the work queued on the stream after it.
            stream.record().synchronize()
        return out
