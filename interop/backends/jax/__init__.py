"""JAX arrays, and the JAX objects that look like arrays but hold no values.

A JAX array on one CPU device is converted with a read-only zero-copy view of its
buffer (JAX arrays are immutable). An array on an accelerator is copied to host
memory once, into the host copy JAX keeps with the array, and read through a
read-only view of it (``copy=True`` for a writable copy). The special cases, each
visible in :func:`interop.explain`:

* Tracers (inside ``jit``, ``vmap``, ``grad``, ``lax.scan``, ...) have no values yet:
  :class:`~interop.ConversionError`, suggesting ``jax.pure_callback`` or
  ``jax.debug.print``.
* Deleted or donated arrays have no buffer left: :class:`~interop.ConversionError`.
* Typed PRNG key arrays (``jax.random.key``) have an opaque dtype NumPy cannot
  hold: :class:`~interop.ConversionError` naming ``jax.random.key_data``.
* Packed sub-byte dtypes (int4, int2, float4, ...) are unpacked into a copy.
* Arrays sharded over several devices or processes: see :mod:`.sharding`.
* ``jax.experimental.sparse`` arrays (``BCOO``, ``BCSR``) follow the ``sparse=``
  policy (:mod:`.sparse`).

The module layout: :mod:`.source` (dense arrays), :mod:`.sharding`, :mod:`.sparse`,
:mod:`.target` (JAX as the target of :func:`interop.convert`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from interop._backend import Node, mapping_key
from interop._copies import Copy
from interop._errors import ConversionError, type_name
from interop._options import Options
from interop._plan import Plan
from interop.backends.jax import sparse
from interop.backends.jax.sharding import placement
from interop.backends.jax.source import ArraySource, deleted_error, tracer_error
from interop.backends.jax.target import JaxTarget

__all__ = ["JaxBackend", "placement"]


def _is_concrete(cls: type) -> bool:
    """Whether ``cls`` is jaxlib's concrete array type, with the attribute the host view reads.

    (Typed PRNG key arrays and tracers have types of their own.)
    """
    return cls.__module__.startswith("jaxlib") and hasattr(cls, "_sharding")


class JaxBackend(JaxTarget):
    """``jax.Array`` (including tracers, which hold no data) and ``jax.experimental.sparse``
    arrays."""

    name = "jax"
    module = "jax"

    def load(self) -> None:
        import jax
        from jax import core

        self.jax = jax
        self._tracer = core.Tracer
        self._arrays = ArraySource(jax)
        self.held_dtypes = {}
        # Shardings -> whether they place data outside host memory.
        self._device_shardings: dict[Any, bool] = {}
        # Types -> whether they are jaxlib's concrete array type, which plan_key keys.
        self._concrete: dict[type, bool] = {}
        self.steps.update(self._arrays.steps())
        self.steps.update(sparse.STEPS)

    def matches(self, cls: type) -> bool:
        if issubclass(cls, self.jax.Array) or issubclass(cls, self._tracer):
            return True
        # A sparse array can only exist once its module was imported; never import it.
        module = sys.modules.get("jax.experimental.sparse")
        return module is not None and issubclass(cls, module.JAXSparse)

    def host_view_for(self, cls: type, /) -> Callable[[Any], np.ndarray[Any, Any] | None] | None:
        return self._arrays.host_view(cls) if _is_concrete(cls) else None

    def plan_key(self, x: Any, /) -> Hashable | None:
        # jaxlib's concrete array type: its plan reads the dtype and the sharding (the
        # devices, their memory, how the array is spread), and refuses a deleted
        # array, which is never keyed.
        cls = type(x)
        concrete = self._concrete.get(cls)
        if concrete is None:
            if len(self._concrete) >= 256:  # (types made on the fly)
                self._concrete.clear()
            concrete = self._concrete[cls] = _is_concrete(cls)
        if not concrete or x.is_deleted():
            return None
        return (cls, x.aval.dtype, x._sharding)

    def plan(self, x: Any, options: Options, /) -> Plan:
        if isinstance(x, self._tracer):
            raise tracer_error(x)
        if not isinstance(x, self.jax.Array):
            return sparse.plan_sparse(x, options, self._tracer)
        return self._arrays.plan(x, options)

    def translate_error(self, x: Any, exc: Exception, /) -> Exception | None:
        # An array deleted (or donated) by another thread after its plan was checked:
        # the documented error, not jaxlib's RuntimeError.
        if isinstance(x, self.jax.Array) and not isinstance(x, self._tracer) and x.is_deleted():
            return deleted_error(x)
        return None

    def missing_data(self, x: Any, /) -> Exception | None:
        if isinstance(x, self._tracer):
            return tracer_error(x)
        if isinstance(x, self.jax.Array) and x.is_deleted():
            return deleted_error(x)
        return None

    # -- containers -----------------------------------------------------------------

    def is_node(self, x: Any, /) -> bool:
        registry = self._tree_registry()
        try:
            return registry.flatten_one_level(x) is not None
        except Exception:  # a registered flatten function of the user's: anything
            # The failure is reported, with its path, when the node is walked.
            return True

    def node(self, x: Any, /) -> Node:
        tree_util = self.jax.tree_util
        flat = self._tree_registry().flatten_one_level(x)
        if flat is None:
            raise ConversionError(
                f"expected a JAX pytree node, got `{type_name(x)}`, which JAX no longer flattens"
            )
        children = list(flat[0])

        def rebuild(out: list[Any]) -> Any:
            treedef = tree_util.tree_structure(x, is_leaf=lambda c: c is not x)
            return tree_util.tree_unflatten(treedef, out)

        def key(index: int) -> str:
            keyed, _ = tree_util.flatten_one_level_with_keys(x)
            return str(tree_util.keystr((list(keyed)[index][0],)))

        return Node(children, rebuild, mapping_key(x, children) or key)

    def nodes_version(self) -> Hashable | None:
        # JAX keeps its registrations (register_pytree_node, register_dataclass, ...)
        # in a dict beside the C++ registry, which has no size to ask.
        registrations = getattr(sys.modules.get("jax._src.tree_util"), "_registry", None)
        return len(registrations) if isinstance(registrations, dict) else None

    def _tree_registry(self) -> Any:
        registry = getattr(self.jax.tree_util, "default_registry", None)
        if registry is None:  # pragma: no cover - JAX before default_registry was public
            registry = importlib.import_module("jax._src.tree_util").default_registry
        return registry

    # -- accelerators ---------------------------------------------------------------

    def accelerator_check(self) -> Callable[[Any], bool] | None:
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

    def start_copy(self, obj: Any, pinned_left: int, /) -> Copy | None:
        # The copy lands in the host copy the JAX array keeps (no pinned memory of
        # ours), and the `to_host` step still runs: reading it waits only
        # for this array's copy.
        obj.copy_to_host_async()
        return Copy(obj, 0, None, obj)
