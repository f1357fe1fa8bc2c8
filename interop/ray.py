"""Ray Data with any framework and exact dtypes: :func:`map_batches` and :func:`iter_batches`.

Ray Data holds its blocks as Arrow tables. Its own NumPy batches lose what Arrow
cannot say (bfloat16 and float8 come back as Python objects) and its UDFs must
hand back NumPy (a tensor that requires grad fails inside Ray). These adapters put
the library's contract at that boundary:

* :func:`map_batches` gives ``fn`` each batch as a dict of arrays of the framework
  ``to`` (zero-copy from the block's Arrow memory where the framework allows;
  Arrow memory is immutable, so a framework with writable arrays, PyTorch, gets a
  copy rather than a writable alias of it), and turns whatever ``fn`` returns (a
  nested dict of arrays of any framework, with grad, on a GPU, in bfloat16 or
  float8) into an Arrow table with :func:`interop.convert`, so that Ray stores the
  exact dtypes (as ``interop.dtype`` columns) and nested dicts (as struct columns).
* :func:`iter_batches` hands out batches as dicts of arrays of ``to`` on
  ``device``, with their exact dtypes.

Columns written this way survive ``write_parquet`` and ``read_parquet`` (see the
README's "Scale out" for the on-disk form). Importing :mod:`interop` never imports
Ray; importing this module does.

Example:
    .. code-block:: python

        import ray
        import interop.ray as iray

        ds = ray.data.range(1000)
        ds = iray.map_batches(ds, lambda b: {"y": b["id"] * 2}, to="torch")
        for batch in iray.iter_batches(ds, to="jax", batch_size=100):
            ...
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from types import GeneratorType
from typing import Any

import numpy as np
import pyarrow as pa
from ray.data.extensions import ArrowTensorType, ArrowTensorTypeV2

from interop import _convert, _tree
from interop._errors import ConversionError, InteropError, retell_policy
from interop.backends.arrow import reading as arrow_reading

__all__ = ["RayBatches", "iter_batches", "map_batches", "to_arrow_table", "to_framework"]

# Ray's own tensor column types, which its arrays convert to NumPy without a copy.
_RAY_TENSORS = (ArrowTensorType, ArrowTensorTypeV2)
_FORMAT_KEYWORDS = ("batch_format",)


# -- batches in ---------------------------------------------------------------------------


def _ray_tensor(column: Any) -> np.ndarray[Any, Any] | None:
    """A column of Ray's tensor type as NumPy: Ray's own view of one chunk, read-only.

    ``None`` for a column with nulls: Ray's conversion reads what is stored under a
    null as a value (or fails), so the column is left to :func:`interop.to_numpy`,
    which refuses it.
    """
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    if any(arrow_reading.null_count(c) for c in chunks):
        return None
    if not chunks:
        # An empty array of the type: Ray gives it the shape and dtype of its rows.
        chunks = [column.combine_chunks()]
    if len(chunks) == 1:
        out = chunks[0].to_numpy(zero_copy_only=False).view()
        out.flags.writeable = False
        return out  # type: ignore[no-any-return]
    return np.concatenate([c.to_numpy(zero_copy_only=False) for c in chunks])


def to_framework(table: Any, /, *, to: str = "numpy", device: Any = None) -> dict[str, Any]:
    """A batch as Ray hands it over (a ``pyarrow.Table``), as a dict of arrays of ``to``.

    Each column is converted exactly (its ``interop.dtype`` restored from its field
    where the reader had not registered the type); struct columns become nested
    dicts. Arrow's memory is aliased where ``to`` allows it safely.

    Raises:
        ConversionError: A column has nulls (a Ray tensor column too: Ray fills the
            rows of blocks that lack a column with nulls), is not numeric (see
            :func:`interop.to_numpy`), or is a tensor column of rows of different
            shapes (Ray's variable-shape tensors, which become Python objects). Where
            :func:`interop.to_numpy` would take a ``dtype=`` for it, the hint says
            how to convert the column with one in a function of one's own.
    """
    tree: dict[str, Any] = {}
    names = list(table.column_names)
    for name, column in zip(names, arrow_reading.columns(table), strict=True):
        if not isinstance(column, dict) and isinstance(column.type, _RAY_TENSORS):
            view = _ray_tensor(column)
            column = column if view is None else view
        tree[name] = column
    if len(tree) != len(names):
        raise ConversionError(
            f"expected a batch with unique column names, got {names}: a dict of them would lose one"
        )
    try:
        host = _tree.to_numpy_tree(tree)
    except ConversionError as exc:
        retell_policy(exc, "ray")
        raise
    if to == "numpy" and device is None:
        return host  # type: ignore[no-any-return]
    return _tree.map_leaves(host, functools.partial(_convert.convert, to=to, device=device))  # type: ignore[no-any-return]


# -- batches out --------------------------------------------------------------------------


def _columns(batch: Mapping[Any, Any], where: str) -> dict[str, Any]:
    """The columns of a dict by name: each key as ``str``, two keys of one name refused."""
    names = [str(k) for k in batch]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        keys = [k for k in batch if str(k) in twice]
        raise ConversionError(
            f"expected keys with distinct names in {where}, got {keys}: Arrow names columns "
            f"with strings, and {twice} would be one column. hint: rename the keys so that "
            "no two read the same"
        )
    pairs = zip(names, batch.items(), strict=True)
    return {n: _column(v, f"{where}[{k!r}]") for n, (k, v) in pairs}


def _column(value: Any, where: str) -> Any:
    if isinstance(value, Mapping):
        children = _columns(value, where)
        arrays = [
            c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in children.values()
        ]
        _check_lengths(dict(zip(children, arrays, strict=True)), where)
        return pa.StructArray.from_arrays(arrays, names=list(children))
    if isinstance(value, (pa.Array, pa.ChunkedArray)):
        return value
    if isinstance(value, list) or (isinstance(value, np.ndarray) and value.dtype.kind in "OSU"):
        # Text and Python objects: pyarrow's own inference, as Ray would build them.
        try:
            return pa.array(value)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ConversionError(
                f"{where}: expected a column pyarrow can build from a list, got one it "
                f"refuses ({type(exc).__name__}: {exc}). hint: return one array for the "
                "column (np.stack or torch.stack of the rows' arrays), not a list of arrays"
            ) from exc
    try:
        return _convert.convert(value, "arrow")
    except InteropError as exc:
        raise type(exc)(f"{where}: {exc}") from exc


def _check_lengths(columns: dict[str, Any], where: str) -> None:
    lengths = {name: len(c) for name, c in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ConversionError(
            f"expected columns of one length in {where}, got {lengths}. hint: every array "
            "of a batch has one row per example (its first axis); reduce scalars such as a "
            "loss to one value per row, or return them separately"
        )


def to_arrow_table(batch: Any, /) -> Any:
    """A batch (a dict of arrays of any framework, nested dicts too) as a ``pyarrow.Table``.

    Each array becomes a column with :func:`interop.convert` (``to="arrow"``): its
    first axis is the rows; exact dtypes are kept (as ``interop.dtype``), tensors
    that require grad or live on a GPU are converted as :func:`interop.to_numpy`
    converts them, and a nested dict becomes a struct column. Lists and NumPy
    arrays of text or objects are left to ``pyarrow.array``. Anything but a dict
    (a ``pyarrow.Table``, a ``DataFrame``) is returned as it is, for Ray to take.

    Raises:
        ConversionError: The arrays of the dict differ in length, or one cannot be
            an Arrow column (0-d, not numeric). The message names the array, as in
            ``output['logits']``.
    """
    if not isinstance(batch, Mapping):
        return batch
    columns = _columns(batch, "output")
    _check_lengths(columns, "output")
    return pa.table(columns)


# -- the adapters ---------------------------------------------------------------------------


def _refuse_format(kwargs: dict[str, Any], caller: str) -> None:
    for key in _FORMAT_KEYWORDS:
        if key in kwargs:
            raise TypeError(
                f"{caller}() takes no {key}: batches reach fn as dicts of arrays of the "
                "framework `to` (to='numpy' for NumPy)"
            )


def _outputs(result: Any) -> Any:
    if isinstance(result, GeneratorType):
        return (to_arrow_table(batch) for batch in result)
    return to_arrow_table(result)


class _ClassUdf:
    """A callable class of the user's, run by Ray's actors, with batches converted both ways."""

    def __init__(
        self,
        cls: type,
        to: str,
        device: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self._fn = cls(*args, **kwargs)
        self._to = to
        self._device = device

    def __call__(self, table: Any, *args: Any, **kwargs: Any) -> Any:
        batch = to_framework(table, to=self._to, device=self._device)
        return _outputs(self._fn(batch, *args, **kwargs))


def map_batches(
    ds: Any,
    fn: Callable[..., Any] | type,
    /,
    *,
    to: str = "numpy",
    device: Any = None,
    **map_batches_kwargs: Any,
) -> Any:
    """``ds.map_batches(fn, ...)`` with batches of the framework ``to``, stored exactly.

    ``fn`` receives each batch as a dict of arrays of ``to`` on ``device`` and may
    return a nested dict of arrays of any framework (with grad, on a GPU, in
    bfloat16 or float8), or a generator of such dicts; the outputs are converted
    with :func:`to_arrow_table`, so that Ray keeps their exact dtypes. Errors that
    ``fn`` raises reach the caller with ``fn``'s own message, as Ray reports them.

    Args:
        ds: A ``ray.data.Dataset``.
        fn: A function, or a callable class as Ray allows (then with
            ``concurrency=``, ``fn_constructor_args=`` and so on).
        to: The framework of the arrays ``fn`` receives (``"numpy"``, ``"torch"``,
            ``"jax"``, ``"tensorflow"``, ...).
        device: Where they are placed (``"cuda"``, ...); default: the framework's.
        map_batches_kwargs: Ray's own keywords (``batch_size``, ``concurrency``,
            ``num_gpus``, ``fn_args``, ...), passed through; not ``batch_format``.

    Returns:
        The new ``ray.data.Dataset``.

    Example:
        .. code-block:: python

            ds2 = iray.map_batches(ds, lambda b: {"y": model(b["x"])}, to="torch")
    """
    _refuse_format(map_batches_kwargs, "map_batches")
    kwargs = dict(map_batches_kwargs)
    if inspect.isclass(fn):
        args = tuple(kwargs.pop("fn_constructor_args", None) or ())
        ctor_kwargs = dict(kwargs.pop("fn_constructor_kwargs", None) or {})
        # A subclass named after the user's class, so that Ray's progress and
        # stats name the user's operator.
        udf: Any = type(fn.__name__, (_ClassUdf,), {"__qualname__": fn.__qualname__})
        kwargs["fn_constructor_args"] = (fn, to, device, args, ctor_kwargs)
    else:
        function = fn

        @functools.wraps(function)
        def udf(table: Any, *args: Any, **kw: Any) -> Any:
            return _outputs(function(to_framework(table, to=to, device=device), *args, **kw))

    return ds.map_batches(udf, batch_format="pyarrow", **kwargs)


class RayBatches:
    """The batches of a dataset, as dicts of arrays of one framework; iterable again."""

    def __init__(self, ds: Any, to: str, device: Any, kwargs: dict[str, Any]) -> None:
        self._ds = ds
        self._to = to
        self._device = device
        self._kwargs = kwargs

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for table in self._ds.iter_batches(batch_format="pyarrow", **self._kwargs):
            yield to_framework(table, to=self._to, device=self._device)

    def __repr__(self) -> str:
        return f"RayBatches(to={self._to!r}, device={self._device!r})"


def iter_batches(
    ds: Any, /, *, to: str = "numpy", device: Any = None, **iter_batches_kwargs: Any
) -> RayBatches:
    """``ds.iter_batches(...)`` as dicts of arrays of the framework ``to``, with exact dtypes.

    Blocks are fetched ahead by Ray (``prefetch_batches``, default 1), and each
    batch is converted when it is handed out: zero-copy where ``to`` can alias
    Arrow's immutable memory (NumPy gets read-only views), one copy otherwise, and
    one copy to ``device``. Iterating the result again runs the dataset again.

    Args:
        ds: A ``ray.data.Dataset``.
        to: The framework of the arrays (``"numpy"``, ``"torch"``, ``"jax"``, ...).
        device: Where they are placed (``"cuda:0"``, ...); default: the framework's.
        iter_batches_kwargs: Ray's own keywords (``batch_size``,
            ``prefetch_batches``, ``drop_last``, ...); not ``batch_format``.

    Returns:
        An iterable of batches.

    Example:
        .. code-block:: python

            for batch in iray.iter_batches(ds, to="jax", batch_size=256):
                loss = step(batch["x"], batch["y"])
    """
    _refuse_format(iter_batches_kwargs, "iter_batches")
    return RayBatches(ds, to, device, dict(iter_batches_kwargs))
