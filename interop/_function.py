"""The :func:`numpy_function` decorator: an algorithm written once in NumPy, for every framework.

The arguments are converted to NumPy on the way in by the walk of
:func:`interop.to_numpy_tree`, and the results go back to the caller's framework and
device on the way out through ``map_leaves`` of the same module, over the same
containers (lists, tuples, named tuples, dicts and other mappings, dataclasses, JAX
pytree nodes). Both build new containers and never change the caller's.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from typing import Any, TypeVar, overload

import numpy as np

from interop import _options, _registry, _tree
from interop._backend import Backend
from interop._convert import convert
from interop._errors import InteropError, retell_policy, type_name
from interop._tree.containers import leaf_view, leaf_views
from interop._tree.paths import located, relocated

__all__ = ["numpy_function"]

F = TypeVar("F", bound=Callable[..., Any])


def _array_backend(x: Any) -> Backend | None:
    if isinstance(x, (str, bytes, bool, int, float, complex)):
        return None
    backend = _registry.lookup(type(x))
    if backend is None or not backend.arrays:
        return None
    return backend


def _can_target(backend: Backend) -> bool:
    """Whether results can go back as arrays of ``backend`` (NumPy's are neutral).

    Any backend that creates arrays from NumPy's, Dask's included; one that only
    reads arrays (a plain DLPack producer's) is neutral, as NumPy's is.
    """
    return not backend.is_numpy and type(backend).from_numpy is not Backend.from_numpy


def _reference(*trees: Any) -> list[tuple[Backend, Any]]:
    """The first array of each non-NumPy framework inside ``trees``, in order."""
    found: dict[str, tuple[Backend, Any]] = {}

    def visit(x: Any) -> Any:
        backend = _array_backend(x)
        if backend is not None and _can_target(backend) and backend.name not in found:
            found[backend.name] = (backend, x)
        return x

    for tree in trees:
        _tree.map_leaves(tree, visit)
    return list(found.values())


# Arguments passed to the function as they are, by both the walk and the flat path.
_PLAIN = frozenset({int, float, complex, bool, str, bytes, type(None)})
_ndarray = np.ndarray
# The tree walk's tables of host views: a registered container has none.
_views = leaf_views
_view_of = leaf_view
_cache = _registry._cache
_current = _options.current
_DEFAULT = _options.DEFAULT


def _flatten(values: tuple[Any, ...]) -> tuple[list[Any], Any] | None:
    """``values`` converted as the tree walk converts them, where none needs the walk.

    Under the default options an array with a host view, an ndarray or a plain
    Python value converts exactly as the walk converts it. Returns the converted
    values and the first array of a framework the results go back to (``None`` if
    there is none); ``None`` where a value needs the walk (a container, data on a
    device, ...) or two such frameworks meet (the walk's error then).
    """
    converted: list[Any] = []
    found: Backend | None = None
    reference: Any = None
    for v in values:
        cls = type(v)
        if cls is _ndarray or cls in _PLAIN:
            converted.append(v)
            continue
        view = _views.get(cls, _MISSING)
        if view is _MISSING:
            view = _view_of(cls)
        a = None if view is None else view(v)
        if a is None:
            return None
        converted.append(a)
        backend = _cache.get(cls) or _registry.get(v)
        if backend is not found and backend.arrays and _can_target(backend):
            if found is not None:
                return None
            found, reference = backend, v
    return converted, reference


_MISSING: Any = object()
_kept_backend: list[Backend] = []


def _kept() -> Backend:
    """The backend whose objects the arguments' walk keeps as they are (NumPy's protocols)."""
    if not _kept_backend:
        _kept_backend.append(_registry.by_name("array_protocol"))
    return _kept_backend[0]


@overload
def numpy_function(func: F, /) -> F: ...


@overload
def numpy_function(
    *,
    like: str | int | None = None,
    copy: bool | None = None,
    dtype: Any = None,
    allow_transfer: bool | None = None,
    upcast: bool | None = None,
    float_dtype: Any = None,
) -> Callable[[F], F]: ...


def numpy_function(
    func: Callable[..., Any] | None = None,
    /,
    *,
    like: str | int | None = None,
    copy: bool | None = None,
    dtype: Any = None,
    allow_transfer: bool | None = None,
    upcast: bool | None = None,
    float_dtype: Any = None,
) -> Any:
    """Decorate a function written with NumPy so that it serves every framework.

    On each call, every array argument (positional, keyword, and arrays nested in lists,
    tuples, dicts, named tuples, dataclasses and the other containers
    :func:`interop.to_numpy_tree` walks) is converted as :func:`interop.to_numpy_tree`
    does, the function runs, and every NumPy array or NumPy scalar of numbers in its
    result (nested the same way) is converted with :func:`interop.convert` to the
    framework and device of the first argument that is not NumPy; one of text, Python
    objects, dates, times or structured records (which frameworks do not hold) stays
    NumPy. NumPy arguments are neutral; if every argument is NumPy, the result is
    returned unchanged. A Dask argument counts as any framework's: it arrives computed,
    and the results go back as Dask arrays of one chunk. Python scalars, strings and the
    objects NumPy reads through its own protocols (``__array__``,
    ``__array_interface__``, the buffer protocol: pandas and xarray objects,
    ``bytearray``, ``memoryview``, ``array.array``, ...) are passed through as they are,
    for the function to read them as it means to (``np.asarray(x)``). The caller's
    containers are never changed: the function gets new ones. Arguments thousands of
    levels deep are converted too, and one that contains itself is the
    :class:`~interop.ConversionError` of :func:`interop.to_numpy_tree`; an error names
    the argument and the path inside it (``center(): argument 'x'['k']``).

    Arrays of two different frameworks are an error, unless ``like`` names the
    argument that decides. Autograd is not carried through NumPy: the results do not
    require grad and have no graph, whatever the arguments had. Inputs from JAX and
    TensorFlow arrive as read-only views; pass ``copy=True`` if the function writes
    into its arguments.

    Usable bare (``@numpy_function``) or with options (``@numpy_function(copy=True)``).
    On a method (defined in a class body, ``self`` or ``cls`` first) the receiver is
    passed as it is, never taken apart, and takes no part in choosing the results'
    framework; a method that returns ``self`` returns it as it is. An ``async``
    function stays one: its result is converted once awaited. Generator functions
    are refused (their results come after the call).

    Args:
        func: The function to decorate (a plain function or a method).
        like: The argument whose framework and device the results take: a parameter
            name, or an index into the positional arguments as passed (``self``
            included for a method).
        copy: ``copy`` for the conversions of the arguments (``True``: the function
            gets arrays it may write into, NumPy arguments included).
        dtype: ``dtype`` for the conversions of the arguments.
        allow_transfer: ``allow_transfer`` for the conversions of the arguments.
        upcast: ``upcast`` for the conversions of the arguments (bfloat16 and float8
            arrive as float32; the results go back in the dtype the function returns).
        float_dtype: ``float_dtype`` for the conversions of the arguments: floating-point
            arrays arrive in this dtype, integer labels and boolean masks as they are.

    Returns:
        The wrapped function, with the name, docstring and signature of ``func``.

    Raises:
        InteropError: At call time, for arguments of two different frameworks
            (Dask counts as one) without ``like``.
        TypeError: ``like`` names no parameter of ``func``, or ``func`` is a
            generator function.

    Example:
        >>> import numpy as np, interop
        >>> @interop.numpy_function
        ... def center(x):
        ...     return x - x.mean()
        >>> center(np.array([1.0, 2.0, 3.0]))
        array([-1.,  0.,  1.])
        >>> center.__name__
        'center'
    """
    options = (copy, dtype, allow_transfer, upcast, float_dtype)
    if func is None:
        return lambda f: _decorate(f, like, options)
    return _decorate(func, like, options)


def _decorate(func: Callable[..., Any], like: str | int | None, options: tuple[Any, ...]) -> Any:
    if isinstance(func, (staticmethod, classmethod)):
        # Placed above @staticmethod or @classmethod: the function inside is decorated,
        # and the descriptor kept (a plain function would bind to the instance).
        return type(func)(_decorate(func.__func__, like, options))
    if not callable(func):
        raise TypeError(
            f"expected a function to decorate, got `{type_name(func)}`. "
            "hint: pass options as keywords: @numpy_function(like='x')"
        )
    call = _call_of(func)
    if inspect.isgeneratorfunction(call) or inspect.isasyncgenfunction(call):
        raise TypeError(
            f"expected a function that returns its results, got the generator function "
            f"{_name_of(func)}, whose results come one at a time after the call. "
            "hint: decorate a function that returns a list of them, or convert each "
            "yielded value with interop.convert"
        )
    signature = _signature(func)
    _check_like(func, like, signature)
    copy, dtype, allow_transfer, upcast, float_dtype = options
    # (Checked once here, so that a wrong value is an error where it is written.)
    _options.resolve(copy, dtype, allow_transfer, upcast, None, None, float_dtype)
    # A method's receiver (self, cls) is passed as it is: the method may set state on
    # it, or return it; it takes no part in choosing the results' framework.
    skip = 1 if _is_method(func, signature) else 0
    plain = like is None and options == (None, None, None, None, None)
    # Array defaults, and arrays a functools.partial binds as keywords, are arguments
    # too: passed on where the call leaves them out (by name, or after the arguments
    # given for a positional-only one), converted as the rest are.
    defaults = _array_defaults(func, signature)
    # The positional arguments a functools.partial binds are arguments too, passed
    # before the call's own (they are not in the partial's signature).
    bound = _binds_arrays(func)

    def prepare(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any, Any]:
        """The arguments converted, and the array whose framework the results take."""
        if defaults:
            extra, missing = _missing_defaults(defaults, signature, args, kwargs)
            if extra or missing:
                # Converted as the arguments are, but not asked for the results'
                # framework: that is the caller's arguments' to decide.
                converted, named, reference = _prepare(args, kwargs)
                extra, missing = _converted_defaults(extra, missing, args, kwargs)
                return [*converted, *extra], {**named, **missing}, reference
        return _prepare(args, kwargs)

    def _converted_defaults(
        extra: list[Any], missing: dict[str, Any], args: tuple[Any, ...], kwargs: Any
    ) -> tuple[Any, Any]:
        """The defaults, converted as arguments are; a failure named by its parameter."""
        # (Laid out as the arguments' walk lays out the call: positions after the
        # arguments passed, then names.)
        tree = ((None,) * len(args) + tuple(extra), missing)
        positional, names = _converted(tree, args, {**kwargs, **missing})
        return list(positional[len(args) :]), names

    def _converted(tree: Any, args: Any, kwargs: Any, *, by_bound: bool = False) -> Any:
        """``tree``, ``(positional, named)`` arguments of a call, converted under the
        options in force at call time (under the decorator's own); a failure named by
        its argument (``by_bound``: by its place among a partial's bound arguments)."""
        opts = _options.resolve(copy, dtype, allow_transfer, upcast, None, None, float_dtype)
        try:
            started = _tree.start(tree, opts, keep=_kept())
            if type(started) is _tree.Started:
                started = started.result()
        except Exception as exc:
            retell_policy(exc, "numpy_function")  # (before the path's new exception)
            if by_bound:
                named = _by_bound_argument(exc, func)
            else:
                named = _by_argument(exc, func, signature, args, kwargs)
            if named is None:
                raise
            raise named from exc
        return started

    def run(converted: Any, named: Any) -> Any:
        """``func`` called with the converted arguments (and bound ones, converted)."""
        if not bound:
            return func(*converted, **named)
        inner: Any = func  # (a functools.partial: see _binds_arrays)
        front, _ = _converted((inner.args, {}), (), {}, by_bound=True)
        return inner.func(*front, *converted, **{**inner.keywords, **named})

    def _prepare(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any, Any]:
        rest = args[skip:] if skip else args
        if plain and _current() is _DEFAULT:
            # Flat arguments (the common call): one pass instead of two tree walks.
            flat = _flatten((*rest, *kwargs.values()) if kwargs else rest)
            if flat is not None:
                converted, reference = flat
                if kwargs:
                    n = len(rest)
                    named = dict(zip(kwargs, converted[n:], strict=True))
                    converted = converted[:n]
                else:
                    named = kwargs
                if skip:
                    converted.insert(0, args[0])
                return converted, named, reference
        return _walked(args[:skip], rest, args, kwargs)

    def _walked(head: Any, rest: Any, args: Any, kwargs: Any) -> tuple[Any, Any, Any]:
        # The arguments' walk first: it is the one that names a failure (a cycle, a
        # container's own code, a leaf) by its argument, at any depth; the search for
        # the results' framework below then walks containers known to open.
        started = _converted(((None,) * skip + rest, kwargs), args, kwargs)
        if like is None:
            found = _reference(*rest, *kwargs.values())
            if len(found) > 1:
                (a, x), (b, y) = found[0], found[1]
                raise InteropError(
                    f"expected arrays of one framework, got {a.name} (`{type_name(x)}`) and "
                    f"{b.name} (`{type_name(y)}`) in the arguments of {_name_of(func)}: the "
                    "results cannot take both. hint: name the argument that decides with "
                    "@numpy_function(like='name')"
                )
        else:
            found = _reference(_like_argument(like, signature, args, kwargs))
        converted_args, converted_kwargs = started
        return (*head, *converted_args[skip:]), converted_kwargs, found[0][1] if found else None

    def finish(args: tuple[Any, ...], result: Any, reference: Any) -> Any:
        """The results, converted back; a method's receiver returned as it is, anywhere."""
        if skip and args:
            if result is args[0]:
                return result
            return _back(result, reference, func, keep=args[0])
        return _back(result, reference, func)

    if inspect.iscoroutinefunction(call):

        @functools.wraps(func)
        async def coroutine(*args: Any, **kwargs: Any) -> Any:
            converted, named, reference = prepare(args, kwargs)
            return finish(args, await run(converted, named), reference)

        return _named_after(coroutine, func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        converted, named, reference = prepare(args, kwargs)
        return finish(args, run(converted, named), reference)

    return _named_after(wrapper, func)


def _named_after(wrapper: Callable[..., Any], func: Callable[..., Any]) -> Callable[..., Any]:
    """``wrapper`` given the name of what ``func`` calls, where ``func`` has none of its own.

    ``functools.wraps`` leaves the wrapper's own name where ``func`` is a
    ``functools.partial`` (and gives it the docstring of the ``partial`` class) or a
    callable object: the function a partial calls lends its name, module and
    docstring; a callable object its class's name.
    """
    if isinstance(getattr(func, "__name__", None), str):
        return wrapper
    inner: Any = func
    while isinstance(inner, functools.partial):
        inner = inner.func
    named = inner if isinstance(getattr(inner, "__name__", None), str) else type(inner)
    wrapper.__name__ = named.__name__
    wrapper.__qualname__ = getattr(named, "__qualname__", named.__name__)
    if isinstance(func, functools.partial):
        wrapper.__doc__ = getattr(named, "__doc__", None)
        wrapper.__module__ = getattr(named, "__module__", wrapper.__module__)
    return wrapper


def _array_defaults(
    func: Callable[..., Any], signature: inspect.Signature | None
) -> dict[str, Any]:
    """The parameters of ``func`` whose default (or ``partial`` keyword) holds an array.

    Asked once, when ``func`` is decorated.
    """
    if signature is None:
        return {}
    return {
        name: param.default
        for name, param in signature.parameters.items()
        if param.default is not param.empty and _holds_array(param.default)
    }


def _binds_arrays(func: Callable[..., Any]) -> bool:
    """Whether ``func`` is a ``functools.partial`` whose bound positional arguments hold
    an array (a partial of a partial is one partial: ``functools.partial`` merges them).
    """
    return isinstance(func, functools.partial) and any(_holds_array(a) for a in func.args)


def _holds_array(value: Any) -> bool:
    """Whether ``value`` is an array of a framework, or a list, tuple or dict holding one."""
    if isinstance(value, (list, tuple)):
        return any(_holds_array(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_array(v) for v in value.values())
    backend = _registry.lookup(type(value))
    return backend is not None and backend.arrays and not isinstance(value, (np.generic, str))


def _missing_defaults(
    defaults: dict[str, Any],
    signature: inspect.Signature | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> tuple[list[Any], dict[str, Any]]:
    """The defaults a call must pass for the array defaults it leaves out.

    ``(positional, by_name)``: a positional-only parameter's default goes after the
    arguments given, with the defaults of the positional-only parameters before it
    (those can be passed no other way); any other by name.
    """
    assert signature is not None  # (defaults come from it)
    try:
        bound = signature.bind_partial(*args, **kwargs).arguments
    except TypeError:
        return [], {}  # (the call itself is wrong: the function says so)
    missing = {name: value for name, value in defaults.items() if name not in bound}
    if not missing:
        return [], {}
    only = [p for p in signature.parameters.values() if p.kind is p.POSITIONAL_ONLY]
    last = max((i for i, p in enumerate(only) if p.name in missing), default=-1)
    before = only[len(args) : last + 1]
    if any(p.default is p.empty for p in before):
        return [], {}  # (an argument the call leaves out has no default: the function says so)
    positional = [p.default for p in before]
    for p in only[: last + 1]:
        missing.pop(p.name, None)
    return positional, missing


def _call_of(func: Callable[..., Any]) -> Any:
    """What a call of ``func`` runs: ``func`` itself, or a callable object's ``__call__``.

    Through ``functools.partial`` too, down to what it calls.
    """
    while isinstance(func, functools.partial):
        func = func.func
    if inspect.isroutine(func) or isinstance(func, type):
        return func
    return type(func).__call__  # (callable(func) was checked)


def _name_of(func: Callable[..., Any], *, short: bool = False) -> str:
    """The name messages give ``func``: its (qualified) name, ``partial(name)``, or its type's.

    A ``functools.partial`` and a callable object have no ``__qualname__`` of their own.
    """
    if isinstance(func, functools.partial):
        return f"partial({_name_of(func.func, short=short)})"
    name = getattr(func, "__name__" if short else "__qualname__", None)
    if isinstance(name, str):
        return name
    return f"{type(func).__name__ if short else type(func).__qualname__} object"


def _is_method(func: Callable[..., Any], signature: inspect.Signature | None) -> bool:
    """Whether ``func`` is defined in a class body with ``self`` or ``cls`` first."""
    if signature is None or "." not in getattr(func, "__qualname__", ""):
        return False
    if func.__qualname__.rsplit(".", 2)[-2] == "<locals>":
        return False  # a function defined inside a function
    params = list(signature.parameters.values())
    ordered = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return bool(params) and params[0].kind in ordered and params[0].name in ("self", "cls")


def _by_argument(
    exc: Exception,
    func: Callable[..., Any],
    signature: inspect.Signature | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Exception | None:
    """``exc``, located by the tree walk in ``(args, kwargs)``, located by argument instead.

    ``tree[0][1]['k']: ...`` becomes ``center(): argument 'scores'['k']: ...``: the
    caller knows the function's parameters, not the walk's internal tuple. ``None``
    where ``exc`` carries no such path.
    """
    path = getattr(exc, "__interop_path__", None)
    if not isinstance(path, str):
        return None
    positional = re.match(r"tree\[0\]\[(\d+)\]", path)
    if positional is not None:
        old = positional.group(0)
        name = _positional_name(int(positional.group(1)), signature)
    else:
        # A keyword's path segment is the repr of its name, whatever characters that
        # holds (quotes, brackets, ": "): matched against the names passed.
        prefixes = [(f"tree[1][{key!r}]", key) for key in kwargs]
        matching = [(old, key) for old, key in prefixes if path.startswith(old)]
        if not matching:
            return None
        old, name = max(matching, key=lambda found: len(found[0]))
    return relocated(exc, old, f"{_name_of(func, short=True)}(): argument {name!r}")


def _by_bound_argument(exc: Exception, func: Callable[..., Any]) -> Exception | None:
    """``exc``, located by the tree walk in a partial's bound arguments, located by their
    place (``scale(): bound argument #0``); ``None`` where ``exc`` carries no such path."""
    path = getattr(exc, "__interop_path__", None)
    found = re.match(r"tree\[0\]\[(\d+)\]", path) if isinstance(path, str) else None
    if found is None:
        return None
    name = _name_of(func.func if isinstance(func, functools.partial) else func, short=True)
    return relocated(exc, found.group(0), f"{name}(): bound argument #{found.group(1)}")


def _positional_name(index: int, signature: inspect.Signature | None) -> str:
    """The name of the positional argument at ``index``, as the caller knows it."""
    params = [] if signature is None else list(signature.parameters.values())
    ordered = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    positional = [p for p in params if p.kind in ordered]
    star = next((p for p in params if p.kind is inspect.Parameter.VAR_POSITIONAL), None)
    if index < len(positional):
        return positional[index].name
    if star is not None:
        return f"{star.name}[{index - len(positional)}]"
    return f"#{index}"


def _back(result: Any, reference: Any, func: Callable[..., Any], keep: Any = None) -> Any:
    """``result`` with its NumPy arrays converted like ``reference`` (unless ``None``).

    A failure inside a structure of results is named by its place in the result of
    ``func`` (``mean(): result['loss']: ...``). ``keep``: a method's receiver, left as
    it is wherever the results hold it.
    """
    if reference is None:
        return result
    if type(result) is _ndarray or isinstance(result, np.generic):  # no walk for one array
        if not _is_numeric(result.dtype):
            return result
        try:
            return convert(result, like=reference)
        except Exception as exc:
            # (Named as a result inside a tuple is: the caller's arguments are not at fault.)
            raise located(exc, f"{_name_of(func, short=True)}(): result") from exc

    def back(x: Any) -> Any:
        if isinstance(x, (np.ndarray, np.generic)) and _is_numeric(x.dtype):
            return convert(x, like=reference)
        return x

    try:
        # (keep=None keeps None leaves as they are, which back() does as well.)
        return _tree.map_leaves(result, back, keep=keep)
    except Exception as exc:
        named = relocated(exc, "tree", f"{_name_of(func, short=True)}(): result")
        if named is None:
            raise
        raise named from exc


def _is_numeric(dtype: np.dtype[Any]) -> bool:
    return (dtype.names is None and dtype.kind in "biufc") or dtype.type.__module__ == "ml_dtypes"


def _signature(func: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):  # some builtins have none
        return None


def _check_like(func: Callable[..., Any], like: Any, signature: inspect.Signature | None) -> None:
    if like is None:
        return
    if isinstance(like, int) and not isinstance(like, bool) and like >= 0:
        if signature is None:
            return
        kinds = [p.kind for p in signature.parameters.values()]
        if inspect.Parameter.VAR_POSITIONAL in kinds:
            return
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        count = sum(kind in positional for kind in kinds)
        if like < count:
            return
        raise TypeError(
            f"expected like to index a positional parameter of {_name_of(func)}, got "
            f"{like}, but it takes {count}. hint: use an index below {count}, or a "
            "parameter name"
        )
    if not isinstance(like, str):
        raise TypeError(
            f"expected like to be a parameter name or a non-negative index, got {like!r}"
        )
    if signature is None:
        return
    params = signature.parameters
    if like in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    raise TypeError(
        f"expected like to name a parameter of {_name_of(func)}, got "
        f"{like!r}. hint: use one of {list(params)}"
    )


def _like_argument(
    like: str | int, signature: inspect.Signature | None, args: tuple[Any, ...], kwargs: Any
) -> Any:
    if isinstance(like, int):
        if like >= len(args):
            raise TypeError(
                f"expected at least {like + 1} positional arguments for like={like}, "
                f"got {len(args)}"
            )
        return args[like]
    if like in kwargs or signature is None:
        return kwargs.get(like)
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return bound.arguments.get(like)
