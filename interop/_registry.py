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

import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from interop._errors import UnsupportedTypeError, type_name
from interop._options import Options
from interop._plan import TAIL_STEPS, Plan

__all__ = ["Backend", "BackendInfo", "backends", "lookup", "register_backend"]

Step = Callable[[Any, Plan], Any]


class Backend:
    """Base class of a backend: one framework, or one generic array protocol.

    A subclass names its framework's top-level module in :attr:`module` (``None``
    for a generic protocol, which is always consulted) and answers one question in
    :meth:`matches`. It imports its framework only in :meth:`load`, which runs once,
    after the module was found in ``sys.modules``.

    A conversion is a :class:`~interop.Plan` made by :meth:`plan`, checked against
    the copy and transfer options, then carried out by running each named step from
    :attr:`steps` (plus the shared ``upcast``/``cast``/``copy``/``readonly`` tail).
    """

    #: The short name reported by :func:`interop.framework_of` and in plans.
    name: ClassVar[str] = ""
    #: The top-level module that must already be imported, or ``None``.
    module: ClassVar[str | None] = None

    def __init__(self) -> None:
        self.loaded = False
        self.steps: dict[str, Step] = dict(TAIL_STEPS)

    def load(self) -> None:
        """Import the framework and prepare what :meth:`matches` needs (runs once)."""

    def matches(self, cls: type) -> bool:
        """Whether objects of exactly this type are this backend's to convert."""
        raise NotImplementedError

    def plan(self, x: Any, options: Options, /) -> Plan:
        """Describe the conversion of ``x`` under ``options`` without doing any work."""
        raise NotImplementedError

    def fast_path(self, cls: type, /) -> Callable[[Any], Any] | None:
        """A callable that converts objects of type ``cls`` under the default options.

        :func:`interop.to_numpy` caches it per type and calls it when no option is
        set. It returns exactly what the planned path returns, or raises any
        exception to hand over to the planned path (which then does the work or
        raises the documented error). ``None``: no fast path for this type.
        """
        return None

    def to_numpy(self, x: Any, options: Options, /) -> np.ndarray[Any, Any]:
        """Convert ``x``; backends may override this with a fast path for common cases."""
        plan = self.plan(x, options)
        plan.check(options)
        return self.run(x, plan)

    def run(self, x: Any, plan: Plan, /) -> np.ndarray[Any, Any]:
        """Carry out ``plan`` on ``x`` step by step."""
        obj = x
        for step in plan.steps:
            obj = self.steps[step](obj, plan)
        if isinstance(obj, np.generic):  # a 0-d ``.numpy()`` gives a NumPy scalar
            return np.asarray(obj)
        return obj  # type: ignore[no-any-return]

    # -- conversion into this framework ------------------------------------------
    # The hooks below serve interop.convert (interop/_convert.py), which plans a
    # conversion between two backends from them. A backend that cannot create
    # arrays (a generic protocol, say) keeps these defaults and is refused as a
    # target with a clear error.

    #: Whether arrays of this framework can be written in place. A zero-copy result
    #: of a mutable framework never aliases memory that its source treats as immutable.
    mutable: ClassVar[bool] = True

    def target_device(self, device: Any, like: Any, /) -> Any:
        """This framework's own device for ``device``, else ``like``'s, else the default."""
        if device is not None:
            return self.parse_device(device)
        if like is not None:
            return self.device_of(like)
        return self.default_device()

    def parse_device(self, device: Any, /) -> Any:
        """The framework's device object for a string (``"cpu"``, ``"cuda:1"``, ...) or its own."""
        raise self._not_a_target()

    def default_device(self) -> Any:
        """Where the framework places a new array when no device is asked for."""
        raise self._not_a_target()

    def device_of(self, x: Any, /) -> Any:
        """The framework's device object that holds the array ``x`` of this framework."""
        raise self._not_a_target()

    def dlpack_device(self, device: Any, /) -> tuple[int, int]:
        """The DLPack ``(device_type, device_id)`` of one of this framework's devices."""
        raise self._not_a_target()

    def target_dtype(self, dtype: np.dtype[Any], device: Any, /) -> np.dtype[Any]:
        """The NumPy dtype a result on ``device`` has for data of ``dtype``.

        Raises :class:`~interop.ConversionError` for a dtype the framework cannot hold.
        """
        raise self._not_a_target()

    def dlpack_problem(
        self, dtype: np.dtype[Any], view: np.ndarray[Any, Any] | None, device: tuple[int, int], /
    ) -> str | None:
        """Why :meth:`from_dlpack` cannot alias this data, or ``None`` if it can.

        ``view`` is the source's zero-copy NumPy view for data in host memory (its
        layout and alignment decide), ``None`` for data on ``device``.
        """
        return f"{self.name} does not import DLPack"

    def numpy_problem(self, a: np.ndarray[Any, Any], /) -> str | None:
        """Why :meth:`from_numpy` cannot alias the NumPy array ``a``, or ``None`` if it can."""
        return f"{self.name} cannot alias NumPy memory"

    def from_numpy(self, a: np.ndarray[Any, Any], /, *, device: Any, copy: bool) -> Any:
        """An array of this framework on ``device`` holding ``a``'s values.

        ``copy=False`` aliases ``a`` (only asked for when :meth:`numpy_problem` found
        none); ``copy=True`` returns memory the result owns, in one copy.
        """
        raise self._not_a_target()

    def from_dlpack(self, x: Any, /, *, device: Any, copy: bool) -> Any:
        """An array of this framework on ``device`` from the DLPack producer ``x``.

        The import aliases ``x`` where it lives; then a move to another ``device``
        or ``copy=True`` makes the one copy.
        """
        raise self._not_a_target()

    def adopt(self, x: Any, /, *, device: Any, copy: bool) -> Any:
        """``x``, an array of this very framework, on ``device`` (a copy if asked or moved)."""
        raise self._not_a_target()

    def owns(self, x: Any, device: Any, /) -> bool:
        """Whether ``x`` is already an array of this target (so :meth:`adopt` applies)."""
        return lookup(type(x)) is self

    # Source side: what the conversion needs to know about an array of this backend.

    def readonly_source(self, x: Any, /) -> bool:
        """Whether this backend treats the memory of ``x`` as immutable (unknown: yes)."""
        return True

    def dlpack_export(self, x: Any, dtype: np.dtype[Any], /) -> Any:
        """An object whose ``__dlpack__`` exports ``x``'s data, or ``None`` if it cannot."""
        return None

    def host_view(self, x: Any, /) -> np.ndarray[Any, Any] | None:
        """The zero-copy NumPy view of ``x`` in host memory that the planned conversion uses.

        Exactly what running ``plan(x, DEFAULT)`` gives where that plan is zero-copy
        and in host memory, found without planning; ``None`` wherever that is not
        certain, and :func:`interop.convert` then plans. A fast path only: the
        default (``None``) is always correct.
        """
        return None

    def _not_a_target(self) -> TypeError:
        names = [
            b.name
            for b in (*_frameworks, *_generics)
            if type(b).from_numpy is not Backend.from_numpy
        ]
        return TypeError(
            f"expected a framework that creates arrays as the target, got {self.name!r}, "
            f"which only reads them. hint: convert to one of: {', '.join(names)}"
        )


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
# Framework backends, then generic protocols; see the module docstring for the order.
_frameworks: list[Backend] = []
_generics: list[Backend] = []
# type(x) -> the backend that converts it, or None for a type no backend takes.
_cache: dict[type, Backend | None] = {}
# type(x) -> its backend's fast_path(type(x)), filled by interop.to_numpy; cleared
# together with _cache.
_fast: dict[type, Callable[[Any], Any] | None] = {}
_entry_points_loaded = False


