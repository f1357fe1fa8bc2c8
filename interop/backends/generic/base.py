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
    "finish_unknown_dtype",
    "fits_numpy",
    "object_error",
]

Lookup = Callable[[type], Backend | None]


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
