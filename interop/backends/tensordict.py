"""``tensordict.TensorDict`` (TorchRL and many RL and robotics pipelines), for the tree functions.

A TensorDict is a container, not an array: the tree functions give back a nested
``dict`` of NumPy arrays, as ``TensorDict.numpy()`` does, converting each tensor by
the copy contract (zero-copy for CPU tensors, batched copies from a device). It is
asked before PyTorch's pytree registry, where TensorDict registers itself and
would be rebuilt as a TensorDict of arrays.
"""

from __future__ import annotations

from typing import Any

from interop._backend import Backend, Node

__all__ = ["TensorDictBackend"]


class TensorDictBackend(Backend):
    """``tensordict.TensorDictBase`` and its subclasses, as containers."""

    name = "tensordict"
    module = "tensordict"
    arrays = False

    def load(self) -> None:
        import tensordict

        self._base: type = tensordict.TensorDictBase

    def matches(self, cls: type) -> bool:
        return False  # never an array: see is_node

    def is_node(self, x: Any, /) -> bool:
        return isinstance(x, self._base)

    def node(self, x: Any, /) -> Node:
        keys = list(x.keys())
        children = [x.get(key) for key in keys]

        def rebuild(out: list[Any]) -> Any:
            return dict(zip(keys, out, strict=True))

        def key(index: int) -> str:
            return f"[{keys[index]!r}]"

        return Node(children, rebuild, key)
