"""JAX arrays.

A JAX array on the CPU is converted with a read-only zero-copy view of its buffer
(JAX arrays are immutable). Arrays on an accelerator are copied to host memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from interop import _dtypes, _plan
from interop._errors import ConversionError, type_name
from interop._options import DEFAULT, Options
from interop._plan import Plan
from interop._registry import Backend

if TYPE_CHECKING:
    import jax

__all__ = ["JaxBackend"]


def _device_str(d: Any) -> str:
    return "cpu" if d.platform == "cpu" else f"{d.platform}:{d.id}"


class JaxBackend(Backend):
    """``jax.Array`` (including tracers, which hold no data)."""

    name = "jax"
    module = "jax"

    def load(self) -> None:
        import jax

        self.jax = jax
        from jax import core

        self._tracer = core.Tracer
        # Shardings already seen to place the data in host memory on one device.
        self._host_shardings: set[Any] = set()
        self.steps.update(
            numpy_view=self._numpy_view,
            to_host=self._to_host,
            cast_on_device=self._cast_on_device,
        )

    def matches(self, cls: type) -> bool:
        return issubclass(cls, self.jax.Array) or issubclass(cls, self._tracer)

    def to_numpy(self, x: Any, options: Options, /) -> np.ndarray[Any, Any]:
        if options is DEFAULT:
            try:
                if x.sharding in self._host_shardings:
                    return np.asarray(x)
            except (AttributeError, RuntimeError):  # a tracer or a deleted array: the
                pass  # planned path explains either
        return super().to_numpy(x, options)

    def plan(self, x: Any, options: Options, /) -> Plan:
        if isinstance(x, self._tracer):
            raise ConversionError(
                f"expected a concrete array, got a tracer (`{type_name(x)}`) with shape "
                f"{x.shape} and dtype {x.dtype}: inside jit, vmap, grad or scan the values "
                "do not exist yet. hint: use jax.pure_callback to run NumPy code on the "
                "values, or jax.debug.print to look at them"
            )
        if x.is_deleted():
            raise ConversionError(
                "expected a live array, got a jax.Array whose buffer was deleted or donated. "
                "hint: convert before donating the array, or keep a copy"
            )
        sharding = x.sharding
        devices = list(sharding.device_set)
        on_host = all(d.platform == "cpu" for d in devices)
        device = _device_str(devices[0]) if len(devices) == 1 else f"{len(devices)} devices"
        if on_host and len(devices) == 1:
            device = "cpu"
        steps: list[str] = []
        reason: str | None = None
        source = np.dtype(x.dtype)
        target = options.dtype
        if options.upcast and target is None:
            target = _dtypes.upcast_target(source)
        if not on_host:
            if target is not None and target.itemsize < source.itemsize:
                steps.append("cast_on_device")
                source = target
            steps.append("to_host")
            reason = f"the data is on {device} and must be copied to host memory"
        else:
            steps.append("numpy_view")
            if len(devices) == 1:
                self._host_shardings.add(sharding)
            elif not sharding.is_fully_replicated:
                reason = "the array is sharded over several devices; its pieces are assembled"
        return _plan.finish(
            "jax",
            device,
            steps,
            source_dtype=source,
            options=options,
            copy_reason=reason,
            transfer=not on_host,
            readonly=True,
            upcast_to=_dtypes.upcast_target(source),
        )

    def _numpy_view(self, x: jax.Array, plan: Plan) -> np.ndarray[Any, Any]:
        return np.asarray(x)

    def _to_host(self, x: jax.Array, plan: Plan) -> np.ndarray[Any, Any]:
        # device_get blocks until the copy is complete; the result owns its memory.
        return np.array(self.jax.device_get(x))

    def _cast_on_device(self, x: jax.Array, plan: Plan) -> jax.Array:
        assert plan.dtype is not None
        return x.astype(plan.dtype)
