"""One catalogue of framework constructors, for the tests, the benchmarks and the doctor.

Each :class:`Framework` builds a CPU array of its framework from a NumPy array (any
dtype, ``ml_dtypes`` ones included, bit for bit) and reads back the framework's
own zero-copy NumPy view of it, so that a caller can check aliasing claims with
``np.shares_memory`` against what the framework itself hands out. A framework is
imported only when :func:`framework` is asked for it.

Example:
    >>> import numpy as np
    >>> from interop import testing
    >>> fw = testing.framework("numpy")
    >>> a = np.arange(3.0)
    >>> x = fw.make(a)
    >>> bool(np.shares_memory(fw.native(x), x)), x is a
    (True, False)
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

from interop import _dtypes

__all__ = ["FRAMEWORKS", "Framework", "available", "framework"]

#: The frameworks of the catalogue, in the order tables list them. ``"arrow"`` (columns
#: of rows, with no 0-d arrays) is also in the catalogue, but not in this list of
#: array frameworks that every contract test runs over.
FRAMEWORKS = ("numpy", "torch", "tensorflow", "jax")

_MODULES = {
    "numpy": "numpy",
    "torch": "torch",
    "tensorflow": "tensorflow",
    "jax": "jax",
    "arrow": "pyarrow",
}


@dataclasses.dataclass(frozen=True)
class Framework:
    """How to build and read arrays of one framework.

    Attributes:
        name: The framework's backend name in ``interop``.
        module: The framework's top-level module.
        make: A CPU array of the framework holding a copy of a NumPy array's values,
            in the same dtype (``ml_dtypes`` dtypes included), except where the
            framework's own policy narrows it: JAX with ``jax_enable_x64`` off holds
            64-bit data in 32 bits, as ``jnp.asarray`` does, and ``make`` raises
            ``ValueError`` where an integer would not fit. A structured dtype (other
            than complex32's pair of float16) is refused: by the framework's own
            error, or by ``ValueError`` where its bits would make another dtype.
        native: The framework's own zero-copy NumPy view of one of its CPU arrays
            (for a dtype NumPy lacks, a view of the same bits as integers).
        immutable: Whether the framework treats its memory as immutable, so that a
            zero-copy view of it is read-only.
        native_stmt: The fastest zero-copy native call, as a statement on ``x``.
    """

    name: str
    module: str
    make: Callable[[np.ndarray[Any, Any]], Any]
    native: Callable[[Any], np.ndarray[Any, Any]]
    immutable: bool
    native_stmt: str


def available(name: str, /) -> bool:
    """Whether the framework ``name`` is installed (without importing it)."""
    return importlib.util.find_spec(_MODULES[name]) is not None


def framework(name: str, /) -> Framework:
    """The :class:`Framework` called ``name``, importing the framework.

    Raises:
        KeyError: ``name`` is not in :data:`FRAMEWORKS`.
        ImportError: The framework is not installed.
    """
    return _FACTORIES[name]()


def _bits(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any] | None:
    """``a``'s bits as unsigned integers of the same width, for a dtype NumPy lacks.

    ``None`` for NumPy's own dtypes; a structured dtype other than complex32's pair of
    float16 has no framework dtype: ``ValueError``.
    """
    if a.dtype.names is not None and a.dtype != _dtypes.complex32():
        raise ValueError(
            f"expected a dtype a framework holds, got the structured dtype {a.dtype}. "
            "hint: make one array per field (a['name'])"
        )
    if a.dtype.type.__module__ != "ml_dtypes" and a.dtype.names is None:
        return None
    return a.view({1: np.uint8, 2: np.uint16, 4: np.uint32}[a.dtype.itemsize])


def _numpy() -> Framework:
    return Framework(
        "numpy",
        "numpy",
        lambda a: np.array(a, copy=True),
        lambda a: a,
        immutable=False,
        native_stmt="x",
    )


def _torch() -> Framework:
    import torch

    def make(a: np.ndarray[Any, Any]) -> Any:
        # In memory PyTorch allocates, as tensors a program computes are (a tensor
        # made by torch.from_numpy shares NumPy's, whose storage cannot be resized).
        bits = _bits(a)
        if bits is None:
            return torch.from_numpy(np.array(a, copy=True)).clone()
        signed = {1: np.int8, 2: np.int16, 4: np.int32}[a.dtype.itemsize]
        # complex32: ml_dtypes' own, or a structured pair of float16.
        name = "complex32" if a.dtype.name in ("complex32", "void32") else a.dtype.name
        return torch.from_numpy(bits.view(signed).copy()).clone().view(getattr(torch, name))

    def native(t: Any) -> np.ndarray[Any, Any]:
        t = t.detach()
        if str(t.dtype).removeprefix("torch.") not in _dtypes.NUMPY_NAMES:  # its bits as integers
            t = t.view({1: torch.uint8, 2: torch.int16, 4: torch.int32}[t.dtype.itemsize])
        return t.numpy()  # type: ignore[no-any-return]

    return Framework("torch", "torch", make, native, immutable=False, native_stmt="x.numpy()")


def _tensorflow() -> Framework:
    import tensorflow as tf

    def make(a: np.ndarray[Any, Any]) -> Any:
        return tf.constant(a)

    return Framework(
        "tensorflow", "tensorflow", make, np.asarray, immutable=True, native_stmt="np.asarray(x)"
    )


def _jax() -> Framework:
    jnp = importlib.import_module("jax.numpy")

    def make(a: np.ndarray[Any, Any]) -> Any:
        # jnp.asarray copies a NumPy array asynchronously, or not at all where it
        # can alias host memory: a write to `a` right after make() could reach
        # the result. It gets a private copy, which nothing else writes.
        out = jnp.asarray(np.array(a, copy=True))
        # With jax_enable_x64 off, JAX narrows 64-bit data to 32 bits, as jnp.asarray
        # does; integers that do not fit would wrap around (2**40 becomes 0).
        if out.dtype != a.dtype and a.dtype.kind in "iu" and a.size:
            narrow = np.iinfo(out.dtype)
            if a.min() < narrow.min or a.max() > narrow.max:
                raise ValueError(
                    f"expected {a.dtype} values that fit {out.dtype}, got values in "
                    f"[{a.min()}, {a.max()}]: JAX has 64-bit types disabled "
                    "(jax_enable_x64=False), so they would wrap around. hint: "
                    f"jax.config.update('jax_enable_x64', True), or values that fit {out.dtype}"
                )
        return out

    return Framework("jax", "jax", make, np.asarray, immutable=True, native_stmt="np.asarray(x)")


def _arrow() -> Framework:
    pa = importlib.import_module("pyarrow")
    # The exact dtypes Arrow lacks are built with the encoding interop documents
    # (interop.backends.arrow.encoding); everything else with pyarrow's own constructors.
    encoding = importlib.import_module("interop.backends.arrow.encoding")
    reading = importlib.import_module("interop.backends.arrow.reading")
    writing = importlib.import_module("interop.backends.arrow.writing")

    def make(a: np.ndarray[Any, Any]) -> Any:
        if a.ndim == 0:
            raise ValueError("an Arrow array has at least one dimension")
        # pyarrow wraps a NumPy array's memory where it can, and the Arrow array
        # would change with `a`: it gets a private copy, in C order.
        a = np.array(a, copy=True, order="C")
        if encoding.is_encoded(a.dtype):
            return writing.to_arrow(a)
        if a.ndim == 1:
            return pa.array(a)
        return pa.FixedShapeTensorArray.from_numpy_ndarray(a)

    def native(x: Any) -> np.ndarray[Any, Any]:
        if isinstance(x.type, reading.DtypeType):  # its bits as unsigned integers
            storage = x.storage
            if x.type.shape is None:
                return storage.to_numpy()  # type: ignore[no-any-return]
            return storage.flatten().to_numpy()  # type: ignore[no-any-return]
        if isinstance(x, pa.FixedShapeTensorArray):
            return x.to_numpy_ndarray()  # type: ignore[no-any-return]
        return x.to_numpy()  # type: ignore[no-any-return]

    return Framework("arrow", "pyarrow", make, native, immutable=True, native_stmt="x.to_numpy()")


_FACTORIES: dict[str, Callable[[], Framework]] = {
    "numpy": _numpy,
    "torch": _torch,
    "tensorflow": _tensorflow,
    "jax": _jax,
    "arrow": _arrow,
}
