"""Whole structures at once: :func:`to_numpy_tree`.

The traversal is our own rather than optree's, decided by measuring both (CPU time,
median of 25 interleaved runs, Python 3.11, optree 0.20, JAX 0.10):

==========================================  ==========  ======  ===============
traversal only (NumPy leaves, kept as is)   this walk   optree  jax.tree_util
==========================================  ==========  ======  ===============
flat dict, 1,000 leaves                     1.00        3.78x   3.68x
250 x {tuple, list, dict}: 1,000 + 1,000    1.00        1.26x   0.53x
==========================================  ==========  ======  ===============

* On the common case, a dict of tensors, this walk is 3.8x faster than
  ``optree.tree_map``: it converts the leaves of a container in one tight loop,
  with no Python call per leaf besides the conversion itself, where a ``tree_map``
  calls a leaf function per leaf. Only on trees made mostly of tiny containers is
  JAX's C++ flatten faster; converting the leaves then costs more than walking.
* optree does not see the containers users hold most after dicts: dataclass
  instances, and nodes registered with JAX rather than with optree (Flax structs);
  a second traversal would have to wrap it anyway.
* optree would be a new dependency (JAX does not require it).

There are two walks. The recursive one (:func:`_walk_fast`) takes the common
case: no accelerator data, no error, up to ``_FAST_DEPTH`` levels. Anything else
goes to the iterative one in :func:`start` (an explicit stack, no recursion), which
converts a tree 10,000 levels deep like any other, finds cycles, batches
device-to-host copies and has the path of every leaf at hand, so errors name the
leaf, as in ``tree['outputs'][2]``.

JAX-registered pytree nodes (``register_pytree_node_class``, ``register_dataclass``,
Flax structs, ...) are taken apart one level at a time with JAX's own registry, so
only what their class declares as children is converted. Plain ``dict`` and its
subclasses are walked here even though JAX also registers them, because JAX
sorts their keys and we keep their order.
"""

from __future__ import annotations

import collections
import copy as _copy
import dataclasses
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import Unpack

import numpy as np

from interop import _core, _options, _registry
from interop._backend import Backend
from interop._errors import ConversionError, InteropError, type_name
from interop._options import DEFAULT, Keywords, Options
from interop._transfer import Batch, Pending, device_checks

__all__ = ["to_numpy_tree"]

# What a value is to the walk. Arrays are not listed: the backend registry's own
# per-type cache says which types are arrays.
_OTHER = 0  # a leaf returned as it is
_ROOT = 1  # the frame that holds the whole tree
_DICT = 2  # exactly dict
_LIST = 3  # exactly list
_TUPLE = 4  # exactly tuple
_NAMEDTUPLE = 5
_MAPPING = 6  # other mappings, dict subclasses included
_SEQUENCE = 7  # list and tuple subclasses that are not namedtuples
_DATACLASS = 8
_JAXNODE = 9

# type -> kind, for every non-array type seen. Cleared when JAX is imported,
# since a type may be a JAX pytree node from then on.
_kinds: dict[type, int] = {}
_kinds_know_jax = False
_ndarray = np.ndarray
_python_backend: list[Backend] = []
_SCALARS = (str, bytes, int, float, complex, bool, type(None))
_MISSING: Any = object()


def _python() -> Backend:
    # The generic backend that turns Python scalars and lists into arrays: in a tree
    # those are leaves kept as they are and containers, never arrays.
    if not _python_backend:
        _python_backend.append(_registry.by_name("python"))
    return _python_backend[0]


def _jax_registry() -> Any:
    public = sys.modules.get("jax.tree_util")
    if public is None:  # JAX not imported, or still being imported
        return None
    registry = getattr(public, "default_registry", None)
    if registry is None:  # pragma: no cover - JAX before default_registry was public
        from jax._src import tree_util

        registry = tree_util.default_registry
    return registry


