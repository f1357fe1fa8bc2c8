"""Paths in a tree (``tree['outputs'][2]``), and the errors that name them.

The path of a frame's child, the exceptions re-made to name where they happened
(and renamed for callers that know better names), which errors are a container's
own, containers changed by another thread, and cycles.
"""

from __future__ import annotations

from typing import Any

from interop._errors import ConversionError, InteropError, type_name
from interop._tree.frames import (
    _DATACLASS,
    _DICT,
    _KEY,
    _KIND,
    _MAPPING,
    _MISSING,
    _NAMEDTUPLE,
    _NODE,
    _NODE_OF,
    _ROOT,
    _SRC,
    Frame,
)


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
