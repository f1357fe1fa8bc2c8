"""CuPy arrays.

CuPy data lives in GPU memory, so every conversion is a device-to-host copy
(``to_host``), refused by ``allow_transfer=False``. The copy is
:func:`cupy.asnumpy` on the current stream of the array's device, the stream that
CuPy's own kernels producing the array were queued on, and it waits for that stream
before returning: the result is complete and owned by the caller.

This module imports nothing from CuPy at import time; the backend is consulted only
once ``cupy`` is in ``sys.modules``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import numpy as np

from interop import _dtypes, _plan
from interop._backend import STAGING_BYTES, Backend, Copy, Staged
from interop._options import Options
from interop._plan import Plan

if TYPE_CHECKING:
    import cupy

__all__ = ["CupyBackend"]


def _always(x: Any) -> bool:
    return True


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
        source = np.dtype(x.dtype)
        target = options.dtype
        if options.upcast and target is None:
            target = _dtypes.upcast_target(source)
        steps: list[str] = []
        # Casting on the device first moves fewer bytes over the bus.
        if target is not None and target.itemsize < source.itemsize:
            steps.append("cast_on_device")
            source = target
        steps.append("to_host")
        return _plan.finish(
            self.name,
            device,
            steps,
            source_dtype=source,
            options=options,
            copy_reason=f"the data is on {device} and must be copied to host memory",
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