def _classify(cls: type, x: Any) -> int:
    if cls is dict:
        kind = _DICT
    elif cls is list:
        kind = _LIST
    elif cls is tuple:
        kind = _TUPLE
    elif issubclass(cls, _SCALARS):
        kind = _OTHER
    elif issubclass(cls, tuple) and hasattr(cls, "_fields"):
        kind = _NAMEDTUPLE
    elif issubclass(cls, dict):
        kind = _MAPPING
    elif (registry := _jax_registry()) is not None and _is_jax_node(registry, x):
        kind = _JAXNODE
    elif issubclass(cls, Mapping):
        kind = _MAPPING
    elif dataclasses.is_dataclass(cls):
        kind = _DATACLASS
    elif issubclass(cls, (list, tuple)):
        kind = _SEQUENCE
    else:
        kind = _OTHER
    if len(_kinds) > 4096:  # classes made on the fly (namedtuple per call, ...)
        _kinds.clear()
    _kinds[cls] = kind
    return kind


def _is_jax_node(registry: Any, x: Any) -> bool:
    try:
        return registry.flatten_one_level(x) is not None
    except Exception:
        # A registered flatten function that fails is reported when the node is
        # walked, with its path.
        return True


# A frame is one container being walked, as a list (cheaper to make than an object):
_KIND, _SRC, _ITEMS, _OUT, _KEY, _DELAYED = range(6)
# [kind, the container, iterator of (key, child), the converted children (a dict for
#  mappings and dataclasses, a list otherwise), the key of the child being walked
#  below it, whether a child still waits for its device-to-host copy]
Frame = list[Any]


def _open(kind: int, x: Any) -> Frame:
    """The frame that walks the container ``x`` of kind ``kind``."""
    if kind in (_DICT, _MAPPING):
        return [kind, x, iter(x.items()), {}, _MISSING, False]
    if kind == _DATACLASS:
        fields = [
            (f.name, value)
            for f in dataclasses.fields(x)
            if (value := getattr(x, f.name, _MISSING)) is not _MISSING
        ]
        return [kind, x, iter(fields), {}, _MISSING, False]
    if kind == _JAXNODE:
        registry = _jax_registry()
        flat = registry.flatten_one_level(x)
        if flat is None:
            raise ConversionError(
                f"expected a JAX pytree node, got `{type_name(x)}`, which JAX no longer flattens"
            )
        children = list(flat[0])
        return [kind, x, enumerate(children), [None] * len(children), _MISSING, False]
    return [kind, x, enumerate(x), [None] * len(x), _MISSING, False]


def _build(frame: Frame) -> Any:
    """The new container of ``frame``'s kind holding its converted children."""
    kind = frame[_KIND]
    out = frame[_OUT]
    src = frame[_SRC]
    if kind in (_DICT, _LIST):
        return out
    if kind == _TUPLE:
        return tuple(out)
    if kind == _ROOT:
        return out[0]
    cls = type(src)
    if kind == _NAMEDTUPLE:
        return cls(*out)
    if kind == _SEQUENCE:
        return cls(out)
    if kind == _MAPPING:
        if isinstance(src, collections.defaultdict):
            return cls(src.default_factory, out)
        try:
            return cls(out)
        except Exception as exc:
            raise ConversionError(
                f"expected a mapping type that can be built from a dict, got `{type_name(src)}`, "
                f"whose constructor failed: {exc!r}. hint: convert it to a dict first, or "
                "register it as a JAX pytree node"
            ) from exc
    if kind == _DATACLASS:
        # A shallow copy keeps every attribute (init=False fields, cached values) and
        # runs no __init__ or __post_init__, which could turn the arrays back into
        # tensors; object.__setattr__ also sets the fields of a frozen dataclass.
        new = _copy.copy(src)
        for name, value in out.items():
            if value is not getattr(src, name):
                object.__setattr__(new, name, value)
        return new
    # _JAXNODE
    import jax

    treedef = jax.tree_util.tree_structure(src, is_leaf=lambda c: c is not src)
    return jax.tree_util.tree_unflatten(treedef, out)


def _segment(frame: Frame, key: Any) -> str:
    kind = frame[_KIND]
    if kind == _ROOT:
        return ""
    if kind in (_DICT, _MAPPING):
        return f"[{key!r}]"
    if kind == _DATACLASS:
        return f".{key}"
    if kind == _NAMEDTUPLE:
        return f".{type(frame[_SRC])._fields[key]}"
    if kind == _JAXNODE:
        try:
            import jax

            keyed, _ = jax.tree_util.flatten_one_level_with_keys(frame[_SRC])
            return str(jax.tree_util.keystr((list(keyed)[key][0],)))
        except Exception:
            pass
    return f"[{key}]"


