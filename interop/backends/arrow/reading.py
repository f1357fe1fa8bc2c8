"""Reading Arrow memory as NumPy, and the ``interop.dtype`` extension type.

Imported only once ``pyarrow`` is (by :class:`~interop.backends.arrow.ArrowBackend`
and the hook that registers the extension type when ``pyarrow`` is imported);
importing it registers the type.

:func:`layout_of` tells, once per Arrow type, where the values of an array of that
type lie and what NumPy dtype they have; :func:`values` returns them as a read-only
NumPy view (Arrow memory is immutable), ignoring validity, which :func:`null_mask`
reads separately. :func:`columns` gives the columns of a table, each with its exact
dtype restored.

The extension type (:class:`DtypeType`, with its arrays and scalars) is defined here
rather than with its encoding (:mod:`interop.backends.arrow.encoding`): its arrays
read themselves through :func:`layout_of` and :func:`values`, which know the type,
so neither module could import the other.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from typing import Any

import numpy as np
import pyarrow as pa

from interop._errors import ConversionError
from interop.backends.arrow.encoding import EXTENSION_NAME, _bits, dtype_name, parse_metadata

__all__ = [
    "DtypeArray",
    "DtypeType",
    "Layout",
    "columns",
    "decoded",
    "empty",
    "hashable",
    "layout_of",
    "null_count",
    "null_mask",
    "register",
    "storage",
    "values",
]

_NAME = EXTENSION_NAME.encode()

# Arrow's fixed-width numeric types and the NumPy dtypes of their values.
_NUMERIC: dict[pa.DataType, np.dtype[Any]] = {
    pa.int8(): np.dtype(np.int8),
    pa.int16(): np.dtype(np.int16),
    pa.int32(): np.dtype(np.int32),
    pa.int64(): np.dtype(np.int64),
    pa.uint8(): np.dtype(np.uint8),
    pa.uint16(): np.dtype(np.uint16),
    pa.uint32(): np.dtype(np.uint32),
    pa.uint64(): np.dtype(np.uint64),
    pa.float16(): np.dtype(np.float16),
    pa.float32(): np.dtype(np.float32),
    pa.float64(): np.dtype(np.float64),
}
# The storage of an encoded dtype, by its width in bytes.
_STORAGE = {1: pa.uint8(), 2: pa.uint16(), 4: pa.uint32(), 8: pa.uint64(), 16: pa.binary(16)}


# -- the extension type -----------------------------------------------------------------


class DtypeType(pa.ExtensionType):  # type: ignore[misc]
    """Values of an exact NumPy or ``ml_dtypes`` dtype that Arrow lacks, as same-width uints.

    ``shape`` is ``None`` for a column of single values, or the shape of each row's
    tensor (stored as a fixed-size list of ``prod(shape)`` values, in C order).
    """

    def __init__(self, dtype: np.dtype[Any], shape: tuple[int, ...] | None = None) -> None:
        self.dtype = dtype
        self.shape = shape
        storage = _STORAGE[dtype.itemsize]
        if shape is not None:
            storage = pa.list_(storage, math.prod(shape))
        super().__init__(storage, EXTENSION_NAME)

    # Two types of the same storage (bfloat16 and float16 bits, say) differ: equality
    # is by dtype and shape (pyarrow's own compares the storage only, and Arrow's
    # C++ asks this method when it compares types).
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DtypeType):
            return NotImplemented
        return self.dtype == other.dtype and self.shape == other.shape

    def __hash__(self) -> int:
        return hash((EXTENSION_NAME, self.dtype.name, self.shape))

    def __arrow_ext_serialize__(self) -> bytes:
        meta: dict[str, Any] = {"dtype": dtype_name(self.dtype)}
        if self.shape is not None:
            meta["shape"] = list(self.shape)
        return json.dumps(meta, separators=(",", ":")).encode()

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: pa.DataType, serialized: bytes) -> DtypeType:
        # The metadata comes from files and other processes: it is parsed as JSON,
        # never unpickled, and checked against the storage it describes.
        dtype, shape = parse_metadata(serialized)
        made = cls(dtype, shape)
        if made.storage_type != storage_type:
            raise ValueError(
                f"expected {made.storage_type} storage for {EXTENSION_NAME} "
                f"{serialized.decode(errors='replace')}, got {storage_type}"
            )
        return made

    def __arrow_ext_class__(self) -> type[pa.ExtensionArray]:
        return DtypeArray

    def __arrow_ext_scalar_class__(self) -> type[pa.ExtensionScalar]:
        return DtypeScalar


class DtypeArray(pa.ExtensionArray):  # type: ignore[misc]
    """An array of :class:`DtypeType`: its ``to_numpy`` gives the exact dtype, not the integers."""

    def to_numpy(self, zero_copy_only: bool = True, writable: bool = False) -> Any:
        """The values as NumPy, of the recorded dtype (``(len, *shape)`` for tensors).

        Nulls have no value of an exact dtype: an array with nulls raises
        ``pyarrow.ArrowInvalid``.
        """
        if null_count(self):
            raise pa.ArrowInvalid(
                f"expected no nulls in an {EXTENSION_NAME} array of {self.type.dtype}, got "
                f"{null_count(self)}. hint: fill them first, with fill_null on the storage"
            )
        out = values(self, layout_of(self.type))
        if writable:
            return np.array(out, copy=True)
        return out


class DtypeScalar(pa.ExtensionScalar):  # type: ignore[misc]
    """One value of a :class:`DtypeType` array."""

    def as_py(self, *args: Any, **kwargs: Any) -> Any:
        """The value as NumPy: a scalar of the recorded dtype, or an array for a tensor row."""
        if not self.is_valid:
            return None
        ty: DtypeType = self.type
        one = pa.ExtensionArray.from_storage(ty, pa.array([self.value.as_py()], ty.storage_type))
        return values(one, layout_of(ty))[0]


def register() -> None:
    """Register :class:`DtypeType` with pyarrow, so that readers rebuild it.

    Runs when this module is imported (once ``pyarrow`` is, see
    :func:`interop.backends.arrow.on_import`); again only after the type was
    unregistered.
    """
    # Already registered: by this module before it was reloaded.
    with contextlib.suppress(pa.ArrowKeyError):
        pa.register_extension_type(DtypeType(np.dtype(np.complex64)))


# -- reading -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where the values of an Arrow type lie, and what they are in NumPy.

    Attributes:
        kind: ``"values"``: fixed-width values that NumPy views without a copy;
            ``"bits"``: booleans packed into bits; ``"pyarrow"``: anything else
            (strings, dates, decimals, lists, ...), which pyarrow's own
            ``to_numpy`` converts into a new array; ``"extension"``: an extension
            type of another library whose arrays convert themselves (their class
            has a ``to_numpy`` of its own); ``"union"``: a union, which pyarrow
            converts to no NumPy array.
        dtype: The dtype of the result: for ``"pyarrow"``, the one pyarrow's
            conversion gives (``object`` for strings, lists, decimals, times, ...;
            ``datetime64`` for dates; the values' dtype for dictionary and run-end
            encoded arrays). ``None`` where only the conversion tells.
        storage: The dtype of the stored values (``uint16`` for bfloat16, ...).
        shape: The shape of each row as stored, in row-major order (``()`` for
            single values).
        axes: The transposition from the stored to the logical order of a tensor
            whose type has a permutation, batch axis included; ``None`` for none.
        tensor: Whether rows are tensors stored as fixed-size lists.
        numbers: For a ``"pyarrow"`` layout of Python objects, whether NumPy can
            cast them into numbers (text and decimals, where they spell one);
            ``False`` for objects that are never numbers (lists, structs, maps,
            times, intervals, nulls).
        raw: For a ``"pyarrow"`` layout of Python objects, whether NumPy can cast
            them into raw bytes (``np.void``): the values of binary columns, and the
            arrays of list rows into raw bytes of a size (not ``np.void`` itself, nor
            a field); never text, decimals, structs, maps, times, intervals or nulls.
        arrays: Whether the rows are arrays (list columns converted by pyarrow).
    """

    kind: str
    dtype: np.dtype[Any] | None
    storage: np.dtype[Any] | None = None
    shape: tuple[int, ...] = ()
    axes: tuple[int, ...] | None = None
    tensor: bool = False
    numbers: bool = True
    raw: bool = False
    arrays: bool = False


