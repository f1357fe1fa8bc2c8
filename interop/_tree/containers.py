"""The containers of a tree: which types are containers, of what kind, and how each is opened.

A tree's containers are ``dict`` and other mappings, lists, tuples, namedtuples,
list and tuple subclasses, dataclass instances, and the containers a framework
registers in its own registry (JAX pytree nodes, through the backend's
:meth:`~interop.Backend.is_node` and :meth:`~interop.Backend.node` hooks). Every
other non-array value is a leaf returned as it is. The kinds and the frames that
walk them are in :mod:`interop._tree.frames`; :mod:`interop._tree.rebuild` makes
the new containers, and :mod:`interop._tree.paths` the paths and errors.
"""

from __future__ import annotations

import collections
import functools
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from interop import _registry
from interop._backend import Backend, Node, is_builtin
from interop._errors import ConversionError, type_name
from interop._tree.frames import (
    _DATACLASS,
    _DICT,
    _LIST,
    _MAPPING,
    _MISSING,
    _NAMEDTUPLE,
    _NODE,
    _OTHER,
    _SEQUENCE,
    _TUPLE,
    Frame,
)

# type -> kind, for every non-array type seen. Cleared when the backends that
# register containers change (JAX imported), or their registries do (a type
# registered with PyTorch's or JAX's pytree after a walk met it), since a type may be
# a node from then on.
kinds: dict[type, int] = {}
# type -> the backend whose registry knows it (or its registration), for kind _NODE.
# Written with kinds, under _lock; a reader that finds a kind _NODE but no entry here
# (both tables cleared meanwhile by another thread) asks again (see _node_source).
_node_of: dict[type, Any] = {}
# Past this many kinds the tables start afresh: classes made on the fly (a namedtuple
# or a registered class per call, ...) must not pile up.
_MAX_KINDS = 4096
# The backends asked about nodes when kinds was filled, and the list of active
# backends they were found in.
_node_backends: tuple[Backend, ...] = ()
_synced: list[Backend] | None = None
# The nodes_version hooks of those backends that have one, and their last answers.
_versions: tuple[Callable[[], Any], ...] = ()
_seen_versions: tuple[Any, ...] = ()
_SCALARS = (str, bytes, int, float, complex, bool, type(None))
# The mapping types of the standard library that the frameworks' registries know too.
_STANDARD_MAPPINGS = frozenset(
    {collections.OrderedDict, collections.defaultdict, collections.Counter, collections.UserDict}
)


def sync(backends: list[Backend]) -> None:
    """Forget the kinds of types when the backends that register containers change.

    ``backends``: the active backends (:func:`interop._registry.active`).
    """
    global _node_backends, _synced, _versions, _seen_versions
    if backends is _synced:  # the registry's same answer as last time (see active())
        if _versions:
            seen = tuple(version() for version in _versions)
            if seen != _seen_versions:
                with _lock:
                    kinds.clear()
                    _node_of.clear()
                    _seen_versions = seen
        return
    found = tuple(b for b in backends if type(b).is_node is not Backend.is_node)
    # Backends of containers only (TensorDict) first: their types may also be in a
    # framework's registry (torch's pytree), which would rebuild them as they were.
    found = tuple(sorted(found, key=lambda b: b.arrays))
    versions = tuple(
        _asked(b, "nodes_version()", b.nodes_version)
        for b in found
        if type(b).nodes_version is not Backend.nodes_version
    )
    seen = tuple(version() for version in versions)
    with _lock:
        if found != _node_backends or seen != _seen_versions:
            kinds.clear()
            _node_of.clear()
            _node_backends = found
        _versions = versions
        _seen_versions = seen
    _synced = backends


def _node_backend(x: Any) -> Backend | None:
    # (Asked once per type: the kinds of types are cached.)
    for backend in _node_backends:
        answer = _registry.consult(backend, "is_node()", functools.partial(backend.is_node, x))
        if answer is not _registry.SKIPPED and answer:
            return backend
    return None


