"""Parquet (``.parquet``) and Arrow IPC (``.arrow``, ``.feather``) files of tensors.

Written as one table of one row: each tensor is a column of that name, holding the
tensor as its single row (a canonical ``arrow.fixed_shape_tensor`` of the tensor's
shape, or a plain value for a 0-d array), with exact dtypes that Arrow lacks stored
as ``interop.dtype`` (see :mod:`interop.backends.arrow.encoding`). The schema's
metadata key ``interop.layout`` says ``"one tensor per column"``; reading such a
file gives back each tensor with its own shape.

Any other Parquet or Arrow file (a table of rows, as Ray Data, Spark or pandas
write) is read as one array per column, rows first: a numeric column of ``n`` rows
is an array of shape ``(n,)``, a tensor column one of ``(n, *shape)``. Columns of
other types (strings, dates, nested lists) are skipped and listed.

Reading is bounded and checked like the other formats: each column's shape and
dtype come from the schema and the row count (from the metadata: a Parquet
footer, the headers of IPC record batches) before any data is read, a file of one
tensor per column with other than one row is refused unread, every table
is validated in full when loaded (an IPC file is memory-mapped, and its buffers
must lie within the file), and nothing is ever unpickled.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

import interop
from interop.cli.errors import ConvertError, quote, shown, untrusted
from interop.cli.files.entry import Contents, Entry
from interop.cli.files.limits import Limits, check_key

__all__ = [
    "LAYOUT_KEY",
    "ONE_TENSOR_PER_COLUMN",
    "arrow_size",
    "read_arrow",
    "require",
    "write_arrow",
    "write_parquet",
]

#: The schema metadata key, and its value, of a file of one tensor per column.
LAYOUT_KEY = b"interop.layout"
ONE_TENSOR_PER_COLUMN = b"one tensor per column"
# Over-estimates of what the formats add per column and per file (schema, footer,
# page headers, padding to 64 bytes), and per byte of data (Parquet page headers).
_PER_COLUMN = 2048
_PER_FILE = 4096
_PAGE_SHARE = 1 / 4096


def _pyarrow(path: Path) -> Any:
    try:
        import pyarrow
    except ImportError as exc:
        raise ConvertError(
            f"expected pyarrow to read or write {shown(path)}, got no pyarrow module. hint: "
            "pip install pyarrow"
        ) from exc
    return pyarrow


def _parquet(path: Path) -> Any:
    """``pyarrow.parquet``: a submodule that ``import pyarrow`` leaves out, and some builds lack."""
    _pyarrow(path)
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ConvertError(
            f"expected pyarrow with Parquet support to read or write {shown(path)}, got "
            f"none ({quote(exc)}). hint: pip install pyarrow"
        ) from exc
    return pq


def require(path: Path) -> None:
    """Refuse the Parquet or Arrow file ``path`` unless pyarrow is there to write it.

    Asked before anything is read or written, so that a missing optional
    dependency is one line, not a failure halfway.
    """
    if path.suffix.lower() == ".parquet":
        _parquet(path)
    else:
        _pyarrow(path)


# -- reading --------------------------------------------------------------------------------------


def _describe(
    pa: Any, field: Any, rows: int, per_column: bool
) -> tuple[tuple[int, ...], np.dtype[Any] | None]:
    """The shape and dtype of ``field``'s column; dtype ``None`` for a column that is no array.

    Asked of an empty column of the field's type, so that no data is read.
    """
    empty = pa.Table.from_arrays([_empty(pa, field.type)], schema=pa.schema([field]))
    try:
        plan = interop.explain(empty.column(0))
    except interop.ConversionError:
        # The documented answer for a column of Python objects (strings, lists,
        # decimals, unions, ...): no NumPy array of numbers holds it.
        return (), None
    if plan.dtype is None or plan.dtype.hasobject:
        return (), None
    # The tree of the table, not the column alone: a column read without the
    # interop.dtype type registered is restored from the metadata of its field.
    column = interop.to_numpy_tree(empty)[field.name]
    row_shape = tuple(column.shape[1:])
    return (row_shape if per_column else (rows, *row_shape)), column.dtype


def _hint(exc: interop.InteropError) -> str:
    """What to do about ``exc``, the refusal of a column that its schema let through.

    The refusal's own hint names Python calls and a ``dtype=`` the command line
    does not take; the column's nulls (which only its data shows) ask for one.
    """
    if isinstance(exc, interop.ConversionError) and exc.keyword == "dtype":
        return (
            "the command line takes no dtype= for nulls: fill them first "
            "(pyarrow.compute.fill_null) and write the file again, or convert the column "
            "in Python with interop.to_numpy(column, dtype=np.float64) for NaN in their place"
        )
    return "read the column with pyarrow and convert it with interop.to_numpy for the details"


def _empty(pa: Any, arrow_type: Any) -> Any:
    """An empty array of ``arrow_type`` (``Schema.empty_table`` refuses some extension types)."""
    if isinstance(arrow_type, pa.BaseExtensionType):
        return pa.ExtensionArray.from_storage(arrow_type, _empty(pa, arrow_type.storage_type))
    return pa.array([], type=arrow_type)


def _load(
    read: Callable[[str], Any], name: str, per_column: bool, what: str
) -> np.ndarray[Any, Any]:
    with untrusted(f"cannot read column {name!r} of {what}"):
        table = read(name)
        table.validate(full=True)
    try:
        array: np.ndarray[Any, Any] = interop.to_numpy_tree(table)[name]
    except interop.InteropError as exc:
        raise ConvertError(f"cannot convert {name!r}: {quote(exc)} hint: {_hint(exc)}") from exc
    if per_column:
        if len(array) != 1:
            raise ConvertError(
                f"expected one row in column {name!r} of {what}, a file of one tensor per "
                f"column, got {len(array)}"
            )
        return array[0]  # type: ignore[no-any-return]
    return array


def read_arrow(path: Path, fmt: str, limits: Limits, closers: list[Callable[[], None]]) -> Contents:
    """The arrays of the Parquet (``fmt="parquet"``) or Arrow IPC file ``path``."""
    pa = _pyarrow(path)
    where = shown(path)
    read: Callable[[str], Any]
    if fmt == "parquet":
        pq = _parquet(path)
        with untrusted(f"cannot read {where} as a Parquet file"):
            pf = pq.ParquetFile(path, memory_map=True)
            schema, rows = pf.schema_arrow, pf.metadata.num_rows
        closers.append(pf.close)
        read = functools.partial(_read_parquet, pf)
    else:
        with untrusted(f"cannot read {where} as an Arrow IPC file"):
            source = pa.memory_map(str(path), "r")
            closers.append(source.close)
            reader = pa.ipc.open_file(source)
            schema = reader.schema
            rows = _ipc_rows(reader, path)
        read = functools.partial(_read_ipc, functools.cache(reader.read_all))
    names = list(schema.names)
    limits.check_arrays(len(names), where)
    if len(set(names)) != len(names):
        raise ConvertError(f"expected unique column names in {where}, got one twice")
    per_column = (schema.metadata or {}).get(LAYOUT_KEY) == ONE_TENSOR_PER_COLUMN
    if per_column and rows != 1:
        # The shapes below are of one row: refused now, before a compressed column
        # of many rows is expanded past the limits checked against those shapes.
        raise ConvertError(
            f"expected one row in {where}, a file of one tensor per column, got {rows}. "
            "hint: the file is damaged, or its schema metadata names a layout it lacks"
        )
    entries, skipped = [], []
    for field in schema:
        check_key(field.name)
        with untrusted(f"cannot read the type of column {field.name!r} of {where}"):
            shape, dtype = _describe(pa, field, rows, per_column)
        if dtype is None:
            skipped.append(f"{field.name} ({field.type})")
            continue
        load = functools.partial(_load, read, field.name, per_column, where)
        entries.append(Entry(field.name, shape, dtype, load))
    return Contents(entries, skipped)


def _ipc_rows(reader: Any, path: Path) -> int:
    """The rows of an Arrow IPC file, from the metadata of its record batches alone.

    ``get_batch(i).num_rows`` would read, and decompress, every batch before any
    limit is checked.
    """
    count_rows = getattr(reader, "count_rows", None)  # RecordBatchFileReader, newer pyarrow
    if count_rows is not None:
        return int(count_rows())
    import pyarrow.dataset as ds  # the same metadata count, in every pyarrow this supports

    return int(ds.dataset(str(path), format="ipc").count_rows())


def _read_parquet(pf: Any, name: str) -> Any:
    return pf.read(columns=[name], use_threads=False)


def _read_ipc(read_all: Callable[[], Any], name: str) -> Any:
    # The table is read once, when the first column is loaded (after the limits
    # were checked), and each column taken from it: reading it per column would
    # make the work grow with the square of the number of columns. From a memory
    # map, an uncompressed table is read without copying its data.
    return read_all().select([name])


# -- writing --------------------------------------------------------------------------------------


def arrow_size(arrays: Sequence[tuple[str, Sequence[int], np.dtype[Any]]]) -> int:
    """An upper bound on the bytes of a Parquet or Arrow file of these ``(name, shape, dtype)``."""
    size = _PER_FILE
    for name, shape, dtype in arrays:
        data = math.prod(shape) * dtype.itemsize
        size += data + int(data * _PAGE_SHARE) + _PER_COLUMN + 2 * len(name.encode("utf-8"))
    return size


def _table(arrays: Iterator[tuple[str, np.ndarray[Any, Any]]], path: Path) -> Any:
    """A table of one row holding each array as a column (the arrays' memory, where it can)."""
    pa = _pyarrow(path)
    columns = {}
    for name, array in arrays:
        row = array.reshape(1) if array.ndim == 0 else array[np.newaxis]
        try:
            columns[name] = interop.convert(row, "arrow")
        except interop.InteropError as exc:
            raise ConvertError(f"cannot convert {name!r} to Arrow: {quote(exc)}") from exc
    table = pa.table(columns)
    return table.replace_schema_metadata({LAYOUT_KEY: ONE_TENSOR_PER_COLUMN})


def write_parquet(
    f: IO[bytes], arrays: Iterator[tuple[str, np.ndarray[Any, Any]]], path: Path
) -> None:
    """Write ``(name, array)`` pairs to ``f`` as a Parquet file of one tensor per column.

    Uncompressed and without dictionaries or statistics: tensor data rarely
    compresses, and its size is then what ``--max-bytes`` was checked against.
    """
    pq = _parquet(path)
    table = _table(arrays, path)
    pq.write_table(table, f, compression="none", use_dictionary=False, write_statistics=False)


def write_arrow(
    f: IO[bytes], arrays: Iterator[tuple[str, np.ndarray[Any, Any]]], path: Path
) -> None:
    """Write ``(name, array)`` pairs to ``f`` as an Arrow IPC file of one tensor per column."""
    pa = _pyarrow(path)
    table = _table(arrays, path)
    with pa.ipc.new_file(f, table.schema) as writer:
        writer.write_table(table)
