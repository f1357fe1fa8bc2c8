"""The backend registry and the dispatch from an object to the backend that converts it.

Why it looks like this: frameworks are optional, heavy to import (seconds for
TensorFlow) and sometimes broken on import, so a backend is consulted only when its
framework's top-level module is already in ``sys.modules``. An object of a
framework cannot exist before that framework is imported, so this check loses
nothing and costs nothing for frameworks the user never touched.

Dispatch order is fixed: framework backends first (they know the exact semantics of
their own tensors), then the generic protocols, most specific first (Array API,
DLPack, ``__array__``/buffer, then Python scalars and sequences). The first match
is cached per ``type(x)``, so the steady-state cost of dispatch is one dict lookup.
"""

from __future__ import annotations

import importlib
import re
import sys
import threading
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

# The package of the built-in backends (it imports no backend module itself).
# Importing it sets the attribute `backends` of the `interop` package; doing so
# here, before `interop` binds its public function of that name from this module,
# keeps that binding the last word.
import interop.backends  # noqa: F401
from interop._backend import Backend, answer_of, backend_error, class_attr, describe, is_builtin
from interop._errors import ConversionError, UnsupportedTypeError, type_name
from interop._import_hooks import when_imported

if TYPE_CHECKING:
    from types import FrameType

__all__ = [
    "Backend",
    "SKIPPED",
    "BackendInfo",
    "backends",
    "by_name",
    "consult",
    "get",
    "host_view",
    "active",
    "lookup",
    "per_type_table",
    "register_backend",
    "unregister_backend",
    "unsupported",
    "reader_of",
    "stacker_of",
    "view_of",
]

_MISSING: Any = object()


class BackendInfo:
    """One entry of :func:`interop.backends`: a backend and whether it is loaded."""

    __slots__ = ("backend", "generic", "loaded", "module", "name")

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.name = backend.name
        self.module = backend.module
        self.generic = backend.module is None
        self.loaded = backend.loaded

    def __repr__(self) -> str:
        state = "loaded" if self.loaded else "not loaded"
        return f"BackendInfo(name={self.name!r}, module={self.module!r}, {state})"


_lock = threading.RLock()
# The built-in backends, by "module:Class": a backend module is imported when the
# registry first dispatches (it imports no framework itself). Framework backends
# first, then the generic protocols; see the module docstring for the order.
_BUILTIN_FRAMEWORKS = (
    "interop.backends.numpy:NumpyBackend",
    "interop.backends.torch:TorchBackend",
    "interop.backends.tensorflow:TensorFlowBackend",
    "interop.backends.jax:JaxBackend",
    "interop.backends.cupy:CupyBackend",
    "interop.backends.dask:DaskBackend",
    "interop.backends.arrow:ArrowBackend",
    # Containers only (no arrays); the tree functions ask it before torch's pytree
    # registry, where TensorDict registers itself (see _tree.containers.sync).
    "interop.backends.tensordict:TensorDictBackend",
)
_BUILTIN_GENERICS = (
    "interop.backends.generic.array_api:ArrayApiBackend",
    "interop.backends.generic.dlpack:DLPackBackend",
    "interop.backends.generic.array_protocol:ArrayProtocolBackend",
    "interop.backends.generic.python:PythonBackend",
)
# Functions of built-in backends that run as soon as their framework is imported,
# before any dispatch: Arrow registers its extension type, so that data read from
# files or other processes before the first conversion keeps its exact dtypes.
_ON_IMPORT = (("pyarrow", "interop.backends.arrow:on_import"),)
for _module, _spec in _ON_IMPORT:
    when_imported(_module, _spec)