def _asked(backend: Backend, method: str, hook: Callable[[], Any]) -> Callable[[], Any]:
    """``hook``, a question to ``backend``; a third-party one is asked through
    :func:`interop._registry.consult` (one that raises is reported and skipped)."""
    if is_builtin(backend):
        return hook
    return lambda: _registry.consult(backend, method, hook)


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
        answer = self.flatten(x)
        if type(answer) is not tuple or len(answer) != 2:
            raise TypeError(
                f"expected the flatten function registered for `{type_name(x)}` to return a "
                f"pair (children, aux), got `{type_name(answer)}`. hint: return "
                "([child, ...], aux), with aux None where unflatten needs nothing"
            )
        children, aux = answer
        if not isinstance(children, (list, tuple)):
            # (A dict would give its keys, an array its rows, a string its characters.)
            raise TypeError(
                f"expected the flatten function registered for `{type_name(x)}` to return its "
                f"children as a list or tuple, got `{type_name(children)}`. hint: return "
                "([child, ...], aux); a single child is a list of one"
            )
        unflatten = self.unflatten
        return Node(list(children), lambda out: unflatten(aux, out), lambda i: f"[{i}]")


# type -> its registration (exact types only).
_registered: dict[type, _Registered] = {}
# Held to write _registered, kinds and _node_of, so that a type registered while
# another thread classifies it never keeps the kind it had before (a reader takes
# no lock: it reads one entry of a dict).
_lock = threading.Lock()


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
    "Containers" in docs/trees.md), and before the array protocols too: a type that
    also offers ``__array__`` (or DLPack, or the Array API) is taken apart, not
    converted whole. A type registered again takes the new functions.

    Args:
        cls: The container type (its subclasses are not included).
        flatten: ``flatten(x) -> (children, aux)``: the children to convert, in order
            (a list or tuple), and anything else ``unflatten`` needs.
        unflatten: ``unflatten(aux, children) -> container``: a new container holding
            the converted children.

    Raises:
        TypeError: ``cls`` is not a type, or is exactly ``dict``, ``list`` or ``tuple``
            (always walked as they are), or ``flatten``/``unflatten`` is not callable.
            A tree function raises it too where ``flatten`` returns anything but a pair
            whose children are a list or tuple.

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
    if cls in (dict, list, tuple):
        raise TypeError(
            f"expected a container type of your own to register, got `{cls.__name__}`, which "
            "the tree functions always walk themselves (a registration would never be used). "
            "hint: register a subclass; its objects are taken apart by your functions"
        )
    if not callable(flatten) or not callable(unflatten):
        raise TypeError(
            "expected flatten(x) -> (children, aux) and unflatten(aux, children) -> container "
            f"functions, got `{type_name(flatten)}` and `{type_name(unflatten)}`"
        )
    with _lock:
        _registered[cls] = _Registered(flatten, unflatten)
        # Classified anew on its next use, which also records the new functions as
        # its node (a walk that has already classified it keeps the old ones).
        kinds.pop(cls, None)
        leaf_backends.pop(cls, None)
        leaf_views.pop(cls, None)


def _unregister(cls: type) -> None:
    """Forget the registration of ``cls`` (for tests that register a type for a while)."""
    with _lock:
        _registered.pop(cls, None)
        kinds.pop(cls, None)
        _node_of.pop(cls, None)
        leaf_backends.pop(cls, None)
        leaf_views.pop(cls, None)


# type -> the backend that converts its objects as arrays inside a tree: the
# registry's answer, except None for a registered container, whose registration
# comes before the array protocols. The walks read these tables in place of the
# registry's own (the same one lookup per leaf), so that a registration costs the
# leaves of other types nothing; the registry clears them with its own tables.
leaf_backends: dict[type, Backend | None] = _registry.per_type_table()
# type -> its host view function (Backend.host_view_for), None for a registered
# container, as the registry's table of views.
leaf_views: dict[type, Callable[[Any], Any] | None] = _registry.per_type_table()


_T = TypeVar("_T")


def leaf_backend(cls: type) -> Backend | None:
    """The backend that converts objects of ``cls`` in a tree (``None``: not an array)."""
    since = _registry.generation()
    return _unless_registered(leaf_backends, cls, _registry.lookup(cls), since)


def leaf_view(cls: type) -> Callable[[Any], Any] | None:
    """The host view function of ``cls`` in a tree (``None``: none, or not an array)."""
    since = _registry.generation()
    return _unless_registered(leaf_views, cls, _registry.view_of(cls), since)


