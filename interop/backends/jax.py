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

    def fast_path(self, cls: type, /) -> Any:
        if issubclass(cls, self._tracer):
            return None
        asarray = np.asarray
        if cls.__module__.startswith("jaxlib") and self._host_only():
            # Every device JAX has is a CPU, so every array is in host memory, where
            # the planned path is np.asarray itself (a deleted array makes it raise,
            # and the planned path then explains).
            return asarray
        host_shardings = self._host_shardings
        # The sharding object last found in host_shardings: JAX reuses one object
        # for a device, and an identity test is much cheaper than its Python __hash__.
        seen: list[Any] = [None]

        def fast(x: Any) -> Any:
            sharding = x.sharding
            if sharding is not seen[0]:
                if sharding not in host_shardings:
                    raise LookupError(sharding)
                seen[0] = sharding
            # The planned path's own numpy_view step, on one device in host memory.
            return asarray(x)

        return fast

    def _host_only(self) -> bool:
        """Whether every backend JAX has initialised (all of them, at once) is a CPU."""
        try:
            from jax.extend.backend import backends

            return all(b.platform == "cpu" for b in backends().values())
        except Exception:  # an older or unusual JAX: assume accelerators may exist
            return False

    def to_numpy(self, x: Any, options: Options, /) -> np.ndarray[Any, Any]:
        if options is DEFAULT:
            try:
                # A deleted array is left to the planned path, which explains it.
                if x.sharding in self._host_shardings and not x.is_deleted():
                    return np.asarray(x)
            except AttributeError:  # a tracer, which the planned path explains
                pass
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
