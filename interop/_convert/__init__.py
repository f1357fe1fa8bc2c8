"""Conversion between any two frameworks: :func:`convert`.

A conversion is planned before any work, like :func:`interop.to_numpy`, and the
plan is what :func:`interop.explain` returns when it is given ``to=``, ``like=`` or
``device=``. The modules of this package:

* :mod:`~interop._convert.targets`: which backend creates the result, on which device;
* :mod:`~interop._convert.routes`: the planner, which picks the route (NumPy as the
  target, the same framework, host memory, an accelerator) and says why it copies;
* :mod:`~interop._convert.fast`: under the default options, the same decisions made
  once per source type and target, without building a plan.

Safety: a zero-copy result of a framework whose arrays are writable (PyTorch,
array-api-strict) never aliases memory its source treats as immutable (a JAX
array, a TensorFlow tensor, a read-only NumPy array): such conversions copy, and
``copy=False`` refuses them. The reverse is allowed: an immutable result (JAX,
TensorFlow) may alias a mutable source, whose later writes then show through.

DLPack versions are negotiated by the importing framework: PyTorch, NumPy and
array-api-strict ask the producer for ``max_version=(1, 0)`` and fall back to the
legacy protocol on ``TypeError``. TensorFlow imports legacy capsules only, so its
producer is asked for one without ``max_version``; since a legacy capsule cannot
say "read-only", read-only NumPy memory never goes to TensorFlow that way.

On an accelerator the target reads data only after the work that wrote it: a
PyTorch or CuPy export runs on the data's own device and makes the stream the
target names (JAX's, PyTorch's) wait for the producer's current stream, or waits on
the host where the target names none (TensorFlow); TensorFlow's GPU tensors export
capsules that are ready when made. Casts on a device are made only where
:func:`interop._dtypes.exact_on_device` proves them identical to the host's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, overload

from interop import _core, _options, _registry
from interop._convert.fast import by_like, by_name, find
from interop._convert.routes import plan_convert
from interop._errors import ConversionError, retell_policy
from interop._options import DEFAULT

if TYPE_CHECKING:
    import numpy as np

__all__ = ["convert", "plan_convert"]

_current = _options.current
_by_name = by_name
_by_like = by_like


@overload
def convert(
    x: Any,
    /,
    to: Literal["numpy"],
    *,
    like: None = None,
    device: Any = None,
    copy: bool | None = None,
) -> np.ndarray[Any, Any]: ...


@overload
def convert(
    x: Any,
    /,
    to: str | None = None,
    *,
    like: Any = None,
    device: Any = None,
    copy: bool | None = None,
) -> Any: ...


def convert(
    x: Any,
    /,
    to: str | None = None,
    *,
    like: Any = None,
    device: Any = None,
    copy: bool | None = None,
) -> Any:
    """Convert an array of any framework into an array of another framework.

    Exactly one of ``to`` and ``like`` names the target. The data moves by the
    cheapest safe route: a zero-copy import between the two frameworks where both
    ends support it, else through NumPy, and never with two copies where one will
    do. :func:`interop.explain` with the same keywords shows the route.

    The copy contract is the one of :func:`interop.to_numpy`:

    * ``copy=None``: zero-copy where the target can alias the source's memory safely,
      otherwise one copy. A zero-copy result shares memory with the source: writes to
      a mutable source (NumPy, PyTorch) show through in a JAX or TensorFlow result.
    * ``copy=True``: the result owns its memory and shares nothing with ``x``.
    * ``copy=False``: never copies; raises :class:`~interop.CopyRequiredError` before
      any work where a copy is unavoidable.

    A writable result (PyTorch, Array API) never aliases memory the source treats as
    immutable (a JAX array, a TensorFlow tensor, a read-only NumPy array): that
    conversion copies. Nonstandard dtypes (bfloat16, float8, ...) keep their exact
    bits. Gradients are not carried: a PyTorch result never requires grad. TensorFlow
    and JAX alias host memory only when it is 64-byte aligned; otherwise they copy.

    Args:
        x: The array: anything :func:`interop.to_numpy` accepts.
        to: The target framework's name: ``"numpy"``, ``"torch"``, ``"tensorflow"``,
            ``"jax"``, or any registered backend that creates arrays.
        like: An existing array whose framework (and device, unless ``device`` is
            given) the result takes. Array API libraries are reached this way.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"gpu"``, ``"tpu:0"``, or the target
            framework's own device object. Default: ``like``'s device, or the
            framework's default placement.
        copy: The copy policy, see above (default: the active :func:`interop.options`).

    Returns:
        An array of the target framework.

    Raises:
        TypeError: Neither or both of ``to`` and ``like`` are given.
        UnsupportedTypeError: No backend converts ``type(x)``.
        CopyRequiredError: ``copy=False``, but a copy is unavoidable.
        ConversionError: The target framework cannot hold the data's dtype, or the
            source holds no data (a tracer, a meta tensor, ...).
        ValueError: The device is unknown to, or unavailable in, the target framework.

    Example:
        >>> import numpy as np, interop
        >>> a = np.arange(3.0)
        >>> interop.convert(a, "numpy") is a
        True
        >>> interop.convert([1, 2], like=a)
        array([1, 2])
    """
    try:
        if copy is None and device is None:
            # The fast path (interop._convert.fast): most of the cost of a call is here.
            if like is None:
                table = _by_name.get(to) if type(to) is str else None
                route = None if table is None else table.get(type(x))
                if route is not None and _current() is DEFAULT:
                    try:
                        out = route(x)
                    except Exception as exc:
                        _core.raise_translated(x, _registry.get(x), exc)
                    return _planned(x, to, like, device, copy) if out is None else out
            elif to is None:
                table = _by_like.get(type(like))
                route = None if table is None else table.get(type(x))
                if route is not None and _current() is DEFAULT:
                    try:
                        out = route(x, like)
                    except Exception as exc:
                        _core.raise_translated(x, _registry.get(x), exc)
                    return _planned(x, to, like, device, copy) if out is None else out
            if _current() is DEFAULT:
                return _unrouted(x, to, like, device, copy)
        return _planned(x, to, like, device, copy)
    except ConversionError as exc:
        # A sparse or ragged source: its hint names a to_numpy keyword convert lacks.
        retell_policy(exc, "convert")
        raise


def _unrouted(x: Any, to: Any, like: Any, device: Any, copy: bool | None) -> Any:
    """:func:`convert` where no route is known yet: make one if it can, else plan."""
    route = find(x, to, like)
    if route is not None:
        try:
            out = route(x) if like is None else route(x, like)
        except Exception as exc:
            _core.raise_translated(x, _registry.get(x), exc)
        if out is not None:
            return out
    return _planned(x, to, like, device, copy)


def _planned(x: Any, to: Any, like: Any, device: Any, copy: bool | None) -> Any:
    """:func:`convert` by its plan: exactly what :func:`interop.explain` describes."""
    plan = plan_convert(x, to, like=like, device=device, copy=copy)
    plan.check(_options.for_convert(copy))
    obj = x
    try:
        for step in plan.prepared:
            obj = step(obj)
    except Exception as exc:
        _core.raise_translated(x, _registry.get(x), exc)
    return obj
