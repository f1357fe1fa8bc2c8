"""What the scenarios need beyond :mod:`interop.testing`: native statements to time.

:mod:`interop.testing` builds each framework's arrays and reads its own zero-copy
NumPy view; this module adds the statements the benchmarks time against
``interop`` (the native calls a user writes instead) and the namespace they run
in. A framework is imported only when a scenario that needs it is built.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks._harness import Unavailable
from interop import testing

__all__ = [
    "FRAMEWORKS",
    "NATIVE_CALLS",
    "ROUTES",
    "TENSORS",
    "framework",
    "keras_convert",
    "namespace",
    "shares",
]

#: Every framework of the catalogue, NumPy included (the ends of ``convert``).
FRAMEWORKS = testing.FRAMEWORKS

#: The tensor frameworks that the per-framework scenarios run for, in table order.
TENSORS = tuple(name for name in FRAMEWORKS if name != "numpy")

#: The native "to NumPy" calls on a CPU tensor ``x``, fastest-looking first; each
#: is checked with ``np.shares_memory`` when its scenario is built, and only the
#: zero-copy ones serve as references.
NATIVE_CALLS: dict[str, tuple[str, ...]] = {
    "torch": (
        "x.numpy()",
        "x.numpy(force=True)",
        "x.detach().cpu().numpy()",
        "np.asarray(x)",
        "np.from_dlpack(x)",
    ),
    "tensorflow": ("np.asarray(x)", "x.numpy()", "np.from_dlpack(x)"),
    "jax": ("np.asarray(x)", "jax.device_get(x)", "np.from_dlpack(x)"),
}

# The ways a user moves an array ``x`` from one framework to another without
# ``interop``: the frameworks' own imports, DLPack, and hand-written hops through
# NumPy. A route that copies where another aliases is listed as well, so that the
# fastest safe one wins in each round; a route that hands out a writable alias of
# memory its framework treats as immutable (``torch.from_dlpack`` of a JAX array)
# is shown but never used as a reference, as is one that fails in this build.
_TF_DLPACK = "tf.experimental.dlpack.from_dlpack(x.__dlpack__())"
ROUTES: dict[tuple[str, str], tuple[str, ...]] = {
    ("numpy", "torch"): ("torch.from_numpy(x)", "torch.as_tensor(x)", "torch.from_dlpack(x)"),
    ("numpy", "tensorflow"): ("tf.constant(x)", "tf.convert_to_tensor(x)", _TF_DLPACK),
    ("numpy", "jax"): ("jnp.asarray(x)", "jax.device_put(x)", "jnp.from_dlpack(x)"),
    ("torch", "numpy"): ("x.numpy()", "np.asarray(x)", "np.from_dlpack(x)"),
    ("torch", "tensorflow"): (
        _TF_DLPACK,
        "tf.convert_to_tensor(x.numpy())",
        "tf.constant(x.numpy())",
    ),
    ("torch", "jax"): ("jnp.from_dlpack(x)", "jnp.asarray(x.numpy())"),
    ("tensorflow", "numpy"): ("np.asarray(x)", "x.numpy()"),
    ("tensorflow", "torch"): (
        "torch.from_numpy(x.numpy())",
        "torch.tensor(np.asarray(x))",
        "torch.from_dlpack(x).clone()",
        "torch.from_dlpack(x)",
    ),
    ("tensorflow", "jax"): ("jnp.from_dlpack(x)", "jnp.asarray(x)", "jnp.asarray(np.asarray(x))"),
    ("jax", "numpy"): ("np.asarray(x)", "np.from_dlpack(x)"),
    ("jax", "torch"): (
        "torch.from_dlpack(x).clone()",
        "torch.tensor(np.asarray(x))",
        "torch.from_numpy(np.array(x))",
        "torch.from_dlpack(x)",
    ),
    ("jax", "tensorflow"): (
        _TF_DLPACK,
        "tf.convert_to_tensor(np.asarray(x))",
        "tf.constant(np.asarray(x))",
    ),
}


def framework(name: str) -> testing.Framework:
    """The catalogue's :class:`~interop.testing.Framework` ``name``.

    Raises:
        Unavailable: The framework is not installed.
    """
    if not testing.available(name):
        raise Unavailable(f"{name} is not installed")
    return testing.framework(name)


def namespace(**extra: Any) -> dict[str, Any]:
    """The globals of the timed statements: NumPy, ``interop`` and the frameworks imported."""
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