def _builtin_backends() -> tuple[list[Backend], list[Backend]]:
    from interop.backends import generic, jax, numpy, tensorflow, torch

    frameworks: list[Backend] = [
        numpy.NumpyBackend(),
        torch.TorchBackend(),
        tensorflow.TensorFlowBackend(),
        jax.JaxBackend(),
    ]
    frameworks.extend(b() for b in _extra_framework_backends())
    return frameworks, generic.generic_backends()


def _extra_framework_backends() -> list[type[Backend]]:
    import importlib

    found: list[type[Backend]] = []
    for modname, clsname in (
        ("interop.backends.cupy", "CupyBackend"),
        ("interop.backends.dask", "DaskBackend"),
    ):
        try:
            module = importlib.import_module(modname)
        except ImportError:  # pragma: no cover - the module ships with the package
            continue
        found.append(getattr(module, clsname))
    return found


def _ensure_builtins() -> None:
    if not _frameworks:
        frameworks, generics = _builtin_backends()
        _frameworks.extend(frameworks)
        _generics.extend(generics)


def _load_entry_points() -> None:
    global _entry_points_loaded
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group="interop.backends"):
        # A broken or clashing third-party plugin must not break every conversion:
        # it is reported and skipped.
        try:
            backend = ep.load()
            register_backend(backend() if isinstance(backend, type) else backend)
        except Exception as exc:
            import warnings

            warnings.warn(
                f"interop: could not load backend entry point {ep.name!r}: {exc!r}",
                RuntimeWarning,
                stacklevel=3,
            )


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
            if not backend.loaded:
                backend.load()
                backend.loaded = True
            if backend.matches(cls):
                found = backend
                break
        _cache[cls] = found
        return found


