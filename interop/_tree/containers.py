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
from typing import Any, TypeVar

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
_MISSING: Any = object()


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
        b.nodes_version for b in found if type(b).nodes_version is not Backend.nodes_version
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
    ``dict`` and ``UserDict`` subclasses; other ``list`` and ``tuple`` subclasses;
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
        kind = _MAPPING
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
    """The frame that walks the container ``x`` of kind ``kind``.

    What the container's own code does to give its children (a registered
    ``flatten``, a dataclass property, a TensorDict stacking its tensors) runs here,
    and a mapping's ``items()`` and ``__getitem__`` run as the walk iterates: the
    walks name a failure of either by the container's path (see
    :func:`failed_between`).
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
    if kind in (_NAMEDTUPLE, _SEQUENCE):
        return _build_sequence(src, out, kind == _NAMEDTUPLE)
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
        # A constructor that takes other arguments first (a name, ...) binds the
        # items to one of them and gives back a mapping without them.
        lost = len(new) != len(out) or (isinstance(new, dict) and dict.keys(new) != out.keys())
    except Exception as exc:  # the class's own constructor and __len__: anything
        raise ConversionError(
            f"expected a mapping type that can be built from a dict, got `{type_name(src)}`, "
            f"whose constructor failed: {exc!r}. hint: convert it to a dict first, or "
            "register it with interop.register_container"
        ) from exc
    if lost:
        raise ConversionError(
            f"expected a mapping type that can be built from a dict of its items, got "
            f"`{type_name(src)}`, whose constructor, given such a dict, built a mapping "
            "without those items (it takes other arguments first?). hint: convert it to a "
            "dict first, or register it with interop.register_container"
        )
    extra = getattr(src, "__dict__", None)
    if isinstance(src, dict):
        # A dict subclass keeps its items in the dict itself, never in attributes.
        _copy_attributes(src, new)
    elif extra:
        lost_names = sorted(name for name in extra if name not in getattr(new, "__dict__", {}))
        if lost_names:
            raise ConversionError(
                f"expected a mapping that {type_name(src)}(dict) rebuilds whole, got "
                f"`{type_name(src)}` with attributes its constructor does not set: "
                f"{', '.join(lost_names)}. hint: register it with interop.register_container "
                "to rebuild it faithfully"
            )
    return new


def _build_sequence(src: Any, out: list[Any], named: bool) -> Any:
    """A new sequence of ``src``'s type holding ``out``, with ``src``'s other state.

    ``named``: ``src`` is a namedtuple, built from its fields as arguments. A
    structseq (``os.stat_result``, ``time.struct_time``) gets its hidden fields back
    as they are; a list or tuple subclass (a namedtuple's too) its attributes.
    """
    cls = type(src)
    hidden = _hidden_fields(src)
    try:
        # The class's own constructor, which may ask for more than the items.
        if hidden is not None:
            new = cls(out, hidden)  # how a structseq takes the fields beyond its items
        elif named:
            new = cls(*out)
        else:
            new = cls(out)
        # A constructor that takes other arguments first (a name, ...) binds the
        # items to one of them and gives back a sequence without them.
        lost = len(new) != len(out)
    except Exception as exc:  # the class's own constructor and __len__: anything
        raise ConversionError(
            f"expected a sequence type that can be built from its items, got "
            f"`{type_name(src)}`, whose constructor failed: {exc!r}. hint: convert it "
            "to a tuple or list first, or register it with interop.register_container"
        ) from exc
    if lost:
        raise ConversionError(
            f"expected a sequence type that can be built from its items, got "
            f"`{type_name(src)}`, whose constructor, given its {len(out)} items, built a "
            f"sequence of {len(new)} (it takes other arguments first?). hint: convert it "
            "to a tuple or list first, or register it with interop.register_container"
        )
    if hidden is not None:
        changed = [
            name for name, value in hidden.items() if getattr(new, name, _MISSING) is not value
        ]
        if changed:
            raise _hidden_lost(src, f"its constructor did not set {', '.join(changed)}")
        return new
    _copy_attributes(src, new)
    return new


def _hidden_fields(src: Any) -> dict[str, Any] | None:
    """The fields of a structseq beyond its items, by name; ``None`` for other sequences.

    A structseq (``n_fields > n_sequence_fields``) holds fields that are no items:
    ``os.stat_result.st_mtime_ns``, ``time.struct_time.tm_zone``. Its constructor
    takes them as a dict after the items, and its ``__reduce__`` gives that dict;
    anything else from ``__reduce__`` means the type cannot be rebuilt faithfully.
    """
    cls = type(src)
    n_fields = getattr(cls, "n_fields", None)
    n_items = getattr(cls, "n_sequence_fields", None)
    if type(n_fields) is not int or type(n_items) is not int or n_fields <= n_items:
        return None
    try:
        reduced = src.__reduce__()
    except Exception as exc:  # the class's own __reduce__: anything
        raise _hidden_lost(src, f"its __reduce__ failed: {exc!r}") from exc
    if (
        type(reduced) is tuple
        and len(reduced) == 2
        and reduced[0] is cls
        and type(reduced[1]) is tuple
        and len(reduced[1]) == 2
        and type(reduced[1][1]) is dict
        and len(reduced[1][1]) == n_fields - n_items
    ):
        return dict(reduced[1][1])
    raise _hidden_lost(src, "its __reduce__ does not give them as a structseq does")


def _hidden_lost(src: Any, reason: str) -> ConversionError:
    cls = type(src)
    return ConversionError(
        f"expected a sequence type that can be rebuilt with all its fields, got "
        f"`{type_name(src)}`, which holds {cls.n_fields - cls.n_sequence_fields} field(s) "
        f"beyond its {cls.n_sequence_fields} items (a structseq), and {reason}. hint: convert "
        "it to a tuple first, or register it with interop.register_container"
    )


def _copy_attributes(src: Any, new: Any) -> None:
    """Copy the attributes of ``src`` that ``new`` (just built) lacks: ``__dict__`` and slots.

    For a ``dict``, ``list`` or ``tuple`` subclass, which keeps its items in the
    object itself, never in attributes: what the constructor set is kept.
    """
    extra = getattr(src, "__dict__", None)
    if extra:
        for name, value in extra.items():
            new.__dict__.setdefault(name, value)
    for name in _slot_names(type(src)):
        value = getattr(src, name, _MISSING)
        if value is not _MISSING and getattr(new, name, _MISSING) is _MISSING:
            object.__setattr__(new, name, value)


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

    It is of the same class when that class is the library's own or a built-in one,
    so that ``except TransferError`` still catches it, and reads ``where: message``;
    a built-in class whose constructor wants more than a message
    (``UnicodeDecodeError``) is made again from ``exc``'s own arguments, with
    ``where`` as a note. Any other class becomes a :class:`ConversionError`. The
    original is its ``__cause__`` (set by the caller's ``raise ... from``), and
    ``where`` its ``__interop_path__``.
    """
    cls = type(exc)
    new: Exception | None = None
    if issubclass(cls, InteropError) or cls.__module__ == "builtins":
        new = _remade(cls, (f"{where}: {exc}",))
        if new is None:
            new = _remade(cls, exc.args)
            if new is not None:
                new.add_note(f"at {where}")
    if new is None:
        new = ConversionError(f"{where}: `{type_name(exc)}`: {exc}")
    elif isinstance(new, ConversionError):
        new.keyword = getattr(exc, "keyword", None)  # (see retell_policy)
    new.__interop_path__ = where  # type: ignore[attr-defined]
    return new


def relocated(exc: Exception, old: str, new: str) -> Exception | None:
    """``exc``, made by :func:`located` or a cycle check, with the path prefix ``old`` as ``new``.

    For the callers that know better names for the tree's top levels
    (:func:`interop.numpy_function`'s arguments). ``None`` where ``exc`` does not
    carry a path that starts with ``old``.
    """
    path = getattr(exc, "__interop_path__", None)
    if not isinstance(path, str) or not path.startswith(old):
        return None
    args = exc.args
    # Only the path itself is renamed: "tree" may stand elsewhere in the message too.
    renamed = new + path[len(old) :]
    if len(args) == 1 and isinstance(args[0], str) and path in args[0]:
        made = _remade(type(exc), (_renamed(args[0], path, renamed, old, new),))
    else:  # the path is in a note (see located)
        made = _remade(type(exc), args)
        if made is not None:
            for note in getattr(exc, "__notes__", ()):
                made.add_note(_renamed(note, path, renamed, old, new))
    if made is not None:
        made.__interop_path__ = renamed  # type: ignore[attr-defined]
    return made


def _renamed(message: str, path: str, renamed: str, old: str, new: str) -> str:
    """``message`` with ``path`` renamed, and other paths under ``old`` (an ancestor's)."""
    message = message.replace(path, renamed, 1)
    return message.replace(f" {old}[", f" {new}[").replace(f" {old}.", f" {new}.")


def _remade(cls: type[Exception], args: tuple[Any, ...]) -> Exception | None:
    """``cls(*args)``, or ``None`` where the class's constructor refuses those arguments."""
    try:
        return cls(*args)
    except Exception:  # a class whose constructor wants other arguments: anything
        return None


def failed_between(out: Any, key: Any) -> bool:
    """Whether an error met walking a container is the container's, not a child's.

    ``out``: the converted children so far; ``key``: that of the child last taken
    (``_MISSING`` before the first). A child's failure leaves its key out of ``out``
    (a child is written there only once converted), so an error with ``key`` already
    in ``out`` came from the container's own iteration between two children (a
    mapping's ``items()`` calling its ``__getitem__``); only a mapping's or a
    dataclass's ``out`` is a dict, and only a mapping runs code of its own as it is
    iterated. Read on the error path only: the walks pay nothing per child for it.
    """
    if key is _MISSING:
        return True
    return type(out) is dict and any(k is key for k in out)


def container_error(container: Any, exc: Exception) -> Exception:
    """The error to report for ``exc``, raised while ``container`` was opened or rebuilt."""
    if isinstance(exc, RuntimeError):
        changed = changed_meanwhile(container, exc)
        if changed is not None:
            return changed
    return exc


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
