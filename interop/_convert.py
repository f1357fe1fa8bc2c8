"""Conversion between any two frameworks: :func:`convert`.

A conversion is planned before any work, like :func:`interop.to_numpy`, and the
plan is what :func:`interop.explain` returns when it is given ``to=``, ``like=`` or
``device=``. The planner picks one of four routes, in this order:

1. The target is NumPy: exactly :func:`interop.to_numpy`.
2. The source already belongs to the target framework: keep it, move it to the
   target device, or copy it (``copy=True``).
3. The data sits in host memory and the source hands out a zero-copy NumPy view:
   the target imports it without a copy (through DLPack from the source object, or
   from the NumPy view) when the target can alias that memory safely; otherwise the
   target makes one copy of the view.
4. The data sits on an accelerator: a direct DLPack import where it lives (zero-copy
   on the same device, one copy for a move or where safety asks for it), or, when
   the target cannot import from that device, one copy to host memory through
   NumPy.

Safety: a zero-copy result of a framework whose arrays are writable (PyTorch,
array-api-strict) never aliases memory its source treats as immutable (a JAX
array, a TensorFlow tensor, a read-only NumPy array): such conversions copy, and
``copy=False`` refuses them. The reverse is allowed: an immutable result (JAX,
TensorFlow) may alias a mutable source, whose later writes then show through.

Under the default options (no ``copy=``, no ``device=``, no :func:`interop.options`
block), :func:`convert` takes the planner's decisions without building the plan:
the fast path at the end of this module, made once per pair of backends, runs the
same route, and leaves every other case, and every error, to the planner.

DLPack versions are negotiated by the importing framework: PyTorch, NumPy and
array-api-strict ask the producer for ``max_version=(1, 0)`` and fall back to the
legacy protocol on ``TypeError``. TensorFlow imports legacy capsules only, so its
producer is asked for one without ``max_version``; since a legacy capsule cannot
say "read-only", read-only NumPy memory never goes to TensorFlow that way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from interop import _core, _options, _registry
from interop._backend import Backend
from interop._devices import HOST, device_name
from interop._errors import type_name
from interop._memory import check_numeric, owned_copy
from interop._options import DEFAULT
from interop._plan import Plan

__all__ = ["convert", "plan_convert"]

Step = Callable[[Any], Any]


# -- planning -------------------------------------------------------------------------


class _Target:
    """The resolved target: a backend, its own device object, and that device in DLPack terms."""

    __slots__ = ("backend", "device", "dl", "name")

    def __init__(self, backend: Backend, device: Any) -> None:
        self.backend = backend
        self.device = device
        self.dl = backend.dlpack_device(device)
        self.name = device_name(self.dl)


# Target name -> (its backend, its place in the registry's framework list): filled
# by the first conversion to that name, which loads the backend (importing the
# framework the name asks for); valid while that place still holds that backend.
_targets: dict[str, tuple[Backend, int]] = {}
_frameworks = _registry._frameworks


def _target_backend(to: Any, like: Any) -> Backend:
    if (to is None) == (like is None):
        given = "both" if to is not None else "neither"
        raise TypeError(
            f"expected exactly one of `to` (a framework name) and `like` (an array), got {given}. "
            "hint: convert(x, 'torch') or convert(x, like=other_array)"
        )
    if like is not None:
        return _registry.get(like)
    if not isinstance(to, str):
        raise TypeError(
            f"expected `to` to be a framework name such as 'torch', got `{type_name(to)}`. "
            "hint: to match an existing array, pass it as like="
        )
    entry = _targets.get(to)
    if entry is not None and entry[1] < len(_frameworks) and _frameworks[entry[1]] is entry[0]:
        return entry[0]
    try:
        backend = _registry.by_name(to)
    except ImportError as exc:
        raise ImportError(
            f"expected an installed framework, got to={to!r}, which cannot be imported: {exc}. "
            f"hint: install {to}"
        ) from exc
    if backend in _frameworks:
        _targets[to] = (backend, _frameworks.index(backend))
    return backend


def plan_convert(
    x: Any, /, to: Any = None, *, like: Any = None, device: Any = None, copy: bool | None = None
) -> Plan:
    """The plan of ``convert(x, to, like=like, device=device, copy=copy)``, without the work.

    The steps to run are kept in ``Plan.prepared``; :func:`convert` runs exactly them.
    """
    target_backend = _target_backend(to, like)
    opts = _options.resolve(copy, None, None, None, None, None)
    source = _registry.get(x)
    try:
        return _plan_convert(x, source, target_backend, device, like, opts)
    except Exception as exc:
        # An object's own array protocol failing is reported as to_numpy reports it.
        _core.raise_translated(x, source, exc)


def _plan_convert(
    x: Any, source: Backend, target_backend: Backend, device: Any, like: Any, opts: Any
) -> Plan:

    if target_backend.name == "numpy":
        target_backend.target_device(device, like)  # validates the device
        plan = _core.plan(x, source, opts)
        return _with_route(plan, "numpy", [lambda obj: _core.run(obj, source, plan, opts)])

    target = _Target(target_backend, target_backend.target_device(device, like))
    if target_backend.owns(x, target.device):
        return _plan_same(x, target, opts)
    return _plan_across(x, source, target, opts)


def _with_route(plan: Plan, target: str, route: list[Step]) -> Plan:
    return dataclasses.replace(plan, target=target, prepared=tuple(route))


def _make_plan(
    *,
    framework: str,
    device: str,
    target: _Target,
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


def _plan_same(x: Any, target: _Target, opts: _options.Options) -> Plan:
    """Route 2: ``x`` already belongs to the target framework."""
    backend = target.backend
    source_device = backend.device_of(x)
    source_dl = backend.dlpack_device(source_device)
    moved = source_device != target.device
    reason: str | None = None
    if moved:
        steps = ["to_device"]
        reason = f"moving the data from {device_name(source_dl)} to {target.name} copies"
    elif opts.copy is True:
        steps = ["copy"]
        reason = "copy=True"
    else:
        steps = ["keep"]
    copy = reason is not None and not moved

    def adopt(obj: Any) -> Any:
        return backend.adopt(obj, device=target.device, copy=copy)

    return _make_plan(
        framework=backend.name,
        device=device_name(source_dl),
        target=target,
        steps=steps,
        route=[adopt],
        dtype=_dtype_of(backend, x),
        reason=reason,
        transfer=moved,
    )


def _dtype_of(backend: Backend, x: Any) -> np.dtype[Any] | None:
    try:
        return backend.plan(x, DEFAULT).dtype
    except Exception:  # only the dtype is wanted here; the array is kept as it is
        return None


def _plan_across(x: Any, source: Backend, target: _Target, opts: _options.Options) -> Plan:
    """Routes 3 and 4: ``x`` belongs to another framework than the target."""
    tb = target.backend
    sp = source.plan(x, DEFAULT)
    on_host = not sp.transfer
    view: np.ndarray[Any, Any] | None = None
    if on_host and sp.zero_copy:
        # A zero-copy host view (read-only for immutable memory): cheap, and both the
        # layout the target needs and the data for a NumPy-side import come from it.
        view = source.run(x, sp)
        dtype: np.dtype[Any] | None = view.dtype
    else:
        dtype = sp.dtype
    if dtype is not None:
        native = dtype if dtype.isnative else dtype.newbyteorder("=")
        check_numeric(native, tb.name)
        result_dtype: np.dtype[Any] | None = tb.target_dtype(native, target.device)
    else:
        native, result_dtype = None, None

    common = {"framework": source.name, "device": sp.device, "target": target}

    if view is not None:
        return _plan_host(x, source, target, opts, view, native, result_dtype, common)

    source_dl = _dlpack_device_of(x) if sp.transfer else HOST
    export = source.dlpack_export(x, native) if native is not None else None
    if (
        sp.transfer
        and source_dl is not None
        and export is not None
        and native is not None
        and tb.dlpack_problem(native, None, source_dl) is None
    ):
        return _plan_device(
            x, source, target, opts, export, source_dl, native, result_dtype, common
        )
    return _plan_through_numpy(x, source, target, sp, result_dtype, common)


def _plan_host(
    x: Any,
    source: Backend,
    target: _Target,
    opts: _options.Options,
    view: np.ndarray[Any, Any],
    dtype: np.dtype[Any] | None,
    result_dtype: np.dtype[Any] | None,
    common: dict[str, Any],
) -> Plan:
    """Route 3: the data is in host memory and ``view`` shows it without a copy."""
    tb = target.backend
    device = target.device
    if target.dl != HOST:

        def upload(obj: Any) -> Any:
            return tb.from_numpy(view, device=device, copy=True)

        return _make_plan(
            **common,
            steps=["numpy_view", "to_device"],
            route=[upload],
            dtype=result_dtype,
            reason=f"moving the data from host memory to {target.name} copies",
            transfer=True,
        )

    kind, reason, export = _host_route(x, source, tb, view, dtype, result_dtype, opts.copy)
    if kind == "dlpack":

        def import_dlpack(obj: Any) -> Any:
            return tb.from_dlpack(export, device=device, copy=False)

        return _make_plan(
            **common,
            steps=["dlpack"],
            route=[import_dlpack],
            dtype=result_dtype,
            reason=None,
            transfer=False,
        )
    if kind == "alias":

        def alias(obj: Any) -> Any:
            return tb.from_numpy(view, device=device, copy=False)

        steps = ["from_numpy"] if source.name == "numpy" else ["numpy_view", "from_numpy"]
        return _make_plan(
            **common,
            steps=steps,
            route=[alias],
            dtype=result_dtype,
            reason=None,
            transfer=False,
        )

    def copy_view(obj: Any) -> Any:
        return tb.from_numpy(view, device=device, copy=True)

    steps = ["copy"] if source.name == "numpy" else ["numpy_view", "copy"]
    return _make_plan(
        **common,
        steps=steps,
        route=[copy_view],
        dtype=result_dtype,
        reason=reason,
        transfer=False,
    )


def _host_route(
    x: Any,
    source: Backend,
    tb: Backend,
    view: np.ndarray[Any, Any],
    dtype: np.dtype[Any] | None,
    result_dtype: np.dtype[Any] | None,
    copy: bool | None,
) -> tuple[str, str | None, Any]:
    """How host data reaches a target on the host: ``(kind, copy reason, DLPack export)``.

    ``kind`` is ``"dlpack"`` (import ``export`` without a copy), ``"alias"`` (alias
    ``view`` through :meth:`Backend.from_numpy`) or ``"copy"`` (one copy of ``view``).
    Both the planner and the fast path of :func:`convert` decide here.
    """
    reason: str | None = None
    if result_dtype is not None and result_dtype != dtype:
        reason = _cast_reason(tb, dtype, result_dtype)
    elif tb.mutable and (source.readonly_source(x) or not view.flags.writeable):
        reason = (
            f"{source.name} treats this memory as immutable, and {tb.name} arrays are "
            "writable: a zero-copy result could change the source"
        )
    if reason is None and copy is True:
        reason = "copy=True"
    if reason is not None:
        return "copy", reason, None
    assert dtype is not None
    export = None if source.name == "numpy" else source.dlpack_export(x, dtype)
    if export is not None and tb.dlpack_problem(dtype, view, HOST) is None:
        return "dlpack", None, export
    problem = tb.numpy_problem(view)
    if problem is None:
        return "alias", None, None
    return "copy", f"{tb.name} cannot alias this memory: {problem}", None


def _cast_reason(tb: Backend, dtype: Any, result_dtype: np.dtype[Any]) -> str:
    if tb.name == "jax":
        return (
            f"JAX has 64-bit types disabled (jax_enable_x64=False), so {dtype} becomes "
            f"{result_dtype}; casting copies"
        )
    return f"{tb.name} holds {dtype} as {result_dtype}; casting copies"


def _dlpack_device_of(x: Any) -> tuple[int, int] | None:
    try:
        kind, index = x.__dlpack_device__()
        return int(kind), int(index)
    except Exception:
        return None


def _plan_device(
    x: Any,
    source: Backend,
    target: _Target,
    opts: _options.Options,
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
    if result_dtype is not None and result_dtype != dtype:
        reason = _cast_reason(tb, dtype, result_dtype)
    if moved:
        steps.append("to_device")
        reason = reason or f"moving the data from {device_name(source_dl)} to {target.name} copies"
    elif reason is None:
        if source.readonly_source(x) and tb.mutable:
            reason = (
                f"{source.name} treats this memory as immutable, and {tb.name} arrays are "
                "writable: a zero-copy result could change the source"
            )
        elif opts.copy is True:
            reason = "copy=True"
        if reason is not None:
            steps.append("clone")
            clone = True

    def import_dlpack(obj: Any) -> Any:
        return tb.from_dlpack(export, device=device, copy=clone)

    return _make_plan(
        **common,
        steps=steps,
        route=[import_dlpack],
        dtype=result_dtype,
        reason=reason,
        transfer=moved,
    )


def _plan_through_numpy(
    x: Any,
    source: Backend,
    target: _Target,
    sp: Plan,
    result_dtype: np.dtype[Any] | None,
    common: dict[str, Any],
) -> Plan:
    """Route 4b: the source copies its data into a fresh NumPy array, which the target adopts."""
    tb = target.backend
    device = target.device
    to_host = target.dl == HOST

    def to_numpy(obj: Any) -> Any:
        return source.run(obj, sp)

    def adopt(a: np.ndarray[Any, Any]) -> Any:
        # The fresh array is private: the target aliases it where its layout allows.
        fresh_ok = to_host and tb.numpy_problem(a) is None
        if result_dtype is not None and a.dtype != result_dtype:
            fresh_ok = False
        return tb.from_numpy(a, device=device, copy=not fresh_ok)

    steps = ["to_numpy", "from_numpy" if to_host else "to_device"]
    reason = sp.copy_reason or "the source cannot share its memory"
    return _make_plan(
        **common,
        steps=steps,
        route=[to_numpy, adopt],
        dtype=result_dtype,
        reason=reason,
        transfer=sp.transfer or not to_host,
    )


# -- the public function --------------------------------------------------------------


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
    cheapest safe route: a zero-copy DLPack import between the two frameworks where
    both ends support it, else through NumPy, and never with two copies where one
    will do. :func:`interop.explain` with the same keywords shows the route.

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
    if copy is None and device is None and _current() is DEFAULT:
        # The fast path (see below), inlined here: it is most of the cost of a call.
        try:
            source = _cache.get(type(x))
            if like is None:
                entry = _targets.get(to) if type(to) is str else None
                target = None
                if entry is not None and _frameworks[entry[1]] is entry[0]:
                    target = entry[0]
            else:
                target = _cache.get(type(like)) if to is None else None
            if source is not None and target is not None:
                if target.name == "numpy":  # the source backend's own to_numpy
                    numpy_source = source
                    raise _ToNumpy
                route = _routes.get((source, target))
                if route is None:
                    route = _make_route(source, target)
                out = route(x, like)
                if out is not _MISS:
                    return out
        except _ToNumpy:
            # Outside the handler below: a failure here is final, and the planner
            # would only ask the object's protocols a second time.
            return _core.convert(x, numpy_source, DEFAULT)
        except Exception:  # the planner raises its own error, or converts
            pass
    return _planned(x, to, like, device, copy)


class _ToNumpy(Exception):
    """Raised inside :func:`convert`'s fast path to leave it for a NumPy target."""