_PYARROW = Layout("pyarrow", None, raw=True)  # (an extension's values: unknown)
_TEXT = Layout("pyarrow", np.dtype(object))
_BINARY = Layout("pyarrow", np.dtype(object), raw=True)
_OBJECTS = Layout("pyarrow", np.dtype(object), numbers=False)
_LISTS = Layout("pyarrow", np.dtype(object), numbers=False, raw=True, arrays=True)
_EXTENSION = Layout("extension", None)
_UNION = Layout("union", None)
_BITS = Layout("bits", np.dtype(np.bool_), np.dtype(np.bool_))
# Arrow type -> its Layout; a few dozen types in a process.
_layouts: dict[pa.DataType, Layout] = {}


def hashable(arrow_type: pa.DataType) -> bool:
    """Whether ``arrow_type`` can key a cache.

    pyarrow sets ``ExtensionType.__hash__`` to ``None``: an extension type written
    as pyarrow documents them, without a ``__hash__`` of its own, is unhashable.
    """
    return type(arrow_type).__hash__ is not None


def layout_of(arrow_type: pa.DataType) -> Layout:
    """The :class:`Layout` of arrays of ``arrow_type`` (cached per hashable type)."""
    if not hashable(arrow_type):
        return _layout(arrow_type)
    found = _layouts.get(arrow_type)
    if found is None:
        found = _layout(arrow_type)
        if len(_layouts) > 1024:
            _layouts.clear()
        _layouts[arrow_type] = found
    return found


