"""Nested containers (state dicts, optimizer states) flattened to dotted keys, each object once.

A pickle may hold one object under many paths: ``torch.save`` keeps shared
references, so 40 levels of ``d = {"a": d, "b": d}`` make a file of 2 KB with
2**40 paths. The walk therefore visits every container and every tensor once, under
the first path that reaches it (in the file's order); any later path to the same
object is an alias, reported and not written again. A container that contains
itself is refused, since it has no finite flattening. With ``each_path=True``
(:func:`interop.save` and :func:`interop.load`, where a tensor tied under two keys
must come back under both) every path is followed instead: an array reached again
is a leaf under each of its keys, and a container reached again is walked again;
such repeated visits are bounded by ``limits.max_arrays``, so that the 2**40 paths
above are refused after a bounded amount of work. Numbers and lists of numbers
are values, not shared objects: each occurrence is written, as an array of a dtype
that holds each number exactly, or else as an object array of the numbers
themselves (``[-1, 2**64 - 1]``, ``2**70``), which every output refuses.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from interop.cli.errors import ConvertError
from interop.cli.files.limits import Limits, check_key

__all__ = ["Flat", "flatten"]

_NUMBERS = (bool, int, float, complex, np.generic)


def _is_number_list(value: Any) -> bool:
    """Whether ``value`` is a non-empty list or tuple of numbers (betas, param ids): one array."""
    return (
        isinstance(value, (list, tuple))
        and bool(value)
        and all(isinstance(v, _NUMBERS) for v in value)
    )


def _is_integer(value: Any) -> bool:
    return isinstance(value, (int, np.integer, np.bool_))


def _integers_kept(values: list[Any], array: np.ndarray[Any, Any]) -> bool:
    """Whether each integer of ``values`` has the same value in ``array``, element by element."""
    for value, kept in zip(values, array.reshape(-1).tolist(), strict=True):
        if _is_integer(value):
            real = kept.real
            if not (math.isfinite(real) and kept.imag == 0 and int(real) == int(value)):
                return False
    return True


def _numbers(value: Any) -> np.ndarray[Any, Any]:
    """A number, or a list of numbers, as an array that holds every one exactly.

    NumPy picks a dtype that holds each number: bools, floats and complex numbers
    exactly, and integers too, unless that dtype is a floating-point one
    (integers beside floats, or int64 beside uint64: beyond 2**53 they round);
    integers beyond 64 bits give an object array. Non-negative integers are then
    given uint64; numbers that no dtype holds exactly are kept as an object
    array of themselves, which no output stores.
    """
    array = np.asarray(value)
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if array.dtype.kind not in "fc" or _integers_kept(values, array):
        return array
    if all(_is_integer(v) and 0 <= v < 2**64 for v in values):
        # NumPy gives 1 the type int64, and int64 beside uint64 float64.
        return np.array(values, dtype=np.uint64)
    return np.array(values, dtype=object)


@dataclasses.dataclass
class Flat:
    """What :func:`flatten` found.

    Attributes:
        leaves: Each tensor, NumPy array or number (as a 0-d or 1-d array), by dotted key.
        skipped: The entries that are neither (strings, ``None``, ...), as ``"key (type)"``.
        aliases: ``(key, first key)`` for each later path to an object already
            flattened; with ``each_path=True``, for each later path to an array
            only, which is then also in ``leaves`` under ``key``.
    """

    leaves: dict[str, Any] = dataclasses.field(default_factory=dict)
    skipped: list[str] = dataclasses.field(default_factory=list)
    aliases: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def _join(prefix: str | None, key: object) -> str:
    """The dotted key of ``key`` in the container at ``prefix`` (``None``: the top level).

    An empty key is a key like any other: ``{"": x}`` flattens to ``""`` and
    ``{"": {"a": x}}`` to ``".a"``, never to the name of the top level.
    """
    path = str(key) if prefix is None else f"{prefix}.{key}"
    check_key(path)
    return path


def flatten(
    obj: Any,
    root: str,
    limits: Limits,
    is_tensor: Callable[[Any], bool],
    where: str,
    *,
    each_path: bool = False,
) -> Flat:
    """Flatten ``obj`` to dotted keys; a lone tensor at the top is called ``root``.

    Keys are kept as they are, the empty key included (``{"": x}`` gives the key
    ``""``, not ``root``): the writers escape only names their format cannot hold.

    Args:
        obj: The tree.
        root: The key of ``obj`` if it is itself an array.
        limits: The bounds on depth and on the number of arrays.
        is_tensor: Whether an object is an array leaf (any other object that is
            no container, number or NumPy array is skipped).
        where: How messages name ``obj``.
        each_path: Follow every path to a shared object (an array is a leaf under
            each of its keys) instead of the first one only.

    Raises:
        ConvertError: ``obj`` nests deeper than ``limits.max_depth``, holds more than
            ``limits.max_arrays`` arrays (or, with ``each_path``, more repeated
            references to shared objects), contains itself, or has a key that
            appears twice after flattening (``{"a.b": x, "a": {"b": y}}``).
    """
    flat = Flat()
    first: dict[int, str] = {}  # id of each container or tensor -> its first path
    enclosing: set[int] = set()  # ids of the containers being walked
    repeats = 0  # with each_path: the visits of objects already seen, and of what they hold

    def leaf(key: str, value: Any) -> None:
        if key in flat.leaves:
            raise ConvertError(f"expected unique keys, got {key!r} twice after flattening")
        flat.leaves[key] = value
        limits.check_arrays(len(flat.leaves), where)

    def repeat(key: str) -> None:
        # Each path through shared containers is walked anew: without a bound, a
        # DAG of a few objects has exponentially many paths.
        nonlocal repeats
        repeats += 1
        if repeats > limits.max_arrays:
            raise ConvertError(
                f"expected at most {limits.max_arrays} repeated references to shared arrays "
                f"or containers, got more at {_short(key)!r} in {where}. hint: max_arrays "
                "raises the limit if you trust the input"
            )

    def walk(value: Any, path: str | None, depth: int, again: bool) -> None:
        key = root if path is None else path
        if again:  # inside a container reached again: all it holds is seen again
            repeat(key)
        if isinstance(value, _NUMBERS) or _is_number_list(value):
            leaf(key, _numbers(value))
            return
        is_array = is_tensor(value) or isinstance(value, np.ndarray)
        if not is_array and not isinstance(value, (Mapping, list, tuple)):
            where_skipped = "(top level)" if path is None else path
            flat.skipped.append(f"{where_skipped} ({type(value).__name__})")
            return
        if id(value) in enclosing:
            raise ConvertError(
                f"expected a tree of containers, got a {type(value).__name__} that "
                f"contains itself at {key!r}"
            )
        if id(value) in first:
            if not each_path or is_array:
                flat.aliases.append((key, first[id(value)]))
            if not each_path:
                return
            if not again:
                repeat(key)
            again = True
        else:
            first[id(value)] = key
        if is_array:
            leaf(key, value)
            return
        limits.check_depth(depth + 1, key)
        items = value.items() if isinstance(value, Mapping) else enumerate(value)
        enclosing.add(id(value))
        for k, v in items:
            walk(v, _join(path, k), depth + 1, again)
        enclosing.discard(id(value))

    walk(obj, None, 0, False)
    return flat


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