def _planned(x: Any, to: Any, like: Any, device: Any, copy: bool | None) -> Any:
    """:func:`convert` by its plan: exactly what :func:`interop.explain` describes."""
    plan = plan_convert(x, to, like=like, device=device, copy=copy)
    plan.check(_options.resolve(copy, None, None, None, None, None))
    obj = x
    try:
        for step in plan.prepared:
            obj = step(obj)
    except Exception as exc:
        _core.raise_translated(x, _registry.get(x), exc)
    return obj


# -- the fast path ------------------------------------------------------------------
# Planning builds a Plan with its reasons and steps; a conversion under the default
# options, to the default device or to like='s, needs none of it. The fast path
# takes the decisions the planner would take, from the same backend methods, and
# runs the same route, without building the plan. Its routes are made once per
# (source backend, target backend):
#
# * to NumPy: the source backend's own to_numpy, which the planner's route runs
#   (in convert itself);
# * within one framework: adopt() on the same device, as in _plan_same;
# * across frameworks, on the host, from a source whose zero-copy host view its
#   backend hands out (Backend.host_view): the decision of _host_route, and its route;
# * to PyTorch, the commonest target, that decision worked out in advance for the
#   commonest sources (see _to_torch).
#
# Anything else (another device, copy=, options, a source without a certain view,
# an error) goes to the planner, which also gives the error messages.