_frameworks: list[Backend] = []
_generics: list[Backend] = []
# type(x) -> the backend that converts it, or None for a type no backend takes.
_cache: dict[type, Backend | None] = {}
# type(x) -> its backend's host view function (Backend.host_view_for), or None.
_views: dict[type, Callable[[Any], Any] | None] = {}
# type(x) -> its backend's reading of its host view (Backend.reading_for), or None.
_readers: dict[type, Callable[[Any], Any] | None] = {}
# type(x) -> its backend's stacking function (Backend.stack_for), or None.
_stackers: dict[type, Callable[[Any], Any] | None] = {}
# type(x) -> why a framework backend declined it (Backend.declines), for the error.
_declined: dict[type, str] = {}
# Types made on the fly (a namedtuple class per call, ...) must not pile up: past
# this many entries the per-type tables start afresh.
_MAX_TYPES = 2048
# Tables other modules keep per type (convert's routes; see per_type_table).
_dependents: list[dict[Any, Any]] = []
_entry_points_loaded = False
# Third-party backends the registry dropped because their load(), matches() or
# declines() raised: name -> what failed, for by_name's error.
_skipped: dict[str, str] = {}
# What active() found: the active backends, the modules of those that have one, and
# the modules of the others, not imported then (None: not looked at yet, or a backend
# was registered or removed since).
_active: tuple[list[Backend], tuple[str, ...], tuple[str, ...] | None] = ([], (), None)


# How many times the per-type tables were cleared: a decision made from the registry
# is recorded only if no clear came between the question and the record (see record).
_generation = 0


def _clear_tables() -> None:
    global _active, _generation
    _generation += 1
    _active = ([], (), None)
    _cache.clear()
    _views.clear()
    _stackers.clear()
    _readers.clear()
    _declined.clear()
    for table in _dependents:
        table.clear()


def generation() -> int:
    """The current generation of the per-type tables, to pass to :func:`record` later."""
    return _generation


def record(table: dict[Any, Any], key: Any, value: Any, since: int, /) -> None:
    """``table[key] = value``, unless the tables were cleared since generation ``since``.

    A decision made from the registry by one thread while another registers or
    removes a backend may be the old one; recorded after the clear, it would outlive
    it. (It is still the answer of that one call, which raced the registration.)
    """
    with _lock:
        if _generation == since:
            table[key] = value


def per_type_table() -> dict[Any, Any]:
    """A new dict for decisions made per type, cleared whenever the registry's own are.

    A decision that depends on which backend takes a type (or answers to a name)
    must not outlive a backend registered or removed; the registry clears this
    table with its own, and when they grow past their bound.
    """
    table: dict[Any, Any] = {}
    with _lock:
        _dependents.append(table)
    return table


def _make(spec: str) -> Backend:
    module, _, cls = spec.partition(":")
    try:
        found = importlib.import_module(module)
    except ImportError as exc:  # a module of this package: only at interpreter shutdown
        raise ConversionError(
            f"expected the built-in backend {spec} to load, got {type(exc).__name__}: {exc}. "
            "hint: a conversion during interpreter shutdown (an atexit handler or __del__) "
            "cannot load the library's backends; convert earlier"
        ) from exc
    made = getattr(found, cls, None)
    if made is None:
        # The module is being imported by this very thread: a conversion started from
        # a gc callback or a signal handler while the first conversion loads the
        # backends.
        raise ConversionError(
            f"expected the built-in backend {spec} to load, got its module half imported: "
            "a conversion started while the library's first conversion loads its backends "
            "(from a gc callback or a signal handler). hint: convert once before "
            "installing such a callback"
        )
    backend: Backend = made()
    return backend


def _ensure_builtins() -> None:
    if not _frameworks:
        frameworks = [_make(s) for s in _BUILTIN_FRAMEWORKS]
        generics = [_make(s) for s in _BUILTIN_GENERICS]
        # A conversion that re-entered from a gc callback while the modules above
        # were imported may have filled the lists meanwhile: never twice.
        if not _frameworks:
            _frameworks.extend(frameworks)
            _generics.extend(generics)


def _load_entry_points() -> None:
    global _entry_points_loaded
    _entry_points_loaded = True
    # Imported here, on the first dispatch: importlib.metadata costs milliseconds
    # that `import interop` does not need to pay.
    from importlib.metadata import entry_points

    for ep in entry_points(group="interop.backends"):
        # A broken or clashing third-party plugin must not break every conversion:
        # it is reported and skipped, whatever it raised. So is one that fails later,
        # when first consulted (see _skip).
        try:
            backend = ep.load()
            register_backend(backend() if isinstance(backend, type) else backend)
        except Exception as exc:
            _report(f"could not load backend entry point {ep.name!r}", exc)


