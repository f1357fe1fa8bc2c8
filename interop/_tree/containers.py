"""The containers of a tree: what each kind is, how it is taken apart and rebuilt, paths.

A tree's containers are ``dict`` and other mappings, lists, tuples, namedtuples,
list and tuple subclasses, dataclass instances, and the containers a framework
registers in its own registry (JAX pytree nodes, through the backend's
:meth:`~interop.Backend.is_node` and :meth:`~interop.Backend.node` hooks). Every
other non-array value is a leaf returned as it is. A container is rebuilt new:
never written into, whatever its class's ``__copy__`` does.
"""

from __future__ import annotations

import collections
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from interop import _registry
from interop._backend import Backend, Node
from interop._errors import ConversionError, InteropError, type_name

_OTHER = 0  # a leaf returned as it is
_ROOT = 1  # the frame that holds the whole tree
_DICT = 2  # exactly dict
_LIST = 3  # exactly list
_TUPLE = 4  # exactly tuple
_NAMEDTUPLE = 5
_MAPPING = 6  # other mappings, dict subclasses included
_SEQUENCE = 7  # list and tuple subclasses that are not namedtuples
_DATACLASS = 8
_NODE = 9  # a container registered with a framework (a JAX pytree node)

# type -> kind, for every non-array type seen. Cleared when the backends that
# register containers change (JAX imported), since a type may be a node from then on.
kinds: dict[type, int] = {}
# type -> the backend whose registry knows it (or its registration), for kind _NODE.
_node_of: dict[type, Backend] = {}
# The backends asked about nodes when kinds was filled, and the list of active
# backends they were found in.
_node_backends: tuple[Backend, ...] = ()
_synced: list[Backend] | None = None
_SCALARS = (str, bytes, int, float, complex, bool, type(None))
_MISSING: Any = object()


def sync(backends: list[Backend]) -> None:
    """Forget the kinds of types when the backends that register containers change.

    ``backends``: the active backends (:func:`interop._registry.active`).
    """
    global _node_backends, _synced
    if backends is _synced:  # the registry's same answer as last time (see active())
        return
    found = tuple(b for b in backends if type(b).is_node is not Backend.is_node)
    # Backends of containers only (TensorDict) first: their types may also be in a
    # framework's registry (torch's pytree), which would rebuild them as they were.
    found = tuple(sorted(found, key=lambda b: b.arrays))
    if found != _node_backends:
        kinds.clear()
        _node_of.clear()
        _node_backends = found
    _synced = backends


def _node_backend(x: Any) -> Backend | None:
    for backend in _node_backends:
        if backend.is_node(x):
            return backend
    return None


_python_backend: list[Backend] = []


def python_backend() -> Backend:
    # The generic backend that turns Python scalars and lists into arrays: in a tree
    # those are leaves kept as they are and containers, never arrays.
    if not _python_backend:
        _python_backend.append(_registry.by_name("python"))
    return _python_backend[0]


class _Registered:
    """A container type registered with :func:`register_container`."""

    __slots__ = ("flatten", "unflatten")

    def __init__(
        self, flatten: Callable[[Any], tuple[Any, Any]], unflatten: Callable[[Any, list[Any]], Any]
    ) -> None:
        self.flatten = flatten
        self.unflatten = unflatten

    def node(self, x: Any) -> Node:
        children, aux = self.flatten(x)
        unflatten = self.unflatten
        return Node(list(children), lambda out: unflatten(aux, out), lambda i: f"[{i}]")


# type -> its registration (exact types only).
_registered: dict[type, _Registered] = {}
_registered_lock = threading.Lock()


def register_container(
    cls: type,
    flatten: Callable[[Any], tuple[Any, Any]],
    unflatten: Callable[[Any, list[Any]], Any],
    /,
) -> None:
    """Make the tree functions take objects of exactly type ``cls`` apart and rebuild them.

    For container types no registry the library reads knows. Registrations come
    before every other kind of container but exactly ``dict``, ``list`` and
    ``tuple`` in the order the tree functions recognise containers (see
    "Containers" in docs/trees.md); a type registered again takes the new functions.

    Args:
        cls: The container type (its subclasses are not included).
        flatten: ``flatten(x) -> (children, aux)``: the children to convert, in order,
            and anything else ``unflatten`` needs.
        unflatten: ``unflatten(aux, children) -> container``: a new container holding
            the converted children.

    Raises:
        TypeError: ``cls`` is not a type, or ``flatten``/``unflatten`` is not callable.

    Example:
        >>> import numpy as np, interop
        >>> class Pair:
        ...     def __init__(self, a, b):
        ...         self.a, self.b = a, b
        >>> interop.register_container(Pair, lambda p: ([p.a, p.b], None),
        ...                            lambda aux, children: Pair(*children))
        >>> out = interop.to_numpy_tree(Pair(np.float32(1), [2]))
        >>> type(out).__name__, out.a, out.b
        ('Pair', array(1., dtype=float32), [2])
    """
    if not isinstance(cls, type):
        raise TypeError(f"expected a type to register, got `{type_name(cls)}`")
    if not callable(flatten) or not callable(unflatten):
        raise TypeError(
            "expected flatten(x) -> (children, aux) and unflatten(aux, children) -> container "
            f"functions, got `{type_name(flatten)}` and `{type_name(unflatten)}`"
        )
    with _registered_lock:
        _registered[cls] = _Registered(flatten, unflatten)
        # Classified anew on its next use, which also records the new functions as
        # its node (a walk that has already classified it keeps the old ones).
        kinds.pop(cls, None)


