"""The one path from an array to NumPy, taken by every entry point for every array.

``to_numpy``, the tree walk (``to_numpy_tree``, ``iter_numpy``,
``numpy_function``), ``convert`` to NumPy and the command line all convert an array
through :func:`convert` here: the backend's host view under the default options,
else the backend's plan for that kind of array (cached), checked against the copy
and transfer options, then run. A decision about an array is therefore made in
one place, its backend, whichever entry point asked.
"""

from __future__ import annotations

from typing import Any, NoReturn

import numpy as np

from interop import _registry
from interop._backend import Backend, backend_error
from interop._errors import InteropError, is_cast_error, type_name
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


def plan(x: Any, backend: Backend, options: Options, /) -> Plan:
    """The plan :func:`convert` carries out for ``x`` where it has no host view."""
    try:
        return backend.plan_for(x, options)
    except (InteropError, MemoryError):
        raise
    except Exception as exc:
        raise_translated(x, backend, exc)


def raise_translated(x: Any, backend: Backend, exc: Exception, /) -> NoReturn:
    """Raise the backend's own error for ``exc`` (its translation), or ``exc`` itself."""
    if not isinstance(exc, (InteropError, MemoryError)) and not is_cast_error(exc):
        translated = backend.translate_error(x, exc)
        if translated is not None:
            if not isinstance(translated, BaseException):
                # A third-party hook's mistake: the original failure, named, stays.
                raise backend_error(
                    backend,
                    "'s translate_error() to return an exception or None",
                    f"`{type_name(translated)}` for {exc!r}",
                ) from exc
            raise translated from exc
    raise exc