def _report(what: str, exc: Exception) -> None:
    """Warn that a third-party plugin is broken, and is therefore skipped."""
    # Attributed to the first caller outside this package (the conversion that met
    # the plugin), however deep in the library the plugin was first consulted.
    level = 1
    frame: FrameType | None = sys._getframe()
    while frame is not None and frame.f_globals.get("__name__", "").startswith("interop."):
        frame = frame.f_back
        level += 1
    warnings.warn(f"interop: {what}: {exc!r}", RuntimeWarning, stacklevel=level)


def _skip(backend: Backend, method: str, exc: Exception) -> None:
    """Report the third-party ``backend``, whose ``method`` raised ``exc``, and drop it.

    Dropped as a broken entry point is never registered: no later dispatch consults
    it (so its failing ``load()`` never runs again), and the per-type tables, which
    it may have answered for, start afresh. Called with the lock held.
    """
    _report(f"skipping backend {describe(backend)} from now on, since its {method} raised", exc)
    _skipped[backend.name] = f"its {method} raised {exc!r}"
    for i, registered in enumerate(_frameworks):
        if registered is backend:
            del _frameworks[i]
            break
    _clear_tables()


#: :func:`consult`'s answer for a third-party backend that raised (and is now skipped).
SKIPPED: Any = object()


def consult(backend: Backend, method: str, call: Callable[[], Any], /) -> Any:
    """``call()``, a question put to ``backend`` (its hook ``method``, for the report).

    A third-party backend that raises is reported and skipped, as for ``load()`` (see
    :func:`_skip`): one broken plugin must not break the conversion of anything
    else. The answer is then :data:`SKIPPED`. The library's own backends are asked
    directly: a failure is their bug, and propagates.
    """
    if is_builtin(backend):
        return call()
    try:
        return call()
    except MemoryError:
        raise
    except Exception as exc:  # whatever a plugin raises (see _load_entry_points)
        with _lock:
            if any(b is backend for b in _frameworks):
                _skip(backend, method, exc)
        return SKIPPED


def _load(backend: Backend) -> bool:
    """Load ``backend`` if it is not yet; ``False`` for a third-party one that failed (skipped)."""
    if backend.loaded:
        return True
    backend.lookup = lookup
    backend.view_of = view_of
    backend.stacker_of = stacker_of
    backend.reader_of = reader_of
    if is_builtin(backend):
        backend.load()  # the library's own: a failure is its bug, and propagates
    else:
        _check_target_hooks(backend)
        try:
            backend.load()
        except MemoryError:
            raise
        except Exception as exc:  # whatever a plugin raises (see _load_entry_points)
            _skip(backend, "load()", exc)
            return False
    backend.loaded = True
    return True


def _ask(backend: Backend, cls: type) -> tuple[bool, str | None] | None:
    """``backend``'s ``matches(cls)`` and ``declines(cls)`` (the latter only if it does not match).

    ``None`` where ``backend`` is a third-party one that raised (and is now skipped).
    """
    if is_builtin(backend):
        matched = backend.matches(cls)
        return matched, None if matched else backend.declines(cls)
    method = "matches()"
    try:
        if backend.matches(cls):
            return True, None
        method = "declines()"
        return False, backend.declines(cls)
    except MemoryError:
        raise
    except Exception as exc:  # whatever a plugin raises (see _load_entry_points)
        _skip(backend, method, exc)
        return None


def _resolve(cls: type) -> Backend | None:
    with _lock:
        if cls in _cache:
            return _cache[cls]
        _ensure_builtins()
        if not _entry_points_loaded:
            _load_entry_points()
        found: Backend | None = None
        modules = sys.modules
        for backend in (*_frameworks, *_generics):
            if backend.module is not None and backend.module not in modules:
                continue
            if not _load(backend):
                continue
            answer = _ask(backend, cls)
            if answer is None:
                continue
            matched, reason = answer
            if matched:
                found = backend
                break
            if reason is not None:
                _declined[cls] = reason
                break
        if len(_cache) >= _MAX_TYPES:
            _clear_tables()
        _cache[cls] = found
        return found