def _layout_of_dtype(ty: DtypeType) -> Layout:
    return Layout(
        "values",
        ty.dtype,
        _bits(ty.dtype),
        () if ty.shape is None else ty.shape,
        tensor=ty.shape is not None,
    )


def _scalar_layout(arrow_type: pa.DataType) -> Layout:
    """The layout of single values of ``arrow_type`` (the items of a tensor, say)."""
    dtype = _NUMERIC.get(arrow_type)
    if dtype is not None:
        return Layout("values", dtype, dtype)
    if pa.types.is_boolean(arrow_type):
        return _BITS
    if pa.types.is_timestamp(arrow_type) or pa.types.is_duration(arrow_type):
        kind = "M" if pa.types.is_timestamp(arrow_type) else "m"
        dtype = np.dtype(f"{kind}8[{arrow_type.unit}]")
        return Layout("values", dtype, dtype)
    if isinstance(arrow_type, DtypeType) and arrow_type.shape is None:
        return _layout_of_dtype(arrow_type)
    return _converted(arrow_type)


def _converted(arrow_type: pa.DataType) -> Layout:
    """The layout of a type that pyarrow's own ``to_numpy`` converts into a new array."""
    if pa.types.is_union(arrow_type):
        return _UNION
    if pa.types.is_date32(arrow_type):
        return Layout("pyarrow", np.dtype("datetime64[D]"))
    if pa.types.is_date64(arrow_type):
        return Layout("pyarrow", np.dtype("datetime64[ms]"))
    if pa.types.is_dictionary(arrow_type) or pa.types.is_run_end_encoded(arrow_type):
        # Decoded into an array of the values' type.
        value_type = arrow_type.value_type
        if isinstance(value_type, pa.BaseExtensionType):
            return _PYARROW  # (what pyarrow makes of them depends on the extension)
        inner = _scalar_layout(value_type)
        if inner.kind == "union":
            return inner
        return Layout("pyarrow", inner.dtype, numbers=inner.numbers, raw=inner.raw)
    if _is_binary(arrow_type):
        return _BINARY
    if _is_text(arrow_type):
        return _TEXT
    return _LISTS if _is_list(arrow_type) else _OBJECTS


# The kinds of Arrow types pyarrow converts into Python objects, by the names of their
# pyarrow.types predicates.
_BINARY_TYPES = ("is_binary", "is_large_binary", "is_binary_view", "is_fixed_size_binary")
_LIST_TYPES = (
    "is_list",
    "is_large_list",
    "is_fixed_size_list",
    "is_list_view",
    "is_large_list_view",
)
_TEXT_TYPES = ("is_string", "is_large_string", "is_string_view", "is_decimal")


def _is_one_of(arrow_type: pa.DataType, predicates: tuple[str, ...]) -> bool:
    """Whether one of the ``pyarrow.types`` ``predicates`` holds for ``arrow_type``."""
    types = pa.types
    return any(getattr(types, name)(arrow_type) for name in predicates)


def _is_binary(arrow_type: pa.DataType) -> bool:
    """Whether pyarrow converts values of ``arrow_type`` into ``bytes`` objects."""
    return _is_one_of(arrow_type, _BINARY_TYPES)


def _is_list(arrow_type: pa.DataType) -> bool:
    """Whether pyarrow converts values of ``arrow_type`` into arrays (one per row)."""
    return _is_one_of(arrow_type, _LIST_TYPES)


def _is_text(arrow_type: pa.DataType) -> bool:
    """Whether pyarrow converts values of ``arrow_type`` into text or decimals.

    Objects that may spell numbers, as bytes may (see :func:`_is_binary`, asked first).
    """
    return _is_one_of(arrow_type, _TEXT_TYPES)


