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
from interop._backend import Backend
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
        # Casting on the device first moves fewer bytes over the bus, where the
        # device cast is provably the host cast (interop._dtypes.cast_on_device): CuPy
        # casts to no ml_dtypes format, and its float casts may round otherwise.
        if _dtypes.cast_on_device(source, target):
            steps.append("cast_on_device")
            source = target  # type: ignore[assignment]
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

    def start_copy(self, obj: Any, /) -> tuple[Any, int, Any] | None:
        cupy = self.cupy
        if not isinstance(obj, cupy.ndarray):
            return None
        cupyx = importlib.import_module("cupyx")
        with obj.device:
            stream = cupy.cuda.get_current_stream()
            src = cupy.ascontiguousarray(obj)
            host = cupyx.empty_pinned(src.shape, dtype=src.dtype)
            src.get(stream=stream, out=host, blocking=False)
        # The pinned array stands for what `to_host` returns once the stream is
        # synchronised: skip that step.
        return host, 1, stream

    def _cast_on_device(self, x: cupy.ndarray, plan: Plan) -> cupy.ndarray:
        with x.device:
            return x.astype(plan.dtype)

    def _to_host(self, x: cupy.ndarray, plan: Plan) -> np.ndarray[Any, Any]:
        with x.device:
            stream = self.cupy.cuda.get_current_stream()
            out: np.ndarray[Any, Any] = self.cupy.asnumpy(x, stream=stream)
            # With an explicit stream the copy may be asynchronous; wait for it.
            stream.synchronize()
        return out