def lookup(cls: type, /) -> Backend | None:
    """The backend that converts objects of type ``cls``, or ``None`` if none does.

    Never imports a framework: only backends whose framework is already imported
    are consulted. The answer is cached per type.
    """
    found = _cache.get(cls, _MISSING)
    return _resolve(cls) if found is _MISSING else found


def get(x: object, /) -> Backend:
    """The backend for ``x``, or :class:`UnsupportedTypeError` with a hint."""
    backend = _cache.get(type(x)) or _resolve(type(x))
    if backend is None:
        raise unsupported(x)
    return backend


def view_of(cls: type, /) -> Callable[[Any], Any] | None:
    """The host view function of type ``cls`` (see :meth:`Backend.host_view_for`), or ``None``.

    Looked up once per type; ``None`` also for a type no backend converts.
    """
    view = _views.get(cls, _MISSING)
    if view is not _MISSING:
        return view  # type: ignore[no-any-return]
    return _function_of(cls, _views, "host_view_for", _checked_view, _as_it_is)


def reader_of(cls: type, /) -> Callable[[Any], Any] | None:
    """The function that reads the host view of type ``cls`` leaving the object as it was.

    The ``view`` of :meth:`Backend.reading_for`, for a conversion that only reads the
    view (to copy it); ``None`` where there is none. Looked up once per type.
    """
    reader = _readers.get(cls, _MISSING)
    if reader is not _MISSING:
        return reader  # type: ignore[no-any-return]
    return _function_of(cls, _readers, "reading_for", _checked_view, _reading_view)


def _reading_view(reading: Any) -> Any:
    """The ``view`` of a :class:`Reading` (``reading_for``'s answer), or ``None``."""
    return None if reading is None else reading.view


def stacker_of(cls: type, /) -> Callable[[Any], Any] | None:
    """The stacking function of type ``cls`` (see :meth:`Backend.stack_for`), or ``None``.

    Looked up once per type; ``None`` also for a type no backend converts.
    """
    stack = _stackers.get(cls, _MISSING)
    if stack is not _MISSING:
        return stack  # type: ignore[no-any-return]
    return _function_of(cls, _stackers, "stack_for", _checked_stacking, _as_it_is)


def _function_of(
    cls: type,
    table: dict[type, Callable[[Any], Any] | None],
    hook: str,
    checked: Callable[[Backend, Any], Callable[[Any], Any]],
    function: Callable[[Any], Any],
) -> Callable[[Any], Any] | None:
    """The function in what the backend of ``cls`` answers to ``hook(cls)``, in ``table``.

    ``function(answer)``: the function in the hook's answer, or ``None``. ``None``
    also for a type no backend converts. A third-party backend's function is wrapped
    by ``checked``, so that its failures and wrong answers name it.
    """
    since = _generation
    backend = lookup(cls)
    with _lock:
        found = None
        if backend is not None:
            found = consult(backend, f"{hook}()", lambda: getattr(backend, hook)(cls))
            if found is SKIPPED:  # (the type's backend is another one now)
                return _function_of(cls, table, hook, checked, function)
            found = function(found)
            if found is not None and not is_builtin(backend):
                found = checked(backend, found)
        record(table, cls, found, since)
    return found  # type: ignore[no-any-return]


def _as_it_is(answer: Any) -> Any:
    return answer


def _stack_wanted(items: Any) -> str:
    return f"stacking function given a `{type_name(items)}` to give a function or None"


def _wrong_stack(items: Any, out: Any) -> str | None:
    """What is wrong with a stacking function's answer for ``items``; ``None``: nothing."""
    return None if out is None or callable(out) else f"`{type_name(out)}`"


