"""The fast path of :func:`interop.convert`: routes made once per source type and target.

Planning builds a :class:`~interop.Plan` with its reasons and steps; a conversion
under the default options (no ``copy=``, no ``device=``, no :func:`interop.options`
block) needs none of it. A route takes the decisions the planner takes, from the
same backend hooks, and gives the same result; what is fixed for a type and a
target (the backends, the source's host view, the target's import functions) is
looked up once, when the route is made:

* to NumPy: the source's host view, else its own planned ``to_numpy``;
* within one framework: ``adopt`` where the array is already on the target device;
* across frameworks, for data a source shows through a host view: the decisions of
  :func:`~interop._convert.routes.host_route`, through the target's
  ``numpy_importer`` where it has one, else through the general hooks;
* across frameworks, for data its source copies into a new NumPy array on the host
  (its plan says so): the target takes that private array.

A route answers ``None`` wherever it is not certain (another device, a layout or
dtype that needs a decision with a reason, ...); :func:`interop.convert` then plans.
Routes for a target name take ``x``; routes for ``like=`` take ``(x, like)``, since
``like`` decides the device.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from interop import _core, _registry
from interop._backend import Backend, is_target
from interop._convert.routes import host_route
from interop._convert.targets import known
from interop._devices import HOST
from interop._memory import check_numeric
from interop._options import DEFAULT
from interop._plan import mask_loss

__all__ = ["LikeRoute", "NameRoute", "by_like", "by_name", "find"]

#: ``route(x)``, for ``convert(x, to)``: the result, or ``None`` where the planner decides.
NameRoute = Callable[[Any], Any]
#: ``route(x, like)``, for ``convert(x, like=like)``: the same.
LikeRoute = Callable[[Any, Any], Any]
#: ``general(x, like, view, keep)``: see :func:`_general`.
General = Callable[[Any, Any, np.ndarray[Any, Any], Callable[[Any], None] | None], Any]

#: ``to`` -> ``type(x)`` -> its route, or ``None`` where a type has none. The
#: registry clears these tables whenever backends come or go.
by_name: dict[Any, dict[type, Callable[..., Any] | None]] = _registry.per_type_table()
#: ``type(like)`` -> ``type(x)`` -> its route, or ``None``.
by_like: dict[Any, dict[type, Callable[..., Any] | None]] = _registry.per_type_table()
# Types made on the fly must not pile up.
_MAX_TYPES = 1024


def find(x: Any, to: Any, like: Any, /) -> Callable[..., Any] | None:
    """The route of ``convert(x, to, like=like)``, made on its first use; ``None``: none.

    A name route where ``like`` is ``None``, a like route where ``to`` is.
    """
    tables: dict[Any, dict[type, Callable[..., Any] | None]]
    key: Any
    target: Backend | None
    since = _registry.generation()  # (a backend registered meanwhile: nothing recorded)
    if like is None:
        if type(to) is not str:
            return None
        tables, key, target = by_name, to, known(to)  # the planner learns a name first
    elif to is None:
        tables, key = by_like, type(like)
        target = _registry.lookup(key)
    else:
        return None
    if target is None or not is_target(target):
        return None  # (the planner's error)
    cls = type(x)
    table = tables.get(key)
    if table is None:
        table = {}
        _registry.record(tables, key, table, since)
    elif cls in table:
        return table[cls]
    source = _registry.lookup(cls)
    route = None if source is None else _make(source, target, cls, like is None)
    if len(table) >= _MAX_TYPES:
        table.clear()
    _registry.record(table, cls, route, since)
    return route


def _make(source: Backend, target: Backend, cls: type, named: bool) -> Callable[..., Any] | None:
    if target.is_numpy:
        return _to_numpy(source, cls, named)
    if issubclass(cls, (list, tuple)):
        return None  # the planner looks inside: arrays in a list are refused, not stacked
    if source is target:
        return _same(target)
    view = _registry.view_of(cls)
    if view is None:
        through = _through_numpy(source, target)
        return through if not named else lambda x: through(x, None)
    # Read to decide and to copy from, in a way that leaves the source as it was;
    # kept (as the host view would keep it) only where the result aliases it.
    reading = source.reading_for(cls)
    if reading is None:
        return None
    read, keep = reading
    general = _general(source, target)
    importer = target.numpy_importer() if named else None
    if importer is None:
        if named:
            return lambda x: _viewed(x, None, read, keep, general)
        return lambda x, like: _viewed(x, like, read, keep, general)
    return _imported(source, target, read, keep, importer, general)


def _viewed(
    x: Any,
    like: Any,
    read: Callable[[Any], Any],
    keep: Callable[[Any], None] | None,
    general: General,
) -> Any:
    a = read(x)
    return None if a is None else general(x, like, a, keep)


def _to_numpy(source: Backend, cls: type, named: bool) -> Callable[..., Any]:
    """``to_numpy`` itself: the source's host view, else its plan."""
    view = _registry.view_of(cls)
    if named and view is not None:
        return view  # (where it answers None, convert plans)
    convert_planned = _core.convert_planned

    def route(x: Any) -> Any:
        out = None if view is None else view(x)
        if out is None:
            return convert_planned(x, source, DEFAULT)
        return out

    return route if named else lambda x, like: route(x)