def lookup(cls: type, /) -> Backend | None:
    """The backend that converts objects of type ``cls``, or ``None`` if none does.

    Never imports a framework: only backends whose framework is already imported
    are consulted. The answer is cached per type.
    """
    try:
        return _cache[cls]
    except KeyError:
        return _resolve(cls)


def get(x: object, /) -> Backend:
    """The backend for ``x``, or :class:`UnsupportedTypeError` with a hint."""
    backend = _cache.get(type(x)) or _resolve(type(x))
    if backend is None:
        raise unsupported(x)
    return backend


def by_name(name: str, /) -> Backend:
    """The registered backend called ``name`` (used by conversions *to* a framework)."""
    with _lock:
        _ensure_builtins()
        if not _entry_points_loaded:
            _load_entry_points()
        for backend in (*_frameworks, *_generics):
            if backend.name == name:
                if not backend.loaded:
                    backend.load()
                    backend.loaded = True
                return backend
    names = ", ".join(b.name for b in _frameworks)
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
    tried = [b.name for b in (*_frameworks, *_generics) if b.module is None or b.loaded]
    skipped = [b.name for b in _frameworks if not b.loaded]
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
    hint = next((h for t, h in _HINTS.items() if issubclass(cls, t)), None)
    if hint is None and hasattr(cls, "__iter__") and not issubclass(cls, (list, tuple)):
        hint = "materialise iterables first, for example with list(...)"
    if hint is not None:
        message += f". hint: {hint}"
    return UnsupportedTypeError(message)


def register_backend(backend: Backend, /) -> None:
    """Register a third-party backend, consulted before the generic protocols.

    Third-party frameworks may also declare their backend in the entry-point group
    ``"interop.backends"``; those are registered on the first dispatch.

    Args:
        backend: An instance of a :class:`Backend` subclass with a unique ``name``.

    Raises:
        TypeError: If ``backend`` is not a :class:`Backend` instance.
        ValueError: If a backend of the same name is already registered.
    """
    if not isinstance(backend, Backend):
        raise TypeError(
            f"expected an instance of interop.Backend, got `{type_name(backend)}`; "
            "hint: subclass interop.Backend and pass an instance"
        )
    if not backend.name:
        raise ValueError("expected a backend with a non-empty name, got ''")
    with _lock:
        _ensure_builtins()
        if any(b.name == backend.name for b in (*_frameworks, *_generics)):
            raise ValueError(
                f"expected a new backend name, got {backend.name!r}, which is already registered"
            )
        _frameworks.append(backend)
        _cache.clear()
        _fast.clear()


def unregister_backend(name: str, /) -> None:
    """Remove a backend added with :func:`register_backend` (mainly for tests)."""
    with _lock:
        for i, b in enumerate(_frameworks):
            if b.name == name:
                del _frameworks[i]
                _cache.clear()
                _fast.clear()
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