def _checked_stacking(backend: Backend, stacking: Any) -> Callable[[Any], Any]:
    """A third-party stacking function whose operations are checked too."""
    checked = _checked(backend, stacking, "stack_for()", _stack_wanted, _wrong_stack)

    def check(items: Any) -> Any:
        make = checked(items)
        if make is None:
            return None
        made = _checked(backend, lambda _: make(), "stack_for()", _stacked_wanted, _wrong_stacked)
        return lambda: made(items)

    return check


def _stacked_wanted(items: Any) -> str:
    rows = len(items)
    return f"stacking of a `{type_name(items)}` of {rows} to give an array of shape ({rows}, ...)"


def _wrong_stacked(items: Any, out: Any) -> str | None:
    """What is wrong with the array a stacking made of ``items``; ``None``: nothing."""
    if isinstance(out, np.ndarray):
        return None if out.shape[:1] == (len(items),) else f"an array of shape {out.shape}"
    return f"`{type_name(out)}`"


# The hooks that make a conversion's result, checked for a third-party target.
_MAKERS = ("from_numpy", "from_dlpack", "adopt")
# The hooks in which a third-party target decides a conversion (a dtype, a device, why
# it cannot alias some memory): a failure there is its own, not the source's.
# (parse_device is left out: its ValueError is the user's wrong device.)
_DECIDERS = (
    "target_dtype",
    "cast_reason",
    "numpy_problem",
    "dlpack_problem",
    "dlpack_device",
    "default_device",
    "device_of",
)


def _check_target_hooks(backend: Backend) -> None:
    """Check what a third-party target's hooks make: a result (not ``None``), or its error.

    The hooks it implements are replaced, on the instance, by ones whose failures
    and ``None`` answers name the backend (the conversion's source is not at fault);
    so are the hooks in which it decides a conversion (``_DECIDERS``), for failures.
    What else a result may be is the backend's to say: a target whose arrays it
    does not read back (no ``matches``) makes objects no backend claims.
    """
    cls = type(backend)
    for name in _MAKERS:
        if getattr(cls, name) is not getattr(Backend, name):
            setattr(backend, name, _checked_maker(backend, f"{name}()", getattr(backend, name)))
    for name in _DECIDERS:
        if getattr(cls, name) is not getattr(Backend, name):
            setattr(backend, name, _checked_decider(backend, f"{name}()", getattr(backend, name)))
    if cls.numpy_importer is not Backend.numpy_importer:
        importer = backend.numpy_importer

        def numpy_importer() -> Callable[[np.ndarray[Any, Any], bool], Any] | None:
            made = answer_of(backend, "numpy_importer() to return a function or None", importer)
            if made is None:
                return None
            checked = _checked_maker(backend, "numpy_importer() function", made, optional=True)
            return lambda a, copy: checked(a, copy=copy)

        backend.numpy_importer = numpy_importer  # type: ignore[method-assign]


def _checked_maker(
    backend: Backend, name: str, hook: Callable[..., Any], optional: bool = False
) -> Callable[..., Any]:
    """``hook`` (``from_numpy``, ...), whose failure or ``None`` result names ``backend``.

    ``optional``: ``None`` is an answer (a ``numpy_importer`` function's "not here").
    """

    def checked(x: Any, /, **kwargs: Any) -> Any:
        out = answer_of(backend, f"{name} to make one of its arrays", lambda: hook(x, **kwargs))
        if out is None and not optional:
            raise backend_error(backend, f"'s {name} to make one of its arrays", "None")
        return out

    return checked


def _checked_decider(backend: Backend, name: str, hook: Callable[..., Any]) -> Callable[..., Any]:
    """``hook`` (``target_dtype``, ...), whose failure other than the library's errors names
    ``backend`` (where the source's backend would tell it as the data's)."""

    def checked(*args: Any, **kwargs: Any) -> Any:
        return answer_of(backend, f"{name} to decide the conversion", lambda: hook(*args, **kwargs))

    return checked