def classify(cls: type, x: Any) -> int:
    """The kind of ``cls`` (asked with one of its objects), in the documented precedence.

    Exact ``dict``, ``list`` and ``tuple``; types registered with
    :func:`register_container`; scalars, strings and ``None`` (leaves); namedtuples;
    ``dict`` and ``UserDict`` subclasses; other ``list`` and ``tuple`` subclasses;
    containers a framework's own registry knows (JAX and PyTorch pytree nodes,
    TensorDict); other mappings; dataclass instances. Anything else is a leaf.
    """
    if cls is dict:
        kind = _DICT
    elif cls is list:
        kind = _LIST
    elif cls is tuple:
        kind = _TUPLE
    elif (registration := _registered.get(cls)) is not None:
        kind = _NODE
        _node_of[cls] = registration  # type: ignore[assignment]
    elif issubclass(cls, _SCALARS):
        kind = _OTHER
    elif issubclass(cls, tuple) and hasattr(cls, "_fields"):
        kind = _NAMEDTUPLE
    elif issubclass(cls, (dict, collections.UserDict)):
        kind = _MAPPING
    elif issubclass(cls, (list, tuple)):
        kind = _SEQUENCE
    elif (backend := _node_backend(x)) is not None:
        kind = _NODE
        _node_of[cls] = backend
    elif issubclass(cls, Mapping):
        kind = _MAPPING
    elif _is_dataclass(cls):
        kind = _DATACLASS
    else:
        kind = _OTHER
    if len(kinds) > 4096:  # classes made on the fly (namedtuple per call, ...)
        kinds.clear()
        _node_of.clear()
    kinds[cls] = kind
    return kind


# A frame is one container being walked, as a list (cheaper to make than an object):
_KIND, _SRC, _ITEMS, _OUT, _KEY, _DELAYED, _NODE_OF = range(7)
# [kind, the container, iterator of (key, child), the converted children (a dict for
#  mappings and dataclasses, a list otherwise), the key of the child being walked
#  below it, whether a child still waits for its device-to-host copy, and for a
#  framework's registered container its Node]
Frame = list[Any]


def _is_dataclass(cls: type) -> bool:
    # No class is a dataclass before the dataclasses module is imported, and it is
    # not imported here, which keeps `import interop` short.
    module = sys.modules.get("dataclasses")
    return module is not None and bool(module.is_dataclass(cls))


def open_frame(kind: int, x: Any) -> Frame:
    """The frame that walks the container ``x`` of kind ``kind``."""
    if kind in (_DICT, _MAPPING):
        return [kind, x, iter(x.items()), {}, _MISSING, False]
    if kind == _DATACLASS:
        fields = [
            (f.name, value)
            for f in sys.modules["dataclasses"].fields(x)
            if (value := getattr(x, f.name, _MISSING)) is not _MISSING
        ]
        return [kind, x, iter(fields), {}, _MISSING, False]
    if kind == _NODE:
        node = _node_of[type(x)].node(x)
        children = node.children
        return [kind, x, enumerate(children), list(children), _MISSING, False, node]
    # A copy taken at once: another thread changing the sequence meanwhile changes
    # neither the length nor the items read.
    out = list(x)
    return [kind, x, enumerate(out), out, _MISSING, False]


def build(frame: Frame) -> Any:
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
    if kind in (_NAMEDTUPLE, _SEQUENCE):
        # The class's own constructor, which may ask for more than the items.
        try:
            return cls(*out) if kind == _NAMEDTUPLE else cls(out)
        except Exception as exc:
            raise ConversionError(
                f"expected a sequence type that can be built from its items, got "
                f"`{type_name(src)}`, whose constructor failed: {exc!r}. hint: convert it "
                "to a tuple or list first, or register it as a container"
            ) from exc
    if kind == _MAPPING:
        return _build_mapping(src, out)
    if kind == _DATACLASS:
        # A shallow copy keeps every attribute (init=False fields, cached values) and
        # runs no __init__ or __post_init__, which could turn the arrays back into
        # tensors; object.__setattr__ also sets the fields of a frozen dataclass.
        new = _shallow_copy(src)
        for name, value in out.items():
            if value is not getattr(src, name):
                object.__setattr__(new, name, value)
        return new
    # _NODE
    return frame[_NODE_OF].rebuild(out)


