"""``tensordict.TensorDict`` (TorchRL and many RL and robotics pipelines), for the tree functions.

A TensorDict is a container, not an array: the tree functions give back a nested
``dict`` of NumPy arrays, as ``TensorDict.numpy()`` does, converting each tensor by
the copy contract (zero-copy for CPU tensors, batched copies from a device). It is
asked before PyTorch's pytree registry, where TensorDict registers itself and
would be rebuilt as a TensorDict of arrays. Given as one array (to ``to_numpy``,
``explain``, ``convert``), it is refused with a hint to the tree functions.
"""

from __future__ import annotations

from typing import Any

from interop._backend import Backend, Node

__all__ = ["TensorDictBackend"]

_HINT = (
    "a TensorDict is a container of tensors, not one array. hint: "
    "interop.to_numpy_tree(td) gives a dict of NumPy arrays, one per key (a nested "
    "TensorDict as a nested dict), interop.convert_tree(td, to) one of another "
    "framework's arrays; or convert one tensor, as in interop.to_numpy(td[key])"
)


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

    def declines(self, cls: type, /) -> str | None:
        # to_numpy, explain and convert refuse a TensorDict with what does convert it.
        return _HINT if issubclass(cls, self._base) else None

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
