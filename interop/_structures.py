"""Whole structures into a framework: :func:`convert_tree` and :func:`iter_convert`.

The counterparts of :func:`interop.to_numpy_tree` and :func:`interop.iter_numpy`
for code that feeds a framework: every array leaf of a structure goes through
:func:`interop.convert` with the same target, device and copy policy, and the
containers come back new, of the same types. To NumPy they are exactly
:func:`interop.to_numpy_tree` and :func:`interop.iter_numpy`, batched
device-to-host copies and prefetching included.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from interop import _registry
from interop._convert import convert
from interop._convert.targets import resolve
from interop._errors import ConversionError, retell_policy, type_name
from interop._iter import (
    Batches,
    NumpyBatches,
    NumpyBatchIterator,
    check_batches,
    iterate_source,
    source_length,
)
from interop._options import Options, for_convert, in_force
from interop._tree import Started, map_leaves, start
from interop._tree.containers import python_backend

if TYPE_CHECKING:
    from interop._backend import Backend

__all__ = ["ConvertedBatches", "convert_tree", "iter_convert"]


def convert_tree(
    tree: Any,
    /,
    to: str | None = None,
    *,
    like: Any = None,
    device: Any = None,
    copy: bool | None = None,
) -> Any:
    """Convert every array in a nested structure into one framework, keeping the structure.

    Each array leaf (a tensor of any framework, a NumPy array or scalar, an Array
    API or DLPack object, a buffer such as a ``memoryview``, an object with
    ``__array__``: what :func:`interop.to_numpy_tree` converts) gives exactly what
    :func:`interop.convert` gives for it with the same keywords, whatever the target
    and device; every other leaf (``None``, strings, Python numbers, ...) is the
    very same object. The containers are those of
    :func:`interop.to_numpy_tree`, rebuilt new: the input is never modified. Of an
    :func:`interop.options` block it follows ``copy`` and ``allow_transfer`` only,
    as :func:`interop.convert` does, to NumPy too. Sparse and ragged tensors are
    refused as :func:`interop.convert` refuses them; to NumPy,
    :func:`interop.to_numpy_tree` (and :func:`interop.iter_numpy`) take the
    ``sparse=`` and ``ragged=`` policies that convert them.

    Args:
        tree: The structure to convert.
        to: The target framework's name (``"torch"``, ``"jax"``, ``"numpy"``, ...).
        like: An array whose framework (and device) the leaves take, instead of ``to``.
        device: The target device (``"cpu"``, ``"cuda:1"``, ...).
        copy: The copy policy of :func:`interop.convert`, for every leaf.

    Returns:
        A new structure of the same shape holding arrays of the target framework.

    Raises:
        TypeError: Neither or both of ``to`` and ``like`` are given.
        InteropError: A leaf failed to convert (as :func:`interop.convert` raises).

    Example:
        >>> import numpy as np, interop
        >>> out = interop.convert_tree({"x": np.arange(2), "tag": "a"}, "numpy")
        >>> out["x"], out["tag"]
        (array([0, 1]), 'a')
    """
    target = resolve(to, like)
    _check_arguments(target, device, copy)
    if target.is_numpy and device is None:
        # Batched device-to-host copies, and the same answer per leaf: the tree walk
        # of to_numpy_tree under the options convert follows.
        try:
            out = start(tree, for_convert(copy))
        except ConversionError as exc:
            retell_policy(exc, "convert")  # (as convert tells it, for the other targets)
            raise
        return out.result() if type(out) is Started else out
    python = python_backend()

    def leaf(x: Any) -> Any:
        # The leaves to_numpy_tree converts: whatever a backend converts, but Python
        # numbers (buffers and objects that only offer __array__ included).
        backend = _registry.lookup(type(x))
        if backend is None or backend is python:
            return x
        return convert(x, to, like=like, device=device, copy=copy)

    return map_leaves(tree, leaf)


def _check_arguments(target: Backend, device: Any, copy: bool | None) -> None:
    """Raise the error of a wrong ``device`` or ``copy`` now, whatever the leaves.

    (Else it would come with the first leaf converted, named by that leaf's path,
    and never where no leaf is an array.)
    """
    for_convert(copy)
    if device is not None:
        target.parse_device(device)


class ConvertedBatches(Iterable[Any]):
    """The batches of a source, each converted into one framework as it is consumed.

    Each ``iter()`` starts a new pass over a fresh iterator of the source;
    ``len()`` is the source's length, where it has one. Each batch converts under
    the options taken when the batches were made, wherever they are consumed.
    """

    __slots__ = ("_keywords", "_options", "_source")

    def __init__(self, source: Iterable[Any], keywords: dict[str, Any], options: Options) -> None:
        self._source = source
        self._keywords = keywords
        self._options = options

    def __iter__(self) -> NumpyBatchIterator:
        # The pass of iter_numpy (closing the source when left early, going on after
        # a batch that fails), with this conversion instead of to_numpy_tree's.
        return NumpyBatchIterator(
            iterate_source(self._source), 0, self._options, "convert", self._convert
        )

    def _convert(self, batch: Any) -> Any:
        # (The options only around the conversion: a context set across a yield would
        # leak into the consumer's code.)
        with in_force(self._options):
            return convert_tree(batch, **self._keywords)

    def __len__(self) -> int:
        return source_length(self._source)

    def __repr__(self) -> str:
        return f"ConvertedBatches({type_name(self._source)}, to={self._keywords.get('to')!r})"


def iter_convert(
    iterable: Iterable[Any],
    /,
    to: str | None = None,
    *,
    like: Any = None,
    device: Any = None,
    copy: bool | None = None,
    prefetch: int = 1,
) -> Batches[Any]:
    """Wrap an iterable of batches so that each comes out converted into one framework.

    Each batch (an array, or any structure of them) is converted with
    :func:`convert_tree` when it is asked for. To NumPy (``to="numpy"``, no
    ``device``) this is :func:`interop.iter_numpy`, whose ``prefetch`` starts the
    device-to-host copies of the next batches ahead; to any other framework a batch
    is converted when it is taken, so a batch handed out never changes because a
    later one was pulled.

    Args:
        iterable: The source of batches.
        to: The target framework's name.
        like: An array whose framework (and device) the batches take, instead of ``to``.
        device: The target device.
        copy: The copy policy of :func:`interop.convert`. Of an
            :func:`interop.options` block in force at this call, ``copy`` and
            ``allow_transfer`` apply, wherever the batches are consumed.
        prefetch: For NumPy targets, as in :func:`interop.iter_numpy` (an int >= 0).

    Returns:
        An iterable of converted batches (re-iterable when the source is).

    Example:
        >>> import numpy as np, interop
        >>> [b["x"].tolist() for b in interop.iter_convert([{"x": np.arange(2)}], "numpy")]
        [[0, 1]]
    """
    target = resolve(to, like)
    _check_arguments(target, device, copy)
    check_batches(iterable, prefetch)
    if target.is_numpy and device is None:
        return NumpyBatches(iterable, prefetch, for_convert(copy), entry="convert")
    # The block's options (taken now) around each batch's conversion, and the call's
    # own copy= passed to it: a copy refusal then tells the two apart in its hint.
    keywords = {"to": to, "like": like, "device": device, "copy": copy}
    return ConvertedBatches(iterable, keywords, for_convert(None))
