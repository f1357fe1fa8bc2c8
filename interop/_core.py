"""The one path from an array to NumPy, taken by every entry point for every array.

``to_numpy``, the tree walk (``to_numpy_tree``, ``iter_numpy``,
``numpy_function``), ``convert`` to NumPy and the command line all convert an array
through :func:`convert` here: the backend's host view under the default options,
else the backend's plan for that kind of array (cached), checked against the copy
and transfer options, then run. A decision about an array is therefore made in
one place, its backend, whichever entry point asked.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interop import _registry
from interop._backend import Backend, planned, raise_translated
from interop._errors import InteropError
from interop._options import DEFAULT, Options
from interop._plan import Plan

__all__ = ["convert", "convert_planned", "plan", "raise_translated", "run"]


def convert(x: Any, backend: Backend, options: Options, /) -> np.ndarray[Any, Any]:
    """``x``, an array of ``backend``, converted to NumPy under ``options``."""
    if options is DEFAULT:
        out = _registry.host_view(x)
        if out is not None:
            return out
    return convert_planned(x, backend, options)


def convert_planned(x: Any, backend: Backend, options: Options, /) -> np.ndarray[Any, Any]:
    """:func:`convert` where the caller has already found no host view."""
    try:
        return backend.to_numpy(x, options)
    except (InteropError, MemoryError):
        raise
    except Exception as exc:
        raise_translated(x, backend, exc)


def run(x: Any, backend: Backend, plan: Plan, options: Options, /) -> np.ndarray[Any, Any]:
    """Carry out ``plan`` (made for ``x`` under ``options``) as :func:`convert` does."""
    try:
        plan.check(options)
        out = backend.run(x, plan)
        backend.check_result(x, out, options)
        return out
    except (InteropError, MemoryError):
        raise
    except Exception as exc:
        raise_translated(x, backend, exc)


#: The plan :func:`convert` carries out for ``x`` where it has no host view (its
#: failure told by the backend).
plan = planned
