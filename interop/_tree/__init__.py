"""Whole structures at once: :func:`to_numpy_tree`.

The walk is the library's own rather than optree's or ``jax.tree_util``'s: on the
common case, a dict of tensors, it converts the leaves of a container in one tight
loop with no Python call per leaf besides the conversion itself, and it sees the
containers users hold (dataclass instances, nodes registered with JAX rather than
with optree) without a second traversal or a new dependency. The tree benchmarks in
docs/performance.md are the measurements behind this choice.

JAX-registered pytree nodes (``register_pytree_node_class``, ``register_dataclass``,
Flax structs, ...) are taken apart one level at a time with JAX's own registry, so
only what their class declares as children is converted. Plain ``dict`` and its
subclasses are walked here even though JAX also registers them, because JAX
sorts their keys and we keep their order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from interop import _options
from interop._options import Keywords
from interop._tree.containers import register_container
from interop._tree.walk import Started, map_leaves, start

if TYPE_CHECKING:
    from typing import Unpack

__all__ = ["Started", "map_leaves", "register_container", "start", "to_numpy_tree"]


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
        dtype: Cast every array leaf to this dtype (on the device first only where
            that makes the copy smaller and gives exactly the host cast's values).
        allow_transfer: Whether device-to-host copies are allowed.
        upcast: Turn nonstandard dtypes into the nearest standard one.
        sparse: The sparse policy, as in :func:`interop.to_numpy`.
        ragged: The ragged policy, as in :func:`interop.to_numpy`.

    Returns:
        A new structure of the same shape, with NumPy arrays for array leaves.

    Raises:
        ConversionError: The structure contains itself; a container cannot be
            rebuilt with its items; or a leaf or a container's own code failed with
            an error that is neither the library's own nor a built-in one.
        InteropError: A leaf failed to convert (same class as :func:`interop.to_numpy`
            raises; a container's own code that fails, such as a registered
            ``flatten``, keeps its class too). Every error names the path of the leaf
            or container, for example ``tree['outputs'][2]``, and keeps the original
            error as ``__cause__``; a built-in class whose constructor wants more
            than a message (``UnicodeDecodeError``) has the path as a note.

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