_MISS: Any = object()
_current = _options.current
_cache = _registry._cache
_ndarray = np.ndarray

Route = Callable[[Any, Any], Any]
# (source backend, target backend) -> the route of the fast path; (x, like) -> the
# result, or _MISS.
_routes: dict[tuple[Backend, Backend], Route] = {}


def _make_route(source: Backend, target: Backend) -> Route:
    route: Route
    if target.name == "torch" and source is not target:
        route = _to_torch(target, source, _across(source, target))
    else:
        route = _across(source, target)
    if len(_routes) > 1024:  # backends registered and removed again and again
        _routes.clear()
    _routes[source, target] = route
    return route


def _across(source: Backend, target: Backend) -> Route:
    """The route of :func:`_plan_same` and :func:`_plan_host`, where they need no plan."""
    target_device = target.target_device
    owns = target.owns
    device_of = target.device_of
    adopt = target.adopt
    dlpack_device = target.dlpack_device
    host_view = _registry.host_view
    target_dtype = target.target_dtype
    from_numpy = target.from_numpy
    name = target.name

    def route(x: Any, like: Any) -> Any:
        device = target_device(None, like)
        if owns(x, device):
            if device_of(x) == device:
                return adopt(x, device=device, copy=False)
            return _MISS
        if dlpack_device(device) != HOST:
            return _MISS
        view = host_view(x)
        if view is None:
            return _MISS
        dtype = view.dtype
        native = dtype if dtype.isnative else dtype.newbyteorder("=")
        check_numeric(native, name)
        result_dtype = target_dtype(native, device)
        kind, _, export = _host_route(x, source, target, view, native, result_dtype, None)
        if kind == "dlpack":
            return target.from_dlpack(export, device=device, copy=False)
        return from_numpy(view, device=device, copy=kind == "copy")

    return route


