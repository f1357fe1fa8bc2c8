"""Planning a conversion between two backends: the route, its steps, and why it copies.

The planner picks one of four routes, in this order:

1. The target is NumPy: exactly :func:`interop.to_numpy`.
2. The source already belongs to the target framework: keep it, move it to the
   target device, or copy it (``copy=True``).
3. The data sits in host memory and the source hands out a zero-copy NumPy view:
   the target aliases that view, or imports the source's own DLPack export, where it
   can do so safely (see :func:`host_route`); otherwise it makes one copy of the view.
4. Otherwise: a direct DLPack import of data on an accelerator where it lives
   (zero-copy on the same device, one copy for a move or where safety asks for it);
   else the source copies its data into a new NumPy array (to host memory, or out of
   a NumPy scalar, a variable, ...), which the target takes as it is where it can.

On an accelerator, the source's export (a :class:`~interop._devices.DeviceExport`)
orders the target's reads after the work that wrote the data, and its layout is
checked against what the target's import needs
(:func:`~interop._devices.layout_problem`): where they differ, a compact copy is
made on the device first. Pinned (page-locked) and managed memory is host memory:
it is read through the source's NumPy view, never through an export that reports a
CUDA or ROCm device type, which a framework's import would take for its GPU.

Every route is a list of closures kept in ``Plan.prepared``; :func:`interop.convert`
runs exactly them, so a plan and its conversion never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from interop import _core, _options, _registry
from interop._backend import Backend
from interop._convert.targets import Target, resolve
from interop._devices import (
    HOST,
    DeviceExport,
    device_name,
    dlpack_device_of,
    layout_problem,
)
from interop._errors import ConversionError, type_name
from interop._memory import check_numeric
from interop._options import DEFAULT, Options
from interop._plan import Plan, mask_loss

__all__ = ["host_route", "immutable_reason", "plan_convert"]

Step = Callable[[Any], Any]


def plan_convert(
    x: Any, /, to: Any = None, *, like: Any = None, device: Any = None, copy: bool | None = None
) -> Plan:
    """The plan of ``convert(x, to, like=like, device=device, copy=copy)``, without the work.

    The steps to run are kept in ``Plan.prepared``; :func:`interop.convert` runs exactly them.
    """
    target_backend = resolve(to, like)
    opts = _options.for_convert(copy)
    if isinstance(x, (list, tuple)) and not target_backend.is_numpy:
        # (To NumPy, convert is to_numpy, which builds one array from the items.)
        _refuse_arrays_inside(x, target_backend.name)
    source = _registry.get(x)
    # The target device first, outside the translation below: an unknown device
    # (ValueError) or a `like` without values is the caller's error, not x's.
    target_device = target_backend.target_device(device, like)
    if target_backend.min_ndim:
        ndim = _ndim_of(x)
        if ndim is not None and ndim < target_backend.min_ndim:
            raise target_backend.ndim_error(ndim)
    try:
        return _plan(x, source, target_backend, target_device, opts)
    except Exception as exc:
        # An object's own array protocol failing is reported as to_numpy reports it.
        _core.raise_translated(x, source, exc)


def _ndim_of(x: Any) -> int | None:
    """The number of dimensions of ``x`` where it says so without a conversion, else ``None``.

    Python numbers and strings are 0-d; arrays give ``ndim``, or ``shape`` (a TensorFlow
    variable's ``TensorShape`` by its rank); lists and tuples are at least 1-d.
    """
    if isinstance(x, (int, float, complex, str, bytes)):
        return 0
    if isinstance(x, (list, tuple)):
        return 1
    ndim = getattr(x, "ndim", None)
    if type(ndim) is int:
        return ndim
    shape = getattr(x, "shape", None)
    if isinstance(shape, tuple):
        return len(shape)
    rank = getattr(shape, "rank", None)
    return rank if type(rank) is int else None


def _refuse_arrays_inside(x: list[Any] | tuple[Any, ...], target: str) -> None:
    """Refuse a list or tuple holding arrays: one array would come out of several.

    ``x, y = convert((tx, ty), "jax")`` would stack two tensors of equal shapes into
    one new array that still unpacks; what is meant is one result per array.
    """
    stack: list[Any] = [x]
    count = 0
    while stack:
        for item in stack.pop():
            if isinstance(item, (list, tuple)):
                stack.append(item)
                continue
            backend = _registry.lookup(type(item))
            if backend is not None and backend.arrays and not isinstance(item, np.generic):
                count += 1
    if count:
        raise ConversionError(
            f"expected one array to convert to {target}, got a `{type_name(x)}` holding "
            f"{count} array(s), which convert would stack into one new array. hint: "
            f"interop.convert_tree(x, {target!r}) converts each array and keeps the "
            f"`{type_name(x)}`; np.stack or the framework's stack joins them on purpose"
        )


def _plan(
    x: Any, source: Backend, target_backend: Backend, target_device: Any, opts: Options
) -> Plan:
    if target_backend.is_numpy:
        plan = _core.plan(x, source, opts)
        return _with_route(
            plan, target_backend.name, [lambda obj: _core.run(obj, source, plan, opts)]
        )

    target = Target(target_backend, target_device)
    if target_backend.owns(x, target.device):
        return _plan_same(x, target, opts)
    return _plan_across(x, source, target, opts)


def _with_route(plan: Plan, target: str, route: list[Step]) -> Plan:
    return plan.replace(target=target, prepared=tuple(route))


def _make_plan(
    *,
    framework: str,
    device: str,
    target: Target,
    steps: list[str],
    route: list[Step],
    dtype: np.dtype[Any] | None,
    reason: str | None,
    transfer: bool,
) -> Plan:
    return Plan(
        framework=framework,
        device=device,
        zero_copy=reason is None,
        transfer=transfer,
        steps=tuple(steps),
        dtype=dtype,
        readonly=not target.backend.mutable,
        copy_reason=reason,
        target=target.backend.name,
        prepared=tuple(route),
    )


def _plan_same(x: Any, target: Target, opts: Options) -> Plan:
    """Route 2: ``x`` already belongs to the target framework."""
    backend = target.backend
    # No plan of the source reads x here: its refusals of arrays without values
    # (tracers, meta tensors, deleted arrays) are asked for directly.
    missing = backend.missing_data(x)
    if missing is not None:
        raise missing
    source_device = backend.device_of(x)
    source_dl = backend.dlpack_device(source_device)
    moved = source_device != target.device
    reason: str | None = None
    if moved:
        steps = ["to_device"]
        if source_dl == target.dl:  # (shards over several devices, another CPU device)
            reason = (
                f"the data is on other {device_name(source_dl)} devices than the one asked "
                "for; moving it there copies"
            )
        else:
            reason = f"moving the data from {device_name(source_dl)} to {target.name} copies"
    elif opts.copy is True:
        steps = ["copy"]
        reason = "copy=True"
    else:
        steps = ["keep"]
    copy = reason is not None and not moved

    def adopt(obj: Any) -> Any:
        return backend.adopt(obj, device=target.device, copy=copy)

    # The array stays in its framework (a tensor may have no NumPy dtype at all).
    return _make_plan(
        framework=backend.name,
        device=device_name(source_dl),
        target=target,
        steps=steps,
        route=[adopt],
        dtype=backend.numpy_dtype_of(x),
        reason=reason,
        transfer=moved and source_dl != HOST and target.dl == HOST,
    )


def _plan_across(x: Any, source: Backend, target: Target, opts: Options) -> Plan:
    """Routes 3 and 4: ``x`` belongs to another framework than the target."""
    tb = target.backend
    sp = source.plan_for(x, DEFAULT)
    common = {"framework": source.name, "device": sp.device, "target": target}
    if not sp.transfer and sp.zero_copy:
        # A zero-copy host view (read-only for immutable memory): cheap, and both the
        # layout the target needs and the data for a NumPy-side import come from it.
        # It is read as a transient view, which leaves the source as it was; a result
        # that aliases the memory takes the source's own view when it is made.
        view = source.transient_view(x, sp)
        native, result_dtype = _result_dtype(view.dtype, target)
        return _plan_host(x, source, target, opts, view, native, result_dtype, common, sp)
    if sp.dtype is None:
        return _plan_through_numpy(source, target, sp, None, common)
    native, result_dtype = _result_dtype(sp.dtype, target)
    if sp.transfer:
        export = source.dlpack_export(x, native)
        if export is not None and hasattr(type(export), "__dlpack_device__"):
            source_dl = dlpack_device_of(export)
            if tb.dlpack_problem(native, None, source_dl) is None:
                return _plan_device(
                    x, source, target, opts, export, source_dl, native, result_dtype, common
                )
    return _plan_through_numpy(source, target, sp, result_dtype, common)


def _result_dtype(dtype: np.dtype[Any], target: Target) -> tuple[np.dtype[Any], np.dtype[Any]]:
    """The data's dtype in native byte order, and the dtype the target holds it as."""
    native = dtype if dtype.isnative else dtype.newbyteorder("=")
    check_numeric(native, target.backend.name)
    return native, target.backend.target_dtype(native, target.device)


def _plan_host(
    x: Any,
    source: Backend,
    target: Target,
    opts: Options,
    view: np.ndarray[Any, Any],
    dtype: np.dtype[Any],
    result_dtype: np.dtype[Any],
    common: dict[str, Any],
    source_plan: Plan,
) -> Plan:
    """Route 3: the data is in host memory and ``view`` shows it without a copy.

    ``view`` is the source's transient view (:meth:`Backend.transient_view`), read
    to decide and to copy from; an alias is made of the source's own view.
    """
    tb = target.backend
    device = target.device
    first = [] if source.is_numpy else ["numpy_view"]
    if target.dl != HOST:

        def upload(obj: Any) -> Any:
            return tb.from_numpy(view, device=device, copy=True)

        return _make_plan(
            **common,
            steps=[*first, "to_device"],
            route=[upload],
            dtype=result_dtype,
            reason=f"moving the data from host memory to {target.name} copies",
            transfer=False,  # (host to device: no device-to-host copy)
        )

    kind, reason, export = host_route(x, source, tb, view, dtype, result_dtype, opts.copy)
    if kind == "dlpack":

        def import_dlpack(obj: Any) -> Any:
            source.keep_alias(obj)  # (the result aliases the memory)
            return tb.from_dlpack(export, device=device, copy=False)

        return _make_plan(
            **common,
            steps=["dlpack"],
            route=[import_dlpack],
            dtype=result_dtype,
            reason=None,
            transfer=False,
        )
    copy = kind == "copy"
    # A backend whose transient view is its own view aliases it, and so does NumPy,
    # whose transient view is the data alone (a masked array's, say); another
    # (PyTorch's) gives its own view when the result is made.
    own = copy or source.is_numpy or type(source).transient_view is Backend.transient_view

    def from_view(obj: Any) -> Any:
        aliased = view if own else source.run(obj, source_plan)
        return tb.from_numpy(aliased, device=device, copy=copy)

    return _make_plan(
        **common,
        steps=[*first, "copy" if copy else "from_numpy"],
        route=[from_view],
        dtype=result_dtype,
        reason=reason,
        transfer=False,
    )


def host_route(
    x: Any,
    source: Backend,
    tb: Backend,
    view: np.ndarray[Any, Any],
    dtype: np.dtype[Any],
    result_dtype: np.dtype[Any],
    copy: bool | None,
) -> tuple[str, str | None, Any]:
    """How host data reaches a target on the host: ``(kind, copy reason, DLPack export)``.

    ``kind`` is ``"alias"`` (alias ``view`` through :meth:`Backend.from_numpy`),
    ``"dlpack"`` (import ``export``, the source's own DLPack export, without a copy)
    or ``"copy"`` (one copy of ``view``). A writable view is aliased first: it is at
    hand, and NumPy exports it faster than most frameworks export their own arrays.
    A read-only view goes through the source's own export first, since NumPy does
    not export read-only memory as the legacy DLPack capsules that TensorFlow and
    JAX import.
    """
    reason: str | None = None
    if result_dtype != dtype:
        reason = tb.cast_reason(dtype, result_dtype)
    elif tb.mutable and (source.readonly_source(x) or not view.flags.writeable):
        reason = immutable_reason(source, tb)
    if reason is None and copy is True:
        reason = "copy=True"
    if reason is not None:
        return "copy", reason, None
    problem = tb.numpy_problem(view)
    if problem is None and view.flags.writeable:
        return "alias", None, None
    export = None if source.is_numpy else source.dlpack_export(x, dtype)
    # (The backends export host data only as plain CPU memory: pinned memory goes
    # through the view, see the module.)
    if export is not None and tb.dlpack_problem(dtype, view, HOST) is None:
        return "dlpack", None, export
    if problem is None:
        return "alias", None, None
    return "copy", f"{tb.name} cannot alias this memory: {problem}", None


def immutable_reason(source: Backend, tb: Backend) -> str:
    """Why a writable result of ``tb`` cannot alias memory ``source`` treats as immutable."""
    return (
        f"{source.name} treats this memory as immutable, and {tb.name} arrays are "
        "writable: a zero-copy result could change the source"
    )


def _plan_device(
    x: Any,
    source: Backend,
    target: Target,
    opts: Options,
    export: Any,
    source_dl: tuple[int, int],
    dtype: np.dtype[Any],
    result_dtype: np.dtype[Any] | None,
    common: dict[str, Any],
) -> Plan:
    """Route 4a: data on an accelerator, imported by the target where it lives."""
    tb = target.backend
    device = target.device
    moved = source_dl != target.dl
    steps = ["dlpack"]
    reason: str | None = None
    clone = False
    layout = export.layout if isinstance(export, DeviceExport) else None
    problem = None if layout is None else layout_problem(layout, tb.dlpack_layout())
    if problem is not None:
        # The compact copy is new memory: it is the one copy (unless the data moves).
        steps.insert(0, "compact")
        reason = f"{tb.name} imports this layout only after a compact copy: {problem}"
    if result_dtype is not None and result_dtype != dtype:
        reason = tb.cast_reason(dtype, result_dtype)
    if moved:
        steps.append("to_device")
        reason = reason or f"moving the data from {device_name(source_dl)} to {target.name} copies"
    elif reason is None:
        if source.readonly_source(x) and tb.mutable:
            reason = immutable_reason(source, tb)
        elif opts.copy is True:
            reason = "copy=True"
        if reason is not None:
            steps.append("clone")
            clone = True
    compact = problem is not None

    def import_dlpack(obj: Any) -> Any:
        if compact:
            return tb.from_dlpack(export.compact(), device=device, copy=False)
        return tb.from_dlpack(export, device=device, copy=clone)

    return _make_plan(
        **common,
        steps=steps,
        route=[import_dlpack],
        dtype=result_dtype,
        reason=reason,
        transfer=moved and target.dl == HOST,
    )


def _plan_through_numpy(
    source: Backend,
    target: Target,
    sp: Plan,
    result_dtype: np.dtype[Any] | None,
    common: dict[str, Any],
) -> Plan:
    """Route 4b: the source copies its data into a NumPy array, which the target adopts.

    The copy is private, and the target aliases it where its layout allows, unless
    the source keeps and shares it (``sp.readonly``: the host copy JAX and TensorFlow
    keep of device data), which only an immutable target may alias.
    """
    tb = target.backend
    device = target.device
    to_host = target.dl == HOST
    private = not sp.readonly or not tb.mutable

    def to_numpy(obj: Any) -> Any:
        return source.run(obj, sp)

    def adopt(a: np.ndarray[Any, Any]) -> Any:
        lost = mask_loss(a)  # (a Dask array's masked chunks, say)
        if lost is not None:
            raise lost
        held = result_dtype
        if held is None:
            # The dtype is known only now (an extension type converts itself, say): the
            # checks planning makes where it is known come before the target sees the
            # data, which may be Python objects no framework holds.
            held = _result_dtype(a.dtype, target)[1]
        fresh_ok = to_host and private and a.dtype == held and tb.numpy_problem(a) is None
        return tb.from_numpy(a, device=device, copy=not fresh_ok)

    steps = ["to_numpy", "from_numpy" if to_host else "to_device"]
    reason = sp.copy_reason or "the source cannot share its memory"
    return _make_plan(
        **common,
        steps=steps,
        route=[to_numpy, adopt],
        dtype=result_dtype,
        reason=reason,
        transfer=sp.transfer,  # (the device-to-host part; an upload is none)
    )