def _path(stack: list[Frame], key: Any) -> str:
    """The path of child ``key`` of the innermost frame (``_MISSING``: the frame itself)."""
    parts = ["tree"]
    last = len(stack) - 1
    for i, frame in enumerate(stack):
        k = frame[_KEY] if i < last else key
        if k is _MISSING:
            break
        parts.append(_segment(frame, k))
    return "".join(parts)


def _located(exc: Exception, where: str) -> Exception:
    """An exception like ``exc`` that names where in the tree it happened.

    It is of the same class when that class takes a message (the library's own
    errors, built-in ones), so that ``except TransferError`` still catches it;
    otherwise a :class:`ConversionError`. The original is its ``__cause__``.
    """
    cls = type(exc)
    new: Exception | None = None
    if issubclass(cls, InteropError) or cls.__module__ == "builtins":
        try:
            new = cls(f"{where}: {exc}")
        except Exception:
            new = None
    if new is None:
        new = ConversionError(f"{where}: `{type_name(exc)}`: {exc}")
    new.__interop_path__ = where  # type: ignore[attr-defined]
    return new


class _Placeholder:
    """A value of the result that exists only once the batch's copies are complete."""

    __slots__ = ("frame", "path", "value")

    def __init__(self, frame: Frame, path: str) -> None:
        self.frame = frame
        self.path = path
        self.value: Any = None


class Started:
    """A tree whose device-to-host copies are under way; :meth:`result` waits for them."""

    __slots__ = ("_batch", "_placeholders", "_value")

    def __init__(self, value: Any, batch: Batch | None, placeholders: list[_Placeholder]) -> None:
        self._value = value
        self._batch = batch
        self._placeholders = placeholders

    def result(self) -> Any:
        """The converted tree, once every copy is complete (waits at most once)."""
        batch = self._batch
        if batch is None:
            return self._value
        self._batch = None
        try:
            batch.synchronize()
            for pending in batch.pending:
                try:
                    pending.finish()
                except Exception as exc:
                    raise _located(exc, pending.path) from exc
        except BaseException:
            batch.cancel()
            raise
        value = self._value
        for holder in self._placeholders:
            out = holder.frame[_OUT]
            keys = out.keys() if isinstance(out, dict) else range(len(out))
            for k in keys:
                item = out[k]
                if type(item) is Pending or type(item) is _Placeholder:
                    out[k] = item.value
            try:
                holder.value = _build(holder.frame)
            except Exception as exc:
                raise _located(exc, holder.path) from exc
        if type(value) is _Placeholder:
            value = value.value
        self._value = value
        self._placeholders = []
        return value

    def cancel(self) -> None:
        """Wait for the copies already started and drop them, without converting."""
        batch = self._batch
        self._batch = None
        self._value = None
        self._placeholders = []
        if batch is not None:
            batch.cancel()


def _sync_kinds() -> None:
    global _kinds_know_jax
    if not _kinds_know_jax and "jax" in sys.modules:
        _kinds.clear()
        _kinds_know_jax = True


def start(tree: Any, options: Options, *, keep: Backend | None = None) -> Any:
    """Convert the host leaves of ``tree`` and start the copies of its device leaves.

    ``keep``: a backend whose objects are leaves returned as they are, not converted.

    Returns the converted tree itself when nothing waits for a copy (every tree on
    a machine without an accelerator), else a :class:`Started` whose ``result()``
    waits for the copies; callers tell them apart with ``type(out) is Started``. A
    tree that is itself a :class:`Started` cannot occur: the class is private.
    """
    _sync_kinds()
    checks = device_checks()
    # The recursive walk first; it leaves what it does not handle (accelerator data,
    # deep or cyclic trees) to the iterative one, which walks again from the start,
    # batches the copies and finds cycles.
    out = _walk_fast(tree, options, checks, keep)
    if out is not _GIVE_UP:
        return out
    return _start_iterative(tree, options, checks, keep)