def _build_mapping(src: Any, out: dict[Any, Any]) -> Any:
    """A new mapping of ``src``'s type holding ``out``, with ``src``'s other attributes."""
    cls = type(src)
    if isinstance(src, collections.UserDict):
        # A UserDict keeps its items in .data by definition: a copy of the object
        # with a new .data keeps every other attribute (a tokenizer's encodings, ...).
        new = _shallow_copy(src)
        new.data = out
        return new
    try:
        if isinstance(src, collections.defaultdict):
            new = cls(src.default_factory, out)
        else:
            new = cls(out)
    except Exception as exc:  # the class's own constructor: anything
        raise ConversionError(
            f"expected a mapping type that can be built from a dict, got `{type_name(src)}`, "
            f"whose constructor failed: {exc!r}. hint: convert it to a dict first, or "
            "register it with interop.register_container"
        ) from exc
    extra = getattr(src, "__dict__", None)
    if extra:
        if isinstance(src, dict):
            # A dict subclass keeps its items in the dict itself, never in attributes.
            for name, value in extra.items():
                new.__dict__.setdefault(name, value)
        else:
            lost = sorted(name for name in extra if name not in getattr(new, "__dict__", {}))
            if lost:
                raise ConversionError(
                    f"expected a mapping that {type_name(src)}(dict) rebuilds whole, got "
                    f"`{type_name(src)}` with attributes its constructor does not set: "
                    f"{', '.join(lost)}. hint: register it with interop.register_container "
                    "to rebuild it faithfully"
                )
    return new


def _shallow_copy(src: Any) -> Any:
    """A new object of ``src``'s class with the same attributes, never ``src`` itself.

    Not ``copy.copy``: a class whose ``__copy__`` returns ``self`` (a common idiom
    for immutable values) would have the caller's object written into.
    """
    cls = type(src)
    new = object.__new__(cls)
    state = getattr(src, "__dict__", None)
    if state is not None:
        object.__setattr__(new, "__dict__", dict(state))
    for name in _slot_names(cls):
        value = getattr(src, name, _MISSING)
        if value is not _MISSING:
            object.__setattr__(new, name, value)
    return new


def _slot_names(cls: type) -> list[str]:
    names: list[str] = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__") and name not in names:
                names.append(name)
    return names


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
    if kind == _NODE:
        # Only for an error message: a framework's key function that fails must not
        # replace the error being reported, whatever it raised.
        try:
            return str(frame[_NODE_OF].key(key))
        except Exception:
            return f"[{key}]"
    return f"[{key}]"


def path_of(stack: list[Frame], key: Any) -> str:
    """The path of child ``key`` of the innermost frame (``_MISSING``: the frame itself)."""
    parts = ["tree"]
    last = len(stack) - 1
    for i, frame in enumerate(stack):
        k = frame[_KEY] if i < last else key
        if k is _MISSING:
            break
        parts.append(_segment(frame, k))
    return "".join(parts)


def located(exc: Exception, where: str) -> Exception:
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
        except Exception:  # a class whose constructor wants more than a message
            new = None
    if new is None:
        new = ConversionError(f"{where}: `{type_name(exc)}`: {exc}")
    new.__interop_path__ = where  # type: ignore[attr-defined]
    return new


def changed_meanwhile(container: Any, exc: RuntimeError) -> ConversionError | None:
    """The error for a container that another thread changed while it was iterated.

    ``None`` where ``exc`` is not Python's report of that (``... changed size during
    iteration``, ``... mutated during iteration``).
    """
    if "during iteration" not in str(exc):
        return None
    return ConversionError(
        f"expected a tree that stays the same while it is converted, got a "
        f"`{type_name(container)}` that changed meanwhile ({exc}). hint: convert a "
        "snapshot taken under your own lock, or hold that lock while converting"
    )


def check_cycles(stack: list[Frame]) -> None:
    """Raise if a container on the stack is its own ancestor."""
    first: dict[int, int] = {}
    for i, frame in enumerate(stack):
        j = first.setdefault(id(frame[_SRC]), i)
        if j != i:
            here = path_of(stack[:i], stack[i - 1][_KEY])
            outer = path_of(stack[:j], stack[j - 1][_KEY])
            error = ConversionError(
                f"expected a tree without cycles, got a `{type_name(frame[_SRC])}` at {here} "
                f"that is also its own ancestor {outer}. hint: break the cycle, or convert "
                "the parts you need"
            )
            error.__interop_path__ = here  # type: ignore[attr-defined]
            raise error
