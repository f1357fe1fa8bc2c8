"""Rebuilding the containers of a tree: a new one of the same class around new children.

A container is rebuilt new: never written into, whatever its class's ``__copy__``
does.
"""

from __future__ import annotations

import collections
from typing import Any

from interop._errors import ConversionError, type_name
from interop._tree.frames import (
    _DATACLASS,
    _DICT,
    _KIND,
    _LIST,
    _MAPPING,
    _MISSING,
    _NAMEDTUPLE,
    _NODE_OF,
    _OUT,
    _ROOT,
    _SEQUENCE,
    _SRC,
    _TUPLE,
    Frame,
)


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