def _start_iterative(
    tree: Any,
    options: Options,
    checks: dict[Backend, Any],
    keep: Backend | None,
) -> Started:
    """The iterative walk of :func:`start`: batched copies, paths, cycles, any depth."""
    cache_get = _registry._cache.get
    lookup = _registry.lookup
    kinds_get = _kinds.get
    python = _python()
    ndarray = _ndarray
    as_is = options is DEFAULT  # host views apply, and a NumPy array stays the same object
    views_get = _registry._views.get
    view_of = _registry.view_of
    planned = _core.convert_planned
    batch: Batch | None = None
    placeholders: list[_Placeholder] = []

    root: Frame = [_ROOT, None, enumerate((tree,)), [None], _MISSING, False]
    stack = [root]
    frame = root
    k: Any = _MISSING
    try:
        while True:
            out = frame[_OUT]
            for k, v in frame[_ITEMS]:
                cls = type(v)
                if cls is ndarray and as_is:
                    out[k] = v
                    continue
                if as_is:
                    f = views_get(cls, _MISSING)
                    if f is _MISSING:
                        f = view_of(cls)
                    if f is not None:
                        r = f(v)
                        if r is not None:
                            out[k] = r
                            continue
                b = cache_get(cls, _MISSING)
                if b is _MISSING:
                    b = lookup(cls)
                if b is not None and b is not python:
                    if b is keep:
                        out[k] = v
                        continue
                    if checks and b in checks and checks[b](v):
                        if batch is None:
                            batch = Batch()
                        converted = batch.start(b, v, options, _path(stack, k))
                        if type(converted) is Pending:
                            frame[_DELAYED] = True
                        out[k] = converted
                    else:
                        out[k] = planned(v, b, options)
                    continue
                kind = kinds_get(cls)
                if kind is None:
                    kind = _classify(cls, v)
                if kind == _OTHER:
                    out[k] = v
                    continue
                # A container: walk it before the rest of this one.
                frame[_KEY] = k
                if kind == _DICT:
                    frame = [kind, v, iter(v.items()), {}, _MISSING, False]
                elif kind in (_LIST, _TUPLE):
                    frame = [kind, v, enumerate(v), [None] * len(v), _MISSING, False]
                else:
                    frame = _open(kind, v)
                stack.append(frame)
                if not len(stack) & 1023:
                    # A structure that contains itself makes the stack grow without
                    # end; looking for a repeated container now and then finds it at
                    # no cost per container.
                    _check_cycles(stack)
                break
            else:
                # Every child of this frame is converted: build its container.
                k = _MISSING
                kind = frame[_KIND]
                if frame[_DELAYED]:
                    result: Any = _Placeholder(frame, _path(stack, _MISSING))
                    placeholders.append(result)
                elif kind in (_DICT, _LIST):
                    result = frame[_OUT]
                elif kind == _TUPLE:
                    result = tuple(frame[_OUT])
                else:
                    result = _build(frame)
                stack.pop()
                if not stack:
                    return Started(result, batch, placeholders)
                frame = stack[-1]
                frame[_OUT][frame[_KEY]] = result
                if type(result) is _Placeholder:
                    frame[_DELAYED] = True
    except Exception as exc:
        if batch is not None:
            batch.cancel()
        if hasattr(exc, "__interop_path__"):
            raise
        raise _located(exc, _path(stack, k)) from exc


# How deep the recursive walk goes before it gives up (cycles, very deep trees) and
# leaves the tree to the iterative walk; well below Python's recursion limit.
_FAST_DEPTH = 64
# What the recursive walk returns when it leaves the tree to the iterative walk:
# a tree too deep for it, or a leaf on an accelerator.
_GIVE_UP: Any = object()


class _Failed(Exception):
    """A leaf failed inside the recursive walk; carries the keys down to it, innermost first."""

    def __init__(self, error: Exception, *frame: Any) -> None:
        self.error = error
        # (kind, container, key) of each container down to the failure; none where
        # the container itself failed to be rebuilt.
        self.frames: list[tuple[int, Any, Any]] = [frame] if frame else []