def _layout(arrow_type: pa.DataType) -> Layout:
    if isinstance(arrow_type, DtypeType):
        return _layout_of_dtype(arrow_type)
    if isinstance(arrow_type, pa.FixedShapeTensorType):
        item = _scalar_layout(arrow_type.value_type)
        if item.kind not in ("values", "bits"):
            return _EXTENSION
        # `shape` is the stored (physical) shape; logical axis i is stored axis
        # perm[i] (the canonical extension's definition, as pyarrow's own
        # to_numpy_ndarray reads it).
        shape = tuple(int(n) for n in arrow_type.shape)
        perm = arrow_type.permutation
        axes = None
        if perm is not None and list(perm) != list(range(len(shape))):
            axes = (0, *(1 + int(p) for p in perm))
        return Layout(item.kind, item.dtype, item.storage, shape, axes, tensor=True)
    if isinstance(arrow_type, pa.BaseExtensionType):
        if arrow_type.__arrow_ext_class__().to_numpy is pa.Array.to_numpy:
            # pyarrow's own conversion of such an array is its storage's.
            return _scalar_layout(arrow_type.storage_type)
        return _EXTENSION
    return _scalar_layout(arrow_type)


def _flat(arr: pa.Array, dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    """The fixed-width values of the non-nested ``arr`` as a read-only view (validity ignored).

    Read through a read-only export of the buffer: an Arrow buffer exports itself as
    writable, and NumPy lets anyone make a view of a writable export writable again.
    """
    n = len(arr)
    buffer = arr.buffers()[1]
    if n == 0 or buffer is None:
        out = np.empty(0, dtype)
    else:
        readonly = memoryview(buffer).toreadonly()
        out = np.frombuffer(readonly, dtype, n, arr.offset * dtype.itemsize)
    out.flags.writeable = False
    return out


def _flat_bits(arr: pa.Array) -> np.ndarray[Any, Any]:
    """The booleans of the non-nested ``arr``, unpacked into a new array (validity ignored)."""
    n = len(arr)
    buffer = arr.buffers()[1]
    if n == 0 or buffer is None:
        return np.zeros(0, np.bool_)
    first = arr.offset
    raw = np.frombuffer(buffer, np.uint8, (first + n + 7) // 8 - first // 8, first // 8)
    bits = np.unpackbits(raw, bitorder="little")[first % 8 : first % 8 + n]
    return bits.view(np.bool_)


def _storage(arr: pa.Array) -> pa.Array:
    return arr.storage if isinstance(arr, pa.ExtensionArray) else arr


def storage(arr: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """``arr`` without its extension type: the storage of each chunk; others as they are.

    An extension array without a ``to_numpy`` of its own converts as its storage
    does, so its storage is what is converted: pyarrow's conversion of such an
    ``ExtensionArray`` itself takes another path (for dictionary storage, one
    ``dict`` of the indices and the dictionary), unlike that of a ``ChunkedArray``.
    """
    if isinstance(arr, pa.ChunkedArray):
        ty = arr.type
        if not isinstance(ty, pa.BaseExtensionType):
            return arr
        return pa.chunked_array([c.storage for c in arr.chunks], ty.storage_type)
    return _storage(arr)


def values(arr: pa.Array, layout: Layout) -> np.ndarray[Any, Any]:
    """The values of one (non-chunked) array as NumPy, of shape ``(len, *layout.shape)``.

    A read-only view of the Arrow buffers for ``"values"`` layouts, a new array for
    ``"bits"``; validity is ignored (see :func:`null_mask`).
    """
    assert layout.dtype is not None and layout.storage is not None
    storage = _storage(arr)
    if layout.tensor:
        size = math.prod(layout.shape)
        child = _storage(storage.values)
        start = storage.offset * size
        flat = _flat_bits(child) if layout.kind == "bits" else _flat(child, layout.storage)
        flat = flat[start : start + len(storage) * size]
        out = flat.reshape((len(storage), *layout.shape))
        if layout.axes is not None:
            out = out.transpose(layout.axes)
    elif layout.kind == "bits":
        out = _flat_bits(storage)
    else:  # fixed_size_binary(16) too: a buffer of 16-byte values, like a primitive array
        out = _flat(storage, layout.storage)
    if out.dtype != layout.dtype:
        out = out.view(layout.dtype)
    return out


def empty(layout: Layout, dtype: np.dtype[Any] | None = None) -> np.ndarray[Any, Any]:
    """No rows of ``layout``: what :func:`values` gives for a column without chunks."""
    out = np.empty((0, *layout.shape), layout.dtype if dtype is None else dtype)
    return out if layout.axes is None else out.transpose(layout.axes)


def null_count(arr: pa.Array) -> int:
    """The rows of ``arr`` that hold a null: null rows, and tensors with a null item.

    The rows of a dictionary or run-end encoded array are null also where they
    point to a null value, which its own ``null_count`` leaves out.
    """
    count: int = arr.null_count
    storage = _storage(arr)
    ty = storage.type
    if pa.types.is_fixed_size_list(ty):
        child = storage.values
        if child.null_count:
            size = ty.list_size
            part = child.slice(storage.offset * size, len(storage) * size)
            if part.null_count:
                items = _is_null(part).reshape(len(storage), size).any(axis=1)
                count = int(np.count_nonzero(items | _is_null(storage)))
    elif (pa.types.is_dictionary(ty) and storage.dictionary.null_count) or (
        pa.types.is_run_end_encoded(ty) and storage.values.null_count
    ):
        count = len(storage) - storage.is_valid().true_count
    return count


def _is_null(arr: pa.Array) -> np.ndarray[Any, Any]:
    """Where ``arr``'s rows are null, as NumPy booleans."""
    return np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=np.bool_)


def null_mask(arr: pa.Array, layout: Layout) -> np.ndarray[Any, Any]:
    """Where ``arr`` (one chunk) has nulls, broadcast to the shape of :func:`values`."""
    rows = _is_null(arr)
    shape = (len(arr), *layout.shape)
    mask = np.broadcast_to(rows.reshape((-1,) + (1,) * len(layout.shape)), shape).copy()
    storage = _storage(arr)
    if layout.tensor and storage.values.null_count:
        size = math.prod(layout.shape)
        part = storage.values.slice(storage.offset * size, len(storage) * size)
        mask |= _is_null(part).reshape(shape)
    if layout.axes is not None:
        mask = mask.transpose(layout.axes)
    return mask


def decoded(arr: pa.Array) -> pa.Array:
    """A dictionary or run-end encoded ``arr`` as a plain array of its values; others as they are.

    Null rows stay null, with the values' own type (pyarrow's conversion of an
    encoded array with nulls gives floats with NaN in their place instead). An
    extension array is looked through to its storage.
    """
    arr = _storage(arr)
    ty = arr.type
    if pa.types.is_dictionary(ty):
        return arr.dictionary_decode()
    if pa.types.is_run_end_encoded(ty):
        # Row i holds the value of the first run that ends after it.
        ends = np.asarray(arr.run_ends.to_numpy(zero_copy_only=False))
        rows = np.arange(arr.offset, arr.offset + len(arr))
        return arr.values.take(pa.array(np.searchsorted(ends, rows, side="right")))
    return arr


def columns(table: pa.Table | pa.RecordBatch) -> list[Any]:
    """The columns of ``table``, each with its exact dtype restored from its field.

    A reader that had not registered ``interop.dtype`` (Ray's read tasks, another
    program) gives its storage, with the type's name and metadata on the field:
    such a column is rewrapped in the extension type, without a copy. A struct
    column becomes a ``dict`` of its fields' columns, restored the same way.
    """
    return [_restored(f, c) for f, c in zip(table.schema, table.columns, strict=True)]


def _restored(field: pa.Field, column: Any) -> Any:
    ty = field.type
    if pa.types.is_struct(ty):
        names = [ty.field(i).name for i in range(ty.num_fields)]
        if len(set(names)) != len(names):
            raise ConversionError(
                f"expected a struct column with unique field names, got {field.name!r} with "
                f"fields {names}: a dict of them would lose one"
            )
        # flatten() takes the struct's offset and its null rows into account.
        children = column.flatten()
        return {
            n: _restored(ty.field(i), c)
            for i, (n, c) in enumerate(zip(names, children, strict=True))
        }
    meta = field.metadata or {}
    if meta.get(b"ARROW:extension:name") != _NAME or isinstance(ty, DtypeType):
        return column
    try:
        restored = DtypeType.__arrow_ext_deserialize__(
            ty, meta.get(b"ARROW:extension:metadata", b"")
        )
    except ValueError as exc:
        raise ConversionError(
            f"expected {EXTENSION_NAME} metadata that fits column {field.name!r}, got: {exc}. "
            f"hint: the file was not written by interop, or was changed since; drop the "
            f"field's ARROW:extension:* metadata to read the stored integers"
        ) from exc
    if isinstance(column, pa.ChunkedArray):
        chunks = [pa.ExtensionArray.from_storage(restored, c) for c in column.chunks]
        return pa.chunked_array(chunks, restored)
    return pa.ExtensionArray.from_storage(restored, column)


# Registered as soon as this module exists: it is imported only once pyarrow is.
register()