def _checked_view(backend: Backend, view: Any) -> Callable[[Any], Any]:
    """A third-party host view, whose failures and wrong answers name its backend.

    Its answer must be what the plan's would be: a NumPy array, or ``None``.
    """
    return _checked(
        backend,
        view,
        "host_view_for()",
        lambda x: f"host view of `{type_name(x)}` to give a NumPy array or None",
        lambda x, out: (
            None if out is None or isinstance(out, np.ndarray) else f"`{type_name(out)}`"
        ),
    )


def _checked(
    backend: Backend,
    function: Any,
    hook: str,
    expected: Callable[[Any], str],
    wrong: Callable[[Any, Any], str | None],
) -> Callable[[Any], Any]:
    """A function a third-party backend's ``hook`` gave, whose failures name the backend.

    ``expected(x)``: what the function was expected to give for ``x``, as the error
    says it after the backend's name ("host view of ... to give a NumPy array or
    None"). ``wrong(x, out)``: what is wrong with its answer ``out``, or ``None``
    where it is one it may give; a wrong answer is refused, naming the backend too.
    """
    if not callable(function):
        given = f"`{type_name(function)}`"

        def refused(x: Any) -> Any:
            raise backend_error(backend, f"'s {hook} to return a function or None", given)

        return refused

    def checked(x: Any) -> Any:
        out = answer_of(backend, expected(x), lambda: function(x))
        problem = wrong(x, out)
        if problem is None:
            return out
        raise backend_error(backend, f"'s {expected(x)}", problem)

    return checked


def host_view(x: Any, /) -> np.ndarray[Any, Any] | None:
    """The host view of ``x`` (a zero-copy NumPy view), or ``None`` where there is none."""
    view = _views.get(type(x), _MISSING)
    if view is _MISSING:
        view = view_of(type(x))
    return None if view is None else view(x)


def active() -> list[Backend]:
    """The backends whose framework is imported (so its arrays may exist), loaded, in order.

    The same list object for as long as the answer stays the same (callers may key
    a cache on it, and must not change it): a tree walk asks once per tree, and
    this then costs a look at ``sys.modules`` per framework.
    """
    found, imported, missing = _active
    if missing is not None:
        modules = sys.modules
        for name in imported:
            if name not in modules:
                break
        else:
            for name in missing:
                if name in modules:
                    break
            else:
                return found
    return _find_active()


def _find_active() -> list[Backend]:
    global _active
    with _lock:
        _ensure_builtins()
        modules = sys.modules
        found: list[Backend] = []
        imported: list[str] = []
        missing: list[str] = []
        for backend in (*_frameworks, *_generics):
            module = backend.module
            if module is None or module in modules:
                if not _load(backend):
                    continue
                found.append(backend)
                if module is not None:
                    imported.append(module)
            else:
                missing.append(module)
        _active = (found, tuple(imported), tuple(missing))
    return found


def by_name(name: str, /) -> Backend:
    """The registered backend called ``name`` (used by conversions *to* a framework)."""
    with _lock:
        _ensure_builtins()
        if not _entry_points_loaded:
            _load_entry_points()
        for backend in (*_frameworks, *_generics):
            if backend.name == name:
                if _load(backend):
                    return backend
                break
        names = ", ".join(b.name for b in _frameworks if b.arrays)
        skipped = _skipped.get(name)
    if skipped is not None:
        raise ValueError(
            f"expected a framework name ({names}), got {name!r}, a third-party backend "
            f"that is skipped: {skipped}. hint: fix or reinstall the plugin that provides it"
        )
    raise ValueError(f"expected a framework name ({names}), got {name!r}")


_HINTS: Mapping[type, str] = {
    dict: "convert its values, or use interop.to_numpy_tree for nested containers",
    str: "text is not an array; for text data, build an object array with np.asarray",
    bytes: "to read raw bytes as numbers, use np.frombuffer(data, dtype=...)",
    set: "sets have no order; convert sorted(values) instead",
    type(None): "None has no data; handle missing values before converting",
}