def _same(target: Backend) -> Callable[..., Any]:
    """An array of the target framework, kept where it already is on the target device."""
    target_device = target.target_device
    owns = target.owns
    device_of = target.device_of
    adopt = target.adopt
    missing_data = target.missing_data

    def route(x: Any, like: Any = None) -> Any:
        device = target_device(None, like)
        if owns(x, device) and missing_data(x) is None and device_of(x) == device:
            return adopt(x, device=device, copy=False)
        return None  # (the planner refuses an array without values)

    return route


def _general(source: Backend, target: Backend) -> General:
    """``general(x, like, view, keep)``: the planner's route 3 for host data, without the plan.

    ``view`` (see :class:`~interop._backend.Reading`) is read to decide and to copy
    from; where the result aliases it, ``keep(x)`` first makes the memory safe to
    alias.
    """
    target_device = target.target_device
    dlpack_device = target.dlpack_device
    target_dtype = target.target_dtype
    from_numpy = target.from_numpy
    from_dlpack = target.from_dlpack
    name = target.name

    def general(
        x: Any, like: Any, a: np.ndarray[Any, Any], keep: Callable[[Any], None] | None
    ) -> Any:
        device = target_device(None, like)
        if dlpack_device(device) != HOST:
            return None
        dtype = a.dtype
        native = dtype if dtype.isnative else dtype.newbyteorder("=")
        check_numeric(native, name)
        result_dtype = target_dtype(native, device)
        kind, _, export = host_route(x, source, target, a, native, result_dtype, None)
        if kind == "copy":
            return from_numpy(a, device=device, copy=True)
        if keep is not None:
            keep(x)  # the result aliases the memory (through the view, or the export)
        if kind == "dlpack":
            return from_dlpack(export, device=device, copy=False)
        return from_numpy(a, device=device, copy=False)

    return general


def _through_numpy(source: Backend, target: Backend) -> LikeRoute:
    """Data its source copies into a new NumPy array (a NumPy scalar, say): route 4b.

    The source's own plan (cached per kind of array where its backend allows) says
    whether the conversion to NumPy copies on the host; the target then takes the
    new, private array, aliasing it where it can. Anything else plans.
    """
    plan_for = source.plan_for
    run = source.run
    target_device = target.target_device
    dlpack_device = target.dlpack_device
    target_dtype = target.target_dtype
    numpy_problem = target.numpy_problem
    from_numpy = target.from_numpy
    name = target.name

    def route(x: Any, like: Any) -> Any:
        plan = plan_for(x, DEFAULT)
        dtype = plan.dtype
        if plan.transfer or plan.zero_copy or dtype is None:
            return None
        device = target_device(None, like)
        if dlpack_device(device) != HOST:
            return None
        native = dtype if dtype.isnative else dtype.newbyteorder("=")
        check_numeric(native, name)
        result_dtype = target_dtype(native, device)
        a = run(x, plan)
        lost = mask_loss(a)  # (as the planner's route: a Dask array's masked chunks)
        if lost is not None:
            raise lost
        # The new array is private: the target aliases it where its layout allows.
        private = a.dtype == result_dtype and numpy_problem(a) is None
        return from_numpy(a, device=device, copy=not private)

    return route


def _imported(
    source: Backend,
    target: Backend,
    read: Callable[[Any], Any],
    keep: Callable[[Any], None] | None,
    importer: Callable[[np.ndarray[Any, Any], bool], Any],
    general: General,
) -> NameRoute:
    """To the target's default device, through its ``numpy_importer`` where it is certain.

    The decisions are :func:`~interop._convert.routes.host_route`'s: a writable result
    copies memory its source treats as immutable; a writable view is aliased; a
    read-only view goes through the source's own export first, which ``general``
    finds. Where the importer is not certain, ``general`` decides.
    """
    mutable = target.mutable
    readonly_source = source.readonly_source
    # An ndarray is its own view, and its flags say whether its memory is read-only.
    itself = source.is_numpy

    def route(x: Any) -> Any:
        a = x if itself else read(x)
        if a is None:
            return None
        if not a.flags.writeable:
            out = importer(a, True) if mutable else None
        elif mutable and not itself and readonly_source(x):
            out = importer(a, True)
        else:
            out = importer(a, False)
            if out is not None and keep is not None:
                keep(x)  # the result aliases the memory
            if out is None and itself:
                # An ndarray has no export of its own: where the target cannot alias
                # it (the importer already knows the device and dtype will do), the
                # planner copies it.
                out = importer(a, True)
        return general(x, None, a, keep) if out is None else out

    return route
