"""The fast path of :func:`interop.convert`: routes made once per source type and target.

Planning builds a :class:`~interop.Plan` with its reasons and steps; a conversion
under the default options (no ``copy=``, no ``device=``, no :func:`interop.options`
block) needs none of it. A route takes the decisions the planner takes, from the
same backend hooks, and gives the same result; what is fixed for a type and a
target (the backends, their host view and their import functions) is looked up
once, when the route is made:

* to NumPy: the source's host view, else its own planned ``to_numpy``;
* within one framework: ``adopt`` where the array is already on the target device;
* across frameworks, for data a source shows through a host view: the decision of
  :func:`~interop._convert.routes.host_route`, through the target's
  ``numpy_importer`` where it has one, else through the general hooks.

A route answers ``None`` wherever it is not certain (another device, a layout or
dtype that needs a decision with a reason, ...); :func:`interop.convert` then plans.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from interop import _core, _registry
from interop._backend import Backend
from interop._convert.routes import host_route
from interop._convert.targets import known
from interop._devices import HOST
from interop._memory import check_numeric
from interop._options import DEFAULT

__all__ = ["Route", "find", "routes"]

#: ``route(x, like)``: the result of ``convert`` under the default options, or
#: ``None`` where the planner must decide.
Route = Callable[[Any, Any], Any]

#: ``to`` (a name) or ``type(like)`` -> ``type(x)`` -> its route, or ``None`` where a
#: type has none. The registry clears it whenever backends come or go.
routes: dict[Any, dict[type, Route | None]] = _registry.per_type_table()
# Types made on the fly must not pile up.
_MAX_TYPES = 1024


def find(x: Any, to: Any, like: Any, /) -> Route | None:
    """The route of ``convert(x, to, like=like)``, made on its first use; ``None``: none."""
    target: Backend | None
    if like is None:
        if type(to) is not str:
            return None
        key: Any = to
        target = known(to)  # a name is learned by the planner, which checks it
    elif to is None:
        key = type(like)
        target = _registry.lookup(key)
    else:
        return None
    if target is None:
        return None
    cls = type(x)
    table = routes.get(key)
    if table is None:
        table = routes[key] = {}
    elif cls in table:
        return table[cls]
    source = _registry.lookup(cls)
    route = None if source is None else _make(source, target, cls)
    if len(table) >= _MAX_TYPES:
        table.clear()
    table[cls] = route
    return route


def _make(source: Backend, target: Backend, cls: type) -> Route | None:
    if target.is_numpy:
        return _to_numpy(source, cls)
    if source is target:
        return _same(target)
    view = _registry.view_of(cls)
    if view is None:
        return None  # data without a certain host view: on a device, or a protocol to ask
    return _across(source, target, view)


def _to_numpy(source: Backend, cls: type) -> Route:
    """``to_numpy`` itself: the source's host view, else its plan."""
    view = _registry.view_of(cls)
    convert_planned = _core.convert_planned

    def route(x: Any, like: Any) -> Any:
        out = None if view is None else view(x)
        if out is None:
            return convert_planned(x, source, DEFAULT)
        return out

    return route


def _same(target: Backend) -> Route:
    """An array of the target framework, kept where it already is on the target device."""
    target_device = target.target_device
    owns = target.owns
    device_of = target.device_of
    adopt = target.adopt

    def route(x: Any, like: Any) -> Any:
        device = target_device(None, like)
        if owns(x, device) and device_of(x) == device:
            return adopt(x, device=device, copy=False)
        return None

    return route


def _across(source: Backend, target: Backend, view: Callable[[Any], Any]) -> Route:
    """Host data of another framework, shown by ``view``: the planner's route 3."""
    target_device = target.target_device
    dlpack_device = target.dlpack_device
    target_dtype = target.target_dtype
    from_numpy = target.from_numpy
    from_dlpack = target.from_dlpack
    name = target.name
    mutable = target.mutable
    readonly_source = source.readonly_source
    importer = target.numpy_importer()

    def general(x: Any, like: Any, a: np.ndarray[Any, Any]) -> Any:
        device = target_device(None, like)
        if dlpack_device(device) != HOST:
            return None
        dtype = a.dtype
        native = dtype if dtype.isnative else dtype.newbyteorder("=")
        check_numeric(native, name)
        result_dtype = target_dtype(native, device)
        kind, _, export = host_route(x, source, target, a, native, result_dtype, None)
        if kind == "dlpack":
            return from_dlpack(export, device=device, copy=False)
        return from_numpy(a, device=device, copy=kind == "copy")

    if importer is None:

        def route(x: Any, like: Any) -> Any:
            a = view(x)
            return None if a is None else general(x, like, a)

        return route

    def fast(x: Any, like: Any) -> Any:
        a = view(x)
        if a is None:
            return None
        if like is None:
            # host_route's decision: a writable result copies memory its source treats
            # as immutable (an ndarray that is its own view says so in its flags).
            copy = mutable and (not a.flags.writeable or (a is not x and readonly_source(x)))
            out = importer(a, copy)
            if out is not None:
                return out
        return general(x, like, a)

    return fast
