"""Containers registered with PyTorch's pytree registry, for the tree functions.

``torch.utils._pytree.register_pytree_node`` is how Hugging Face ``ModelOutput``,
``torch.export`` and many training libraries make their containers known; the tree
functions take such a node apart and rebuild it with the registry's own functions,
so the same type comes back. The containers the tree walk knows itself (dicts and
their subclasses, lists, tuples, namedtuples) are matched before this hook is asked.
"""

from __future__ import annotations

import sys
from collections.abc import Hashable
from typing import Any

from interop._backend import Backend, Node, mapping_key

__all__ = ["PytreeNodes"]


class PytreeNodes(Backend):
    """The :meth:`~interop.Backend.is_node` and :meth:`~interop.Backend.node` hooks for torch."""

    def _pytree(self) -> Any:
        # Imported by torch itself; looked up, never imported here.
        return sys.modules.get("torch.utils._pytree")

    def is_node(self, x: Any, /) -> bool:
        pytree = self._pytree()
        return pytree is not None and type(x) in pytree.SUPPORTED_NODES

    def nodes_version(self) -> Hashable | None:
        pytree = self._pytree()
        return None if pytree is None else len(pytree.SUPPORTED_NODES)

    def node(self, x: Any, /) -> Node:
        pytree = self._pytree()
        entry = pytree.SUPPORTED_NODES[type(x)]
        children, context = entry.flatten_fn(x)
        unflatten = entry.unflatten_fn
        with_keys = getattr(entry, "flatten_with_keys_fn", None)

        def rebuild(out: list[Any]) -> Any:
            return unflatten(out, context)

        def key(index: int) -> str:
            if with_keys is None:
                return f"[{index}]"
            keyed, _ = with_keys(x)
            return str(pytree.keystr([keyed[index][0]]))

        children = list(children)
        return Node(children, rebuild, mapping_key(x, children) or key)