def _walk_fast(
    tree: Any,
    options: Options,
    checks: dict[Backend, Any],
    keep: Backend | None = None,
) -> Any:
    """Convert ``tree`` recursively, as long as nothing unusual turns up.

    Per container, a recursive call costs a third of a step of the iterative walk
    in :func:`start`, so this is the common path. It returns ``_GIVE_UP`` for a leaf
    on an accelerator or a tree deeper than ``_FAST_DEPTH`` (a cycle, say), and
    :func:`start` then walks the tree iteratively. A failing leaf raises its error,
    named by its path, as the iterative walk would.
    """
    # Making the walker (a closure over a dozen cells) costs as much as converting
    # a leaf; a pipeline converts many small batches under the same options, so the
    # last one made is kept, in one tuple that threads read and replace whole.
    global _walker
    made = _walker
    if made[0] is options and made[1] is checks and made[3] is keep:
        walk = made[2]
    else:
        walk = _make_walker(options, checks, keep)
        _walker = (options, checks, walk, keep)
    kind = _kinds.get(type(tree))
    if kind is None or kind == _OTHER:
        kind, tree = _ROOT, [tree]  # a leaf: convert it as the root's only item
    try:
        return walk(tree, kind, 0)
    except _Failed as failed:
        # The frames of the containers down to the failure, outermost first, each
        # with the key of its child on the way; the path is read as the iterative
        # walk reads its stack.
        stack = [[k, src, None, None, key, False] for k, src, key in reversed(failed.frames)]
        if not stack or stack[0][_KIND] != _ROOT:
            stack.insert(0, [_ROOT, None, None, None, 0, False])
        where = _path(stack, stack[-1][_KEY])
        if hasattr(failed.error, "__interop_path__"):
            raise failed.error from failed.error.__cause__
        raise _located(failed.error, where) from failed.error


def _make_walker(
    options: Options,
    checks: dict[Backend, Any],
    keep: Backend | None,
) -> Any:
    """The recursive walk of :func:`_walk_fast` for these options, checks and kept backend."""
    cache_get = _registry._cache.get
    lookup = _registry.lookup
    kinds_get = _kinds.get
    views_get = _registry._views.get
    view_of = _registry.view_of
    planned = _core.convert_planned
    python = _python()
    ndarray = _ndarray
    as_is = options is DEFAULT
    give_up = _GIVE_UP

    def walk(x: Any, kind: int, depth: int) -> Any:
        if depth > _FAST_DEPTH:
            return give_up
        frame = None
        out: Any
        items: Any
        if kind == _DICT:
            items, out = x.items(), {}
        elif kind in (_LIST, _TUPLE, _ROOT):
            items, out = enumerate(x), [None] * len(x)
        else:
            frame = _open(kind, x)
            items, out = frame[_ITEMS], frame[_OUT]
        for k, v in items:
            cls = type(v)
            if as_is:
                # The backend's host view first: the common leaf.
                f = views_get(cls, _MISSING)
                if f is _MISSING:
                    f = view_of(cls)
                if f is not None:
                    r = f(v)
                    if r is not None:
                        out[k] = r
                        continue
                elif cls is ndarray:
                    out[k] = v
                    continue
            if cls is dict:
                child = _DICT  # the common container, never an array in a tree
            else:
                b = cache_get(cls, _MISSING)
                if b is _MISSING:
                    b = lookup(cls)
                if b is not None and b is not python:
                    if b is keep:
                        out[k] = v
                        continue
                    if checks and b in checks and checks[b](v):
                        return give_up  # the iterative walk batches device copies
                    try:
                        out[k] = planned(v, b, options)
                    except Exception as exc:
                        raise _Failed(exc, kind, x, k) from exc
                    continue
                found = kinds_get(cls)
                child = _classify(cls, v) if found is None else found
                if child == _OTHER:
                    out[k] = v
                    continue
            try:
                r = walk(v, child, depth + 1)
            except _Failed as failed:
                failed.frames.append((kind, x, k))
                raise
            if r is give_up:
                return give_up
            out[k] = r
        if frame is None:
            if kind == _TUPLE:
                return tuple(out)
            return out[0] if kind == _ROOT else out
        try:
            return _build(frame)
        except Exception as exc:
            raise _Failed(exc) from exc

    return walk


# options, checks, the walker _make_walker made for them and the kept backend
# (see _walk_fast).
_walker: tuple[Any, Any, Any, Any] = (None, None, None, None)


