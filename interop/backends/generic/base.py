"""What the generic protocol backends share: class lookups, refusing Python objects, plan tails."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from interop._backend import Backend
from interop._errors import ConversionError, type_name
from interop._options import Options
from interop._plan import Plan

__all__ = [
    "GenericBackend",
    "Lookup",
    "class_attr",
    "finish_unknown_dtype",
    "fits_numpy",
    "object_error",
]

Lookup = Callable[[type], Backend | None]

# The descriptors ``type`` itself uses for a class's MRO and namespace: reading them
# through these runs no code of the class or of its metaclass.
_mro_of = type.__dict__["__mro__"].__get__
_namespace_of = type.__dict__["__dict__"].__get__


def class_attr(cls: type, name: str, /) -> Any:
    """The attribute ``name`` that objects of ``cls`` find on their class, or ``None``.

    Looked up in the namespace of each class of the MRO, as Python looks up a
    special method, and without running any code of ``cls``: the generic protocols
    inspect classes they know nothing about, whose metaclass ``__getattr__`` or
    ``__getattribute__`` may raise anything (``hasattr`` would run them). An
    attribute set to ``None`` counts as absent, as Python's own protocols read it
    (``__hash__ = None``).

    Example:
        >>> import numpy as np
        >>> class_attr(np.ndarray, "__array__") is not None, class_attr(int, "__array__")
        (True, None)
    """
    for klass in _mro_of(cls):
        namespace = _namespace_of(klass)
        if name in namespace:
            return namespace[name]
    return None


class GenericBackend(Backend):
    """A generic protocol: its result is refused where NumPy could only keep Python objects."""

    def check_result(self, x: Any, out: np.ndarray[Any, Any], options: Options, /) -> None:
        if out.dtype.hasobject and options.dtype is None:
            raise object_error(x, out)


def finish_unknown_dtype(backend: Backend, a: np.ndarray[Any, Any], plan: Plan) -> Any:
    """Run the shared tail of a plan whose source dtype was only known after the view."""
    for step in plan.steps[1:]:
        a = backend.steps[step](a, plan)
    return a


def object_error(x: Any, out: np.ndarray[Any, Any]) -> ConversionError:
    """The error for an object a generic protocol could only turn into Python objects."""
    if isinstance(x, (list, tuple)):
        odd = next((v for v in out.flat if not fits_numpy(v)), out.flat[0])
        what = f"`{type_name(x)}` holding `{type_name(odd)}` values"
    else:
        what = f"`{type_name(x)}`"
    return ConversionError(
        f"expected numbers, got {what}, which NumPy can only keep as Python objects. "
        "hint: replace None and other non-numbers first (for example with float('nan')), "
        "convert big or exact numbers with float(...), or pass dtype=object to keep the objects"
    )


def fits_numpy(v: Any) -> bool:
    """Whether NumPy holds ``v`` as a number of its own (not as a Python object)."""
    if type(v) is int:
        return -(2**63) <= v < 2**64
    return isinstance(v, (bool, float, complex, np.generic))