def unsupported(x: object) -> UnsupportedTypeError:
    """The error for an object no backend converts, naming the backends tried."""
    tried = [
        b.name for b in (*_frameworks, *_generics) if b.module is None or (b.loaded and b.arrays)
    ]
    skipped = [b.name for b in _frameworks if not b.loaded and b.arrays]
    message = (
        f"expected an array or tensor, got `{type_name(x)}`: no backend converts it "
        f"(tried: {', '.join(tried)}"
    )
    if skipped:
        message += f"; not imported, so not tried: {', '.join(skipped)}"
    message += ")"
    # Ask the type, not the object: a hostile ``__getattr__`` or ``__class__`` must
    # not turn this error into another one.
    cls = type(x)
    declined = _declined.get(cls)
    if declined is not None:
        return UnsupportedTypeError(
            f"expected an array or tensor, got `{type_name(x)}`: {declined}"
        )
    hint = next((h for t, h in _HINTS.items() if issubclass(cls, t)), None)
    iterable = class_attr(cls, "__iter__") is not None
    if hint is None and iterable and not issubclass(cls, (list, tuple)):
        hint = "materialise iterables first, for example with list(...)"
    if hint is not None:
        message += f". hint: {hint}"
    return UnsupportedTypeError(message)


# What a backend name may be: it is what framework_of returns and convert's `to=` takes.
# (A pattern, compiled and cached by `re` on first use rather than at import.)
_NAME = r"[A-Za-z][A-Za-z0-9_.-]*"


def register_backend(backend: Backend, /) -> None:
    """Register a third-party backend, consulted before the generic protocols.

    Third-party frameworks may also declare their backend in the entry-point group
    ``"interop.backends"``; those are registered on the first dispatch.

    A third-party backend whose ``load()``, ``matches()`` or ``declines()`` raises
    is reported (a :class:`RuntimeWarning` naming it and the error) and skipped
    from then on, so that it cannot break the conversion of other types.

    Args:
        backend: An instance of a :class:`Backend` subclass with a unique ``name``.

    Raises:
        TypeError: If ``backend`` is not a :class:`Backend` instance, or its
            ``name`` is not a string.
        ValueError: If its ``name`` is empty or not a word (letters, digits, ``_``,
            ``-`` and ``.``, starting with a letter), or a backend of the same name
            is already registered.
    """
    if not isinstance(backend, Backend):
        raise TypeError(
            f"expected an instance of interop.Backend, got `{type_name(backend)}`; "
            "hint: subclass interop.Backend and pass an instance"
        )
    name = backend.name
    if not isinstance(name, str):
        raise TypeError(
            f"expected a backend whose name is a string, got {name!r} (`{type_name(name)}`) "
            f"for `{type_name(backend)}`. hint: set the class attribute name, as in "
            'name = "gridlib"'
        )
    if re.fullmatch(_NAME, name) is None:
        raise ValueError(
            "expected a backend with a non-empty name of letters, digits, '_', '-' and '.' "
            f"that starts with a letter, got {name!r} for `{type_name(backend)}`. hint: use "
            'the framework\'s short name, as in name = "gridlib"'
        )
    with _lock:
        _ensure_builtins()
        if any(b.name == name for b in (*_frameworks, *_generics)):
            raise ValueError(
                f"expected a new backend name, got {name!r}, which is already registered"
            )
        _frameworks.append(backend)
        _skipped.pop(name, None)
        _clear_tables()


def unregister_backend(name: str, /) -> None:
    """Remove a backend added with :func:`register_backend` (mainly for tests)."""
    with _lock:
        for i, b in enumerate(_frameworks):
            if b.name == name:
                del _frameworks[i]
                _clear_tables()
                return
    raise ValueError(f"expected a registered backend name, got {name!r}")


def backends() -> list[BackendInfo]:
    """The registered backends in dispatch order, each with whether it is loaded.

    Example:
        >>> import interop
        >>> [b.name for b in interop.backends()][:2]
        ['numpy', 'torch']
    """
    with _lock:
        _ensure_builtins()
        if not _entry_points_loaded:
            _load_entry_points()
        return [BackendInfo(b) for b in (*_frameworks, *_generics)]