def _unless_registered(
    table: dict[type, _T | None], cls: type, found: _T | None, since: int
) -> _T | None:
    """``found``, or ``None`` for a registered container, recorded in ``table``.

    (Not recorded where the registry's tables were cleared since generation ``since``,
    when ``found`` was asked for: a backend registered meanwhile may answer otherwise.)
    """
    with _lock:
        if cls in _registered:
            found = None
        _registry.record(table, cls, found, since)
    return found


def classify(cls: type, x: Any) -> int:
    """The kind of ``cls`` (asked with one of its objects), in the documented precedence.

    Exact ``dict``, ``list`` and ``tuple``; types registered with
    :func:`register_container`; scalars, strings and ``None`` (leaves); namedtuples;
    ``dict`` and ``UserDict`` subclasses (those of the program's own that a
    framework's registry knows: as its nodes); other ``list`` and ``tuple`` subclasses;
    containers a framework's own registry knows (JAX and PyTorch pytree nodes,
    TensorDict); other mappings; dataclass instances. Anything else is a leaf.
    """
    node: Any = None
    backends = _node_backends
    if cls is dict:
        kind = _DICT
    elif cls is list:
        kind = _LIST
    elif cls is tuple:
        kind = _TUPLE
    elif (node := _registered.get(cls)) is not None:
        kind = _NODE
    elif issubclass(cls, _SCALARS):
        kind = _OTHER
    elif issubclass(cls, tuple) and hasattr(cls, "_fields"):
        kind = _NAMEDTUPLE
    elif issubclass(cls, (dict, collections.UserDict)):
        # A subclass of the author's own that a framework's registry knows (a Hugging
        # Face ModelOutput, whose constructor binds a dict to its first field) is
        # rebuilt by that registration; the standard ones keep their type and order.
        kind = _MAPPING
        if cls not in _STANDARD_MAPPINGS and (node := _node_backend(x)) is not None:
            kind = _NODE
    elif issubclass(cls, (list, tuple)):
        kind = _SEQUENCE
    elif (node := _node_backend(x)) is not None:
        kind = _NODE
    elif issubclass(cls, Mapping):
        kind = _MAPPING
    elif _is_dataclass(cls):
        kind = _DATACLASS
    else:
        kind = _OTHER
    with _lock:
        if cls is not dict and cls is not list and cls is not tuple:
            # Registered (again) since this thread looked: the registration wins.
            registration = _registered.get(cls)
            if registration is not None:
                kind, node = _NODE, registration
        # Cleared before the new entries are written, never between them: a kind
        # _NODE always comes with its node.
        if len(kinds) >= _MAX_KINDS:
            kinds.clear()
            _node_of.clear()
        # Not kept where the backends asked changed meanwhile (sync() in another
        # thread): the kind is asked again on the next walk.
        if _node_backends is backends:
            if kind == _NODE:
                _node_of[cls] = node
            kinds[cls] = kind
    return kind


def _node_source(x: Any) -> Any:
    """What takes ``x``, a container of kind ``_NODE``, apart: its registration or backend."""
    cls = type(x)
    found = _node_of.get(cls)
    if found is None:
        # Both tables were cleared by another thread after this walk read the kind
        # (the backends changed, or the tables overflowed): asked again, in order.
        found = _registered.get(cls) or _node_backend(x)
    if found is None:
        raise ConversionError(
            f"expected a container its framework's registry still knows, got `{type_name(x)}`, "
            "which was removed from that registry while the tree was converted. hint: "
            "register it with interop.register_container"
        )
    return found


def _is_dataclass(cls: type) -> bool:
    # No class is a dataclass before the dataclasses module is imported, and it is
    # not imported here, which keeps `import interop` short.
    module = sys.modules.get("dataclasses")
    return module is not None and bool(module.is_dataclass(cls))


def open_frame(kind: int, x: Any) -> Frame:
    """The frame that walks the container ``x`` of kind ``kind``.

    What the container's own code does to give its children (a registered
    ``flatten``, a dataclass property, a TensorDict stacking its tensors) runs here,
    and a mapping's ``items()`` and ``__getitem__`` run as the walk iterates: the
    walks name a failure of either by the container's path (see
    :func:`~interop._tree.paths.failed_between`).
    """
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
        node = _node_source(x).node(x)
        children = node.children
        return [kind, x, enumerate(children), list(children), _MISSING, False, node]
    # A copy taken at once: another thread changing the sequence meanwhile changes
    # neither the length nor the items read.
    out = list(x)
    return [kind, x, enumerate(out), out, _MISSING, False]
