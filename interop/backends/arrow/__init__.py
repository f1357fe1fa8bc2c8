"""Apache Arrow (``pyarrow``): arrays, chunked arrays, tensor columns and tables.

As a source: a ``pyarrow.Array`` or ``ChunkedArray`` of fixed-width values (numbers,
timestamps, durations, ``interop.dtype``) in one chunk and without nulls is a
read-only view of its buffers (Arrow memory is immutable). A canonical
``arrow.fixed_shape_tensor`` column gives shape ``(len, *shape)``, or where the
type has a permutation the logical order it gives (logical axis ``i`` is stored
axis ``permutation[i]``, as the canonical extension defines it): a strided view.
Joining chunks, unpacking booleans and converting other types (dates,
dictionaries, ...) through pyarrow copy. Types whose values become Python objects
(strings, lists, decimals, times, ...) are refused before any work unless
``dtype=`` asks for them (``object``) or for numbers they may spell (text and
decimals; lists, structs, maps, times and intervals are never numbers, and a
numeric ``dtype=`` for them is refused before any work too); unions are refused.
An extension type converts as its storage does, unless its arrays convert themselves
(their class has its own ``to_numpy``: Ray's tensors, ``arrow.bool8``); then the
dtype is known only once converted.
Nulls are never turned into values silently: a column with nulls raises
:class:`~interop.ConversionError`, unless a floating-point ``dtype=`` asks for NaN
in their place (fixed-width types), or ``dtype=object`` for ``None`` (every type).

A ``pyarrow.Table`` or ``RecordBatch`` is a container of named columns, not an
array: :func:`interop.to_numpy_tree` turns it into a ``dict`` of arrays, and
:func:`interop.to_numpy` refuses it with that hint.

As a target (``interop.convert(x, "arrow")``): a 1-d array becomes a primitive
``pyarrow.Array``, an n-d one a ``FixedShapeTensorArray`` whose rows are the first
axis, zero-copy from C-contiguous host memory (the Arrow buffers keep the source
alive); dtypes Arrow lacks (bfloat16, float8, sub-byte formats, complex) are
stored bit-exactly as the extension type ``interop.dtype`` (see
:mod:`interop.backends.arrow.encoding`). Everything that imports ``pyarrow`` is in
:mod:`interop.backends.arrow.reading` (Arrow memory as NumPy, and the extension
type) and :mod:`interop.backends.arrow.writing` (NumPy arrays into Arrow memory).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from interop import _dtypes, _plan
from interop._backend import HostTarget, Node
from interop._errors import (
    ConversionError,
    policy_error,
    text_format_error,
    truth_cast_error,
    type_name,
)
from interop._memory import aligned_copy
from interop._options import Options
from interop._plan import Plan

__all__ = ["ArrowBackend", "on_import"]

# The kinds of NumPy dtypes whose values are numbers (booleans and datetimes too).
_NUMBERS = "biufcmM"
_TABLE_HINT = (
    "an Arrow table holds named columns, not one array. hint: interop.to_numpy_tree(table) "
    "gives a dict of arrays, or convert one column with interop.to_numpy(table.column(name))"
)


def on_import() -> None:
    """Register the ``interop.dtype`` extension type (run when ``pyarrow`` is imported).

    Registered at once, so that a file or stream read before any conversion
    already rebuilds the exact dtypes of its columns. Importing the module
    registers it, also where this runs while that module is being imported (it
    imports pyarrow): then the registration comes at the end of its import.
    """
    from interop.backends.arrow import reading  # noqa: F401


class ArrowBackend(HostTarget):
    """``pyarrow.Array`` (all kinds) and ``pyarrow.ChunkedArray``; tables as containers."""

    name = "arrow"
    title = "Arrow"
    host_only = (
        "Arrow arrays are made in host memory. hint: leave device out; device data is "
        "copied to host"
    )
    module = "pyarrow"
    mutable = False

    def __init__(self) -> None:
        super().__init__()
        self.steps.update(
            values=self._values,
            join=self._join,
            unpack_bits=self._values,
            pyarrow_to_numpy=self._pyarrow,
            extension_to_numpy=self._extension,
            nan_for_nulls=self._nan_for_nulls,
            none_for_nulls=self._none_for_nulls,
            copy_rows=_copy_rows,
        )

    def load(self) -> None:
        import pyarrow

        from interop.backends.arrow import reading, writing  # reading registers interop.dtype

        self.pa = pyarrow
        self.reading = reading
        self.writing = writing
        self._containers = (pyarrow.Table, pyarrow.RecordBatch)
        self._arrays = (pyarrow.Array, pyarrow.ChunkedArray)

    def matches(self, cls: type) -> bool:
        return issubclass(cls, self._arrays)

    def declines(self, cls: type, /) -> str | None:
        return _TABLE_HINT if issubclass(cls, self._containers) else None

    # -- containers ---------------------------------------------------------------

    def is_node(self, x: Any, /) -> bool:
        return isinstance(x, self._containers)

    def node(self, x: Any, /) -> Node:
        names = list(x.column_names)
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise ConversionError(
                f"expected an Arrow table with unique column names, got `{type_name(x)}` "
                f"with {twice} more than once: a dict of columns would lose one. hint: "
                "rename them with table.rename_columns"
            )
        return Node(
            children=self.reading.columns(x),
            rebuild=lambda children: dict(zip(names, children, strict=True)),
            key=lambda i: f"[{names[i]!r}]",
        )

    # -- conversion to NumPy --------------------------------------------------------

    def _chunks(self, x: Any) -> list[Any]:
        return x.chunks if isinstance(x, self.pa.ChunkedArray) else [x]

    def _nulls(self, x: Any) -> int:
        count = self.reading.null_count
        return sum(count(c) for c in self._chunks(x))

    def plan_key(self, x: Any, /) -> Hashable | None:
        if not self.reading.hashable(x.type):
            return None
        chunked = isinstance(x, self.pa.ChunkedArray)
        chunks = x.num_chunks if chunked else 1
        return (type(x), x.type, chunks, self._nulls(x) > 0)

    def plan(self, x: Any, options: Options, /) -> Plan:
        layout = self.reading.layout_of(x.type)
        if layout.kind == "union":
            raise ConversionError(
                f"expected an Arrow array NumPy can hold, got `{type_name(x)}` of {x.type}: "
                "pyarrow converts no union to NumPy. hint: convert the children one at a "
                "time (x.field(i) of a UnionArray), or x.to_pylist() for Python objects"
            )
        chunked = isinstance(x, self.pa.ChunkedArray)
        chunks = x.num_chunks if chunked else 1
        steps: list[str] = []
        reason: str | None = None
        if layout.kind in ("values", "bits") and chunks != 1:
            # Each chunk's values (booleans unpacked), joined into one new array.
            steps.append("join")
            reason = (
                f"joining the {chunks} chunks of a ChunkedArray copies"
                if chunks
                else "a ChunkedArray without chunks has no memory to share; an empty array is made"
            )
        elif layout.kind == "values":
            steps.append("values")
        elif layout.kind == "bits":
            steps.append("unpack_bits")
            reason = "Arrow packs booleans into bits; unpacking them copies"
        elif layout.kind == "pyarrow":
            steps.append("pyarrow_to_numpy")
            reason = f"Arrow's {x.type} has no fixed-width NumPy layout; pyarrow builds a new array"
        else:
            steps.append("extension_to_numpy")
            reason = f"the extension type {x.type} converts itself into a new array"
        dtype = layout.dtype
        target = options.dtype
        if target is None and dtype is not None and dtype.hasobject:
            raise ConversionError(
                f"expected numbers from an Arrow array, got `{type_name(x)}` of {x.type}, "
                "which becomes an array of Python objects. hint: cast the column to a "
                "numeric type first (x.cast(...)); interop.to_numpy(x, dtype=object) gives "
                "the objects themselves"
            )
        numeric = target is not None and (target.kind in _NUMBERS or _dtypes.holds_format(target))
        if numeric and not layout.numbers:
            # NumPy's cast of such objects can only fail (text and decimals may spell
            # numbers, and their cast fails as NumPy's does, as documented).
            raise ConversionError(
                f"expected numbers from an Arrow array, got `{type_name(x)}` of {x.type}, "
                f"whose values become Python objects that are never {target} values. hint: "
                "convert the parts that hold numbers (x.flatten() for a list's values, "
                "x.field(name) for a struct's fields) or cast the column with pyarrow first "
                "(x.cast(...)); interop.to_numpy(x, dtype=object) gives the objects themselves"
            )
        if _dtypes.holds_bool(target) and dtype is not None and dtype.hasobject:
            # NumPy casts objects to bool by truth: the text "False" would be True.
            raise truth_cast_error(
                f"an Arrow array `{type_name(x)}` of {x.type}",
                "cast the column with pyarrow first (x.cast(pa.bool_())), or compare its "
                "values (pyarrow.compute.equal)",
            )
        if _dtypes.holds_format(target) and dtype is not None and dtype.hasobject:
            raise text_format_error(f"an Arrow array `{type_name(x)}` of {x.type}", target)
        if (
            target is not None
            and dtype is not None
            and dtype.hasobject
            and _dtypes.holds_raw_bytes(target)
        ):
            if layout.arrays:
                # NumPy takes an array's bytes only into raw bytes of a size, as a whole.
                refused = not (_dtypes.is_raw_bytes(target) and target.itemsize)
            else:
                refused = not layout.raw
            if refused:
                raise ConversionError(
                    f"expected a dtype= that the values of `{type_name(x)}` of {x.type} "
                    f"cast to, got dtype={target}: they become Python objects that NumPy "
                    "casts to no such raw bytes (only bytes, and arrays into raw bytes of a "
                    "size, are). hint: cast the column to binary with pyarrow first "
                    "(x.cast(pa.binary())), or ask for dtype=object"
                )
        fixed = layout.kind in ("values", "bits")
        nulls = self._nulls(x)
        if nulls:
            if target is not None and _dtypes.has_nan(target) and fixed:
                steps = ["nan_for_nulls"]
                reason = f"putting NaN in place of the nulls of {x.type} copies"
                dtype = target
            elif target is not None and target.hasobject:
                steps = ["none_for_nulls"]
                reason = f"putting None in place of the nulls of {x.type} copies"
                dtype = target
            else:
                raise self._nulls_error(x, nulls, fixed)
        # The chunks are joined straight into the dtype dtype=, float_dtype= or
        # upcast ask: one copy, not two (a dtype of no size or unit is left to the
        # cast, which NumPy sizes by the data).
        if steps == ["join"] and dtype is not None:
            wanted = _plan.values_dtype(dtype, options)
            if wanted is not None and wanted != dtype and not _plan.unsized(wanted):
                dtype = wanted
        if options.copy is True and not fixed and target is not None and target.hasobject:
            # The rows of lists (and the arrays inside structs and maps) are views of
            # Arrow memory inside the new object array.
            steps.append("copy_rows")
        return _plan.finish(
            self.name,
            "cpu",
            steps,
            source_dtype=dtype,
            options=options,
            copy_reason=reason,
            source_readonly=reason is None,
            upcast_to=None if dtype is None else _dtypes.upcast_target(dtype),
            prepared=layout,
        )

    def _nulls_error(self, x: Any, nulls: int, fixed: bool) -> ConversionError:
        message = (
            f"expected an Arrow array without nulls, got `{type_name(x)}` of {x.type} with "
            f"{nulls} null{'s' if nulls > 1 else ''} in {len(x)} values: NumPy has no null, "
            "and a number in its place would be a value that was never there. hint: fill "
            "them first (x.fill_null(...)), or pass "
        )
        # (convert and its kin, which take no dtype=, say how to get it.)
        if fixed:
            return policy_error(
                message + "a floating-point dtype= with NaN (np.float64) to get NaN for each null, "
                "or dtype=object to get None",
                "dtype",
            )
        return policy_error(message + "dtype=object to get None for each null", "dtype")

    def host_view_for(self, cls: type, /) -> Callable[[Any], Any] | None:
        if not self.matches(cls):
            return None
        reading = self.reading
        layout_of = reading.layout_of
        values = reading.values
        null_count = reading.null_count
        chunked = issubclass(cls, self.pa.ChunkedArray)

        def view(x: Any) -> np.ndarray[Any, Any] | None:
            if chunked:
                if x.num_chunks != 1:
                    return None
                x = x.chunk(0)
            layout = layout_of(x.type)
            if layout.kind != "values" or null_count(x):
                return None
            out: np.ndarray[Any, Any] = values(x, layout)
            return out

        return view

    def _values(self, x: Any, plan: Plan) -> np.ndarray[Any, Any]:
        return self.reading.values(self._chunks(x)[0], plan.prepared)

    def _join(self, x: Any, plan: Plan) -> np.ndarray[Any, Any]:
        layout = plan.prepared
        parts = [self.reading.values(c, layout) for c in x.chunks]
        # The plan joins into the dtype asked where no cast step follows (see plan).
        dtype = None if _CASTS.intersection(plan.steps) else plan.dtype
        if not parts:
            return self.reading.empty(layout, dtype)
        return np.concatenate(parts, dtype=dtype, casting="unsafe")

    def _pyarrow(self, x: Any, plan: Plan) -> np.ndarray[Any, Any]:
        # (An extension type has this layout where it converts as its storage does.)
        out = np.asarray(self.reading.storage(x).to_numpy(zero_copy_only=False))
        # pyarrow hands out a read-only array where it may share memory (a decoded
        # dictionary or run-end array, say): the plan promises new memory.
        return out if out.flags.writeable else np.array(out, copy=True)

    def _chunks_or_empty(self, x: Any) -> list[Any]:
        """The chunks of ``x``; for a ChunkedArray without chunks, one empty array of its type.

        An extension converts an empty array of its own type into the shape and dtype
        its rows have, which no chunk is left to say.
        """
        if isinstance(x, self.pa.ChunkedArray) and not x.num_chunks:
            return [x.combine_chunks()]
        return self._chunks(x)

    def _extension(self, x: Any, plan: Plan) -> np.ndarray[Any, Any]:
        parts = [_owned(chunk.to_numpy(zero_copy_only=False)) for chunk in self._chunks_or_empty(x)]
        out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        target = plan.cast_target
        if out.dtype.hasobject and target is not None and not target.hasobject:
            # Before the cast to the dtype= asked, which would fail on the objects.
            raise _objects_error(x)
        return out

    def _none_for_nulls(self, x: Any, plan: Plan) -> np.ndarray[Any, Any]:
        layout = plan.prepared
        parts = [self._with_none(chunk, layout) for chunk in self._chunks(x)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _with_none(self, chunk: Any, layout: Any) -> np.ndarray[Any, Any]:
        """One chunk as a new object array with ``None`` for each null."""
        reading = self.reading
        if layout.kind == "pyarrow":
            # An extension type has this layout where it converts as its storage does.
            chunk = reading.storage(chunk)
            plain = reading.decoded(chunk)
            if plain is not chunk:
                return self._with_none(plain, reading.layout_of(plain.type))
        if layout.kind in ("values", "bits"):
            out = np.array(reading.values(chunk, layout), dtype=object)
            out[reading.null_mask(chunk, layout)] = None
            return out
        valid = chunk.is_valid()
        if layout.kind == "pyarrow":
            # pyarrow puts None or NaT in place of a null, by type.
            out = np.array(chunk.to_numpy(zero_copy_only=False), dtype=object)
            out[~np.asarray(valid.to_numpy(zero_copy_only=False), dtype=np.bool_)] = None
            return out
        # An extension's own conversion may read what is stored under a null (Ray's
        # tensors give the zeros there, or fail): only the valid rows are converted.
        part = np.asarray(chunk.filter(valid).to_numpy(zero_copy_only=False))
        out = np.empty((len(chunk), *part.shape[1:]), object)  # None throughout
        out[np.asarray(valid.to_numpy(zero_copy_only=False), dtype=np.bool_)] = part
        return out

    def _nan_for_nulls(self, x: Any, plan: Plan) -> np.ndarray[Any, Any]:
        layout = plan.prepared
        reading = self.reading
        parts = []
        for chunk in self._chunks(x):
            part = np.array(reading.values(chunk, layout), dtype=plan.cast_target, copy=True)
            part[reading.null_mask(chunk, layout)] = np.nan
            parts.append(part)
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else reading.empty(layout, plan.cast_target)

    def check_result(self, x: Any, out: np.ndarray[Any, Any], options: Options, /) -> None:
        # (Types known to become objects are refused by the plan; an extension that
        # converts itself tells only now.)
        if out.dtype.hasobject and not (options.dtype is not None and options.dtype.hasobject):
            raise _objects_error(x)
        if out.shape[:1] != (len(x),):
            raise ConversionError(
                f"expected one row per value of an Arrow array, got shape {out.shape} from "
                f"`{type_name(x)}` of {x.type} with {len(x)} values: its conversion gave "
                "something else than its rows. hint: convert its storage (x.storage) or "
                "x.to_pylist() instead"
            )

    def translate_error(self, x: Any, exc: Exception, /) -> Exception | None:
        # pyarrow's conversions raise its own errors for what they cannot convert
        # (a union inside a list, a dictionary of extension values, ...).
        if not isinstance(exc, self.pa.ArrowException):
            return None
        return ConversionError(
            f"expected an Arrow array pyarrow converts to NumPy, got `{type_name(x)}` of "
            f"{x.type}, which it refuses: {exc}. hint: cast the column to a type NumPy "
            "holds first (x.cast(...)), or x.to_pylist() for Python objects"
        )

    # -- conversion into Arrow --------------------------------------------------------

    min_ndim = 1

    def ndim_error(self, ndim: int, /) -> ConversionError:
        return self.writing.ndim_error(ndim)

    def target_dtype(self, dtype: np.dtype[Any], device: Any, /) -> np.dtype[Any]:
        self.writing.check_arrow_dtype(dtype)
        return dtype

    def numpy_problem(self, a: np.ndarray[Any, Any], /) -> str | None:
        return self.writing.arrow_problem(a)

    def from_numpy(self, a: np.ndarray[Any, Any], /, *, device: Any, copy: bool) -> Any:
        if copy and a.dtype.kind != "b":  # booleans are packed into new memory anyway
            a = aligned_copy(a)
        return self.writing.to_arrow(a)

    def adopt(self, x: Any, /, *, device: Any, copy: bool) -> Any:
        if not copy:
            return x
        pa = self.pa
        if isinstance(x, pa.ChunkedArray):
            return pa.chunked_array([pa.concat_arrays([c]) for c in x.chunks], x.type)
        return pa.concat_arrays([x])

    def readonly_source(self, x: Any, /) -> bool:
        return True


# The steps of the shared tail that cast.
_CASTS = frozenset({"cast", "upcast", "cast_floats"})


def _objects_error(x: Any) -> ConversionError:
    """The refusal of an extension array that converted itself into Python objects."""
    # (Where dtype= is not taken, the hint says how the caller gets the objects.)
    return policy_error(
        f"expected numbers from an Arrow array, got `{type_name(x)}` of {x.type}, whose "
        "extension type converts it into an array of Python objects. hint: pass "
        "dtype=object to keep the objects",
        "dtype",
    )


def _owned(a: Any) -> np.ndarray[Any, Any]:
    """``a`` as NumPy memory of its own: another library's conversion may give a view."""
    out = np.asarray(a)
    if not out.flags.owndata or not out.flags.writeable:
        out = np.array(out, copy=True)
    return out


def _copy_rows(a: np.ndarray[Any, Any], plan: Plan) -> np.ndarray[Any, Any]:
    """The ``copy_rows`` step: the arrays inside a new object array copied (``copy=True``).

    ``a`` is the result's own array, so its items are replaced in place. pyarrow
    makes a list row an array, a struct row a ``dict`` and a map row a ``list``
    of ``(key, value)`` tuples, each of which may hold arrays that view Arrow
    memory: containers are rebuilt around copies of the arrays they hold.
    """
    if a.dtype.hasobject:
        for index in np.ndindex(a.shape):
            a[index] = _copied(a[index])
    return a


def _copied(item: Any) -> Any:
    """``item`` with every NumPy array in it, in object arrays and containers too, copied."""
    if isinstance(item, np.ndarray):
        out = np.array(item, copy=True)
        if out.dtype.hasobject:
            for index in np.ndindex(out.shape):
                out[index] = _copied(out[index])
        return out
    if isinstance(item, dict):
        return {key: _copied(value) for key, value in item.items()}
    if isinstance(item, list):
        return [_copied(value) for value in item]
    if isinstance(item, tuple):
        return tuple(_copied(value) for value in item)
    return item