def map_leaves(tree: Any, leaf: Callable[[Any], Any], /) -> Any:
    """``tree`` with every leaf ``x`` replaced by ``leaf(x)``, in new containers.

    The containers and the leaves are those of :func:`to_numpy_tree`: an object any
    backend takes as an array is a leaf (an xarray Dataset too, though a mapping),
    and so is every object that is not a container. Recursive: for the shallow
    structures a function returns, not for trees thousands of levels deep.
    """
    cache_get = _registry._cache.get
    python = _python()
    b = cache_get(type(tree))
    if b is not None and b is not python:  # an array (the commonest tree): no walk
        return leaf(tree)
    _sync_kinds()
    lookup = _registry.lookup
    kinds_get = _kinds.get

    def walk(x: Any) -> Any:
        cls = type(x)
        b = cache_get(cls, _MISSING)
        if b is _MISSING:
            b = lookup(cls)
        if b is not None and b is not python:
            return leaf(x)
        kind = kinds_get(cls)
        if kind is None:
            kind = _classify(cls, x)
        if kind == _OTHER:
            return leaf(x)
        if kind == _DICT:
            return {k: walk(v) for k, v in x.items()}
        if kind == _LIST:
            return [walk(v) for v in x]
        if kind == _TUPLE:
            return tuple([walk(v) for v in x])
        frame = _open(kind, x)
        out = frame[_OUT]
        for k, v in frame[_ITEMS]:
            out[k] = walk(v)
        return _build(frame)

    return walk(tree)


def _check_cycles(stack: list[Frame]) -> None:
    """Raise if a container on the stack is its own ancestor."""
    first: dict[int, int] = {}
    for i, frame in enumerate(stack):
        j = first.setdefault(id(frame[_SRC]), i)
        if j != i:
            here = _path(stack[:i], stack[i - 1][_KEY])
            outer = _path(stack[:j], stack[j - 1][_KEY])
            error = ConversionError(
                f"expected a tree without cycles, got a `{type_name(frame[_SRC])}` at {here} "
                f"that is also its own ancestor {outer}. hint: break the cycle, or convert "
                "the parts you need"
            )
            error.__interop_path__ = here  # type: ignore[attr-defined]
            raise error


def to_numpy_tree(tree: Any, /, **options: Unpack[Keywords]) -> Any:
    """Convert every array in a nested structure to NumPy, keeping the structure.

    Containers are rebuilt with the same type: ``dict`` and other mappings
    (``OrderedDict``, ``defaultdict`` with its factory, ...), ``list``, ``tuple``,
    namedtuples, dataclass instances (frozen ones too; fields that hold no array
    are left as they are) and, where JAX is imported, JAX pytree nodes such as Flax
    structs. Leaves that a backend recognizes as arrays (framework tensors, NumPy
    arrays and scalars, CuPy, Dask and Array-API arrays, ...) are converted exactly
    as :func:`interop.to_numpy` would with the same keywords; every other leaf
    (``None``, strings, Python numbers, any other object) is returned as the very
    same object. Lists are containers here, never stacked into one array.

    The input is never modified. Device-to-host copies are batched: every copy is
    started before any is waited for, and the result is returned only once all the
    data is in host memory.

    Args:
        tree: The structure to convert.
        copy: The copy policy of :func:`interop.to_numpy`, applied to every leaf.
        dtype: Cast every array leaf to this dtype (on the device first, where that
            makes the copy smaller).
        allow_transfer: Whether device-to-host copies are allowed.
        upcast: Turn nonstandard dtypes into the nearest standard one.
        sparse: The sparse policy, as in :func:`interop.to_numpy`.
        ragged: The ragged policy, as in :func:`interop.to_numpy`.

    Returns:
        A new structure of the same shape, with NumPy arrays for array leaves.

    Raises:
        ConversionError: The structure contains itself; or a leaf failed with an
            error that is not the library's own.
        InteropError: A leaf failed to convert (same class as :func:`interop.to_numpy`
            raises). Every error names the path of the leaf, for example
            ``tree['outputs'][2]``, and keeps the original error as ``__cause__``.

    Example:
        >>> import numpy as np, interop
        >>> out = interop.to_numpy_tree({"loss": np.float32(0.5), "ids": [np.arange(2), None]})
        >>> out["loss"], out["ids"]
        (array(0.5, dtype=float32), [array([0, 1]), None])
    """
    opts = _options.from_keywords(options, "to_numpy_tree") if options else _options.current()
    out = start(tree, opts)
    return out.result() if type(out) is Started else out


to_numpy_tree.__signature__ = _options.signature(to_numpy_tree, positional=("tree",))  # type: ignore[attr-defined]