def _to_torch(torch: Any, source: Backend, otherwise: Route) -> Route:
    """To PyTorch's CPU, from a source other than PyTorch: the commonest conversions.

    For host data of a dtype ``torch.from_numpy`` takes (native byte order, then),
    :func:`_host_route` decides as follows, and so does this route, without asking:

    * A view of memory the source treats as immutable (a JAX array, a TensorFlow
      tensor, a read-only ndarray) has a reason to copy: ``from_numpy(view,
      copy=True)``, a tensor over :func:`owned_copy` of the view.
    * A writable ndarray (exactly) is the planner's view itself. It has no reason to
      copy and no DLPack export (the source is NumPy), and ``numpy_problem``
      objects only to negative strides, for which ``torch.from_numpy`` raises (and
      the planner copies): the route is ``from_numpy(view, copy=False)``, the tensor
      ``torch.from_numpy`` makes.

    Anything else takes ``otherwise``, the general route.
    """
    from_numpy = torch.torch.from_numpy
    default_device = torch.default_device
    plain = frozenset(torch._numpy_dtypes.values())
    # The backend hands out one device object for the default CPU: comparing it by
    # identity first saves reading device.type.
    cpu = default_device()
    if cpu.type != "cpu":
        cpu = None
    host_view = _registry.host_view
    readonly_source = source.readonly_source

    def route(x: Any, like: Any) -> Any:
        if like is None:
            device = default_device()
            on_cpu = device is cpu or device.type == "cpu"
        else:  # device_of(like).type == "cpu", without making the device
            on_cpu = like.is_cpu
        if on_cpu:
            view = x if type(x) is _ndarray else host_view(x)
            if view is not None and view.dtype in plain:
                if view is x:  # an ndarray
                    if not x.flags.writeable:
                        return from_numpy(owned_copy(x))
                    try:
                        return from_numpy(x)
                    except ValueError:  # negative strides
                        return _MISS
                if readonly_source(x) or not view.flags.writeable:
                    return from_numpy(owned_copy(view))
        return otherwise(x, like)

    return route
