"""What the scenarios need to know about each framework, imported only when used."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks._harness import Unavailable

__all__ = ["FRAMEWORKS", "Framework", "framework", "keras_convert", "namespace", "shares"]

#: The frameworks the per-framework scenarios run for, in table order.
FRAMEWORKS = ("torch", "tensorflow", "jax")


@dataclasses.dataclass(frozen=True)
class Framework:
    """How the scenarios build arrays of one framework and read them natively.

    Attributes:
        name: The framework's backend name in ``interop``.
        mod: The framework's module (``torch``, ``tensorflow``, ``jax.numpy``).
        make: A CPU tensor holding a copy of a NumPy array.
        bf16: A CPU bfloat16 tensor of ``n`` elements.
        native: The framework's own zero-copy NumPy view of a CPU tensor, used with
            ``np.shares_memory`` to check aliasing claims.
        native_stmt: The fastest zero-copy native call, as a statement on ``x``.
        by_hand: A hand-written "to NumPy" statement on ``x`` that a user writes
            before converting to another framework (it may copy).
        from_numpy: A statement building this framework's tensor from NumPy ``a``.
    """

    name: str
    mod: Any
    make: Callable[[np.ndarray[Any, Any]], Any]
    bf16: Callable[[int], Any]
    native: Callable[[Any], np.ndarray[Any, Any]]
    native_stmt: str
    by_hand: str
    from_numpy: str


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise Unavailable(f"{module} is not installed")


def _torch() -> Framework:
    _require("torch")
    import torch

    def native(t: Any) -> np.ndarray[Any, Any]:
        if t.dtype == torch.bfloat16:
            return t.detach().view(torch.int16).numpy()  # type: ignore[no-any-return]
        return t.detach().numpy()  # type: ignore[no-any-return]

    return Framework(
        name="torch",
        mod=torch,
        make=lambda a: torch.from_numpy(a.copy()),
        bf16=lambda n: torch.full((n,), 1.5, dtype=torch.bfloat16),
        native=native,
        native_stmt="x.numpy()",
        by_hand="x.numpy()",
        from_numpy="torch.from_numpy(a)",
    )


def _tensorflow() -> Framework:
    _require("tensorflow")
    import tensorflow as tf

    return Framework(
        name="tensorflow",
        mod=tf,
        make=lambda a: tf.constant(a),
        bf16=lambda n: tf.fill([n], tf.constant(1.5, dtype=tf.bfloat16)),
        native=lambda t: np.asarray(t),
        native_stmt="np.asarray(x)",
        by_hand="x.numpy()",
        from_numpy="tf.convert_to_tensor(a)",
    )


def _jax() -> Framework:
    _require("jax")
    import jax.numpy as jnp

    return Framework(
        name="jax",
        mod=jnp,
        make=lambda a: jnp.asarray(a),
        bf16=lambda n: jnp.full((n,), 1.5, dtype=jnp.bfloat16),
        native=lambda x: np.asarray(x),
        native_stmt="np.asarray(x)",
        by_hand="np.asarray(x)",
        from_numpy="jnp.asarray(a)",
    )


_MAKERS = {"torch": _torch, "tensorflow": _tensorflow, "jax": _jax}


def framework(name: str) -> Framework:
    """The :class:`Framework` called ``name``; :class:`Unavailable` if not installed."""
    return _MAKERS[name]()


def namespace(**extra: Any) -> dict[str, Any]:
    """The globals of the timed statements: NumPy, ``interop`` and the frameworks imported."""
    import sys

    import interop

    ns: dict[str, Any] = {"np": np, "interop": interop, "to_numpy": interop.to_numpy}
    if "torch" in sys.modules:
        ns["torch"] = sys.modules["torch"]
    if "tensorflow" in sys.modules:
        ns["tf"] = sys.modules["tensorflow"]
    if "jax" in sys.modules:
        ns["jax"] = sys.modules["jax"]
        ns["jnp"] = importlib.import_module("jax.numpy")
    ns.update(extra)
    return ns


def keras_convert(name: str) -> Callable[[Any], Any] | None:
    """``keras.ops.convert_to_numpy`` as Keras runs it on the backend ``name``.

    Keras picks one backend per process (TensorFlow by default); its per-backend
    implementations are importable side by side, which is what a user of Keras on
    that framework calls. ``None`` where Keras is not installed.
    """
    if importlib.util.find_spec("keras") is None:
        return None
    module = importlib.import_module(f"keras.src.backend.{name}.core")
    return module.convert_to_numpy  # type: ignore[no-any-return]


def shares(result: Any, view: np.ndarray[Any, Any]) -> bool:
    """Whether ``result`` is a NumPy array aliasing the memory of ``view``."""
    return isinstance(result, np.ndarray) and bool(np.shares_memory(result, view))
