"""Apache Arrow: arrays, chunked arrays, tensor columns and tables as sources, Arrow as a
target, and the exact dtypes Arrow lacks (``interop.dtype``) through files and processes."""

from __future__ import annotations

import datetime as dt
import gc
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import interop
from interop import ConversionError, CopyRequiredError, UnsupportedTypeError, testing
from tests.conftest import load_framework
from tests.support.dtype_sources import as_format, random_bits, uint_of
from tests.support.memory import traced_peak
from tests.support.simdevice import SimArray, SimBackend, registered

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
feather = pytest.importorskip("pyarrow.feather")

ROOT = Path(__file__).resolve().parents[2]
from interop.backends.arrow import reading  # noqa: E402  (needs pyarrow)

NUMERIC = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]
NUMERIC += ["float16", "float32", "float64"]
#: Every dtype Arrow lacks, stored as ``interop.dtype``.
ENCODED = [*interop._dtypes.NONSTANDARD, "complex64", "complex128"]


def _exact(name: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray[Any, Any]:
    """Random bits of every pattern kind (NaN payloads included) in dtype ``name``."""
    return as_format(random_bits(name, shape, np.random.default_rng(seed)), name)


def _same_bits(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _python(code: str, *, cwd: Path = ROOT) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# -- Arrow as a source --------------------------------------------------------------------


@pytest.mark.parametrize("name", NUMERIC)
def test_numeric_array_is_a_read_only_view(name: str) -> None:
    a = pa.array(np.arange(10).astype(name)).slice(3, 5)
    plan = interop.explain(a)
    out = interop.to_numpy(a)
    assert plan.zero_copy and plan.readonly and plan.steps == ("values",)
    assert out.dtype == np.dtype(name) and out.tolist() == list(range(3, 8))
    assert np.shares_memory(out, a.to_numpy()) and not out.flags.writeable
    assert np.shares_memory(interop.to_numpy(a, copy=False), a.to_numpy())
    owned = interop.to_numpy(a, copy=True)
    assert owned.flags.writeable and not np.shares_memory(owned, a.to_numpy())
    owned[...] = 0
    assert a.to_numpy().tolist() == list(range(3, 8))


def test_timestamps_and_durations_are_views() -> None:
    stamps = np.array(["2024-01-01T00:00", "2025-06-01T12:30"], dtype="datetime64[ms]")
    a = pa.array(stamps)
    out = interop.to_numpy(a)
    assert out.dtype == stamps.dtype and np.array_equal(out, stamps)
    assert np.shares_memory(out, a.to_numpy())
    d = interop.to_numpy(pa.array(np.array([1, 2], dtype="timedelta64[us]")))
    assert d.dtype == np.dtype("timedelta64[us]")


def test_nulls_are_never_turned_into_values() -> None:
    a = pa.array([1, None, 3, None])
    with pytest.raises(ConversionError, match="2 nulls") as info:
        interop.to_numpy(a)
    assert "fill_null" in str(info.value) and "dtype=" in str(info.value)
    with pytest.raises(ConversionError, match="nulls"):
        interop.explain(a)
    with pytest.raises(ConversionError, match="nulls"):
        interop.to_numpy(a, dtype=np.int64)
    out = interop.to_numpy(a, dtype=np.float32)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [1, np.nan, 3, np.nan])
    assert not interop.explain(a, dtype=np.float64).zero_copy
    with pytest.raises(CopyRequiredError):
        interop.to_numpy(a, copy=False, dtype=np.float64)
    # A string column with nulls: None in an object array, where objects are asked for.
    assert interop.to_numpy(pa.array(["a", None]), dtype=object).tolist() == ["a", None]


def test_nulls_of_exact_dtypes_and_tensors_become_nan_only_when_asked() -> None:
    bits = pa.array([0x3F80, None, 0x4000], pa.uint16())
    a = pa.ExtensionArray.from_storage(reading.DtypeType(np.dtype(ml_dtypes.bfloat16)), bits)
    with pytest.raises(ConversionError, match="1 null"):
        interop.to_numpy(a)
    np.testing.assert_array_equal(interop.to_numpy(a, dtype=np.float32), [1.0, np.nan, 2.0])
    values = pa.array([1.0, None, 3.0, 4.0], pa.float32())
    ty = pa.fixed_shape_tensor(pa.float32(), (2,))
    t = pa.ExtensionArray.from_storage(ty, pa.FixedSizeListArray.from_arrays(values, 2))
    with pytest.raises(ConversionError, match="1 null"):
        interop.to_numpy(t)
    np.testing.assert_array_equal(interop.to_numpy(t, dtype=np.float64), [[1, np.nan], [3, 4]])


def test_a_tensor_column_counts_the_rows_that_hold_nulls() -> None:
    # A null row, and a row with a null item: two of three rows, each counted once.
    values = pa.array([1.0, 2.0, 3.0, None, 5.0, 6.0], pa.float32())
    storage = pa.FixedSizeListArray.from_arrays(values, 2, mask=pa.array([True, False, False]))
    t = pa.ExtensionArray.from_storage(pa.fixed_shape_tensor(pa.float32(), (2,)), storage)
    assert t.null_count == 1
    with pytest.raises(ConversionError, match="with 2 nulls in 3 values"):
        interop.to_numpy(t)
    out = interop.to_numpy(t, dtype=np.float64)
    np.testing.assert_array_equal(out, [[np.nan, np.nan], [3, np.nan], [5, 6]])


@pytest.mark.parametrize("name", ["bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu"])
def test_nulls_become_nan_of_ml_dtypes_floats_that_have_one(name: str) -> None:
    dtype = np.dtype(getattr(ml_dtypes, name))
    out = interop.to_numpy(pa.chunked_array([[1.0, None], [2.0]]), dtype=dtype)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out.astype(np.float64), [1.0, np.nan, 2.0])


@pytest.mark.parametrize("name", ["float4_e2m1fn", "float6_e2m3fn", "float6_e3m2fn"])
def test_nulls_are_refused_for_floats_without_nan(name: str) -> None:
    # Their NaN casts to -0: a value that was never there.
    dtype = np.dtype(getattr(ml_dtypes, name))
    with pytest.raises(ConversionError, match=r"1 null in 2 values.*with NaN"):
        interop.to_numpy(pa.array([1.0, None]), dtype=dtype)


def test_booleans_are_unpacked_into_a_copy() -> None:
    a = pa.array([True, False, True, True, False, False, True, False, True]).slice(2)
    plan = interop.explain(a)
    assert not plan.zero_copy and "bits" in (plan.copy_reason or "")
    assert interop.to_numpy(a).tolist() == [True, True, False, False, True, False, True]
    with pytest.raises(CopyRequiredError, match="bits"):
        interop.to_numpy(a, copy=False)


def test_chunked_arrays_join_with_a_copy() -> None:
    one = pa.chunked_array([np.arange(4.0)])
    assert interop.explain(one).zero_copy
    assert np.shares_memory(interop.to_numpy(one), one.chunk(0).to_numpy())
    many = pa.chunked_array([[1.0, 2.0], [3.0]])
    plan = interop.explain(many)
    assert not plan.zero_copy and "2 chunks" in (plan.copy_reason or "")
    assert interop.to_numpy(many).tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(CopyRequiredError, match="chunks"):
        interop.to_numpy(many, copy=False)
    empty = interop.to_numpy(pa.chunked_array([], pa.int32()))
    assert empty.shape == (0,) and empty.dtype == np.int32


def test_chunks_join_straight_into_the_dtype_asked() -> None:
    chunks = [np.arange(500_000, dtype=np.float32), np.ones(500_000, np.float32)]
    x = pa.chunked_array(chunks)
    plan = interop.explain(x, dtype=np.float64)
    assert plan.steps == ("join",) and plan.dtype == np.float64
    out, peak = traced_peak(lambda: interop.to_numpy(x, dtype=np.float64))
    assert peak < 1.2 * out.nbytes  # one copy, no joined float32 array before it
    np.testing.assert_array_equal(out, np.concatenate(chunks).astype(np.float64))
    assert out.dtype == np.float64 and out.flags.writeable
    for options in ({"float_dtype": np.float64}, {"dtype": np.float16}):
        assert interop.explain(x, **options).steps == ("join",)  # type: ignore[arg-type]
    bits = pa.chunked_array(  # (bfloat16 chunks: upcast joins straight into float32)
        [interop.convert(np.ones(2, ml_dtypes.bfloat16), "arrow")] * 2
    )
    upcast = interop.explain(bits, upcast=True)
    assert upcast.steps == ("join",) and upcast.dtype == np.float32
    np.testing.assert_array_equal(interop.to_numpy(bits, upcast=True), np.ones(4, np.float32))
    # The cast is still checked by the plan: a unit to none inside a field fails always.
    times = pa.chunked_array([pa.array([1], pa.timestamp("s"))] * 2)
    with pytest.raises(ConversionError, match="which NumPy casts no such data to"):
        interop.explain(times, dtype=[("t", "M8")])


def test_chunked_booleans_join_every_chunk() -> None:
    # A table's column after concat_tables: one chunk per table, booleans in bits.
    part = pa.table({"flag": [True, False, True], "x": [1.0, 2.0, 3.0]})
    table = pa.concat_tables([part, pa.table({"flag": [False, True], "x": [4.0, 5.0]})])
    flags = table.column("flag")
    assert interop.to_numpy(flags).tolist() == [True, False, True, False, True]
    assert "2 chunks" in (interop.explain(flags).copy_reason or "")
    out = interop.to_numpy_tree(table)
    assert out["flag"].shape == out["x"].shape == (5,)
    offsets = pa.chunked_array([pa.array([True] * 9 + [False]).slice(7), [True]])
    assert interop.to_numpy(offsets).tolist() == [True, True, False, True]
    empty = interop.to_numpy(pa.chunked_array([], pa.bool_()))
    assert empty.shape == (0,) and empty.dtype == np.bool_
    rows = np.array([[True, False], [False, True], [True, True]])
    tensors = pa.chunked_array(
        [interop.convert(rows[:1], "arrow"), interop.convert(rows[1:], "arrow")]
    )
    np.testing.assert_array_equal(interop.to_numpy(tensors), rows)


def test_fixed_shape_tensor_gives_rows_of_its_shape() -> None:
    a = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    x = pa.FixedShapeTensorArray.from_numpy_ndarray(a)
    out = interop.to_numpy(x)
    assert out.shape == (2, 3, 4) and np.array_equal(out, a)
    assert np.shares_memory(out, x.to_numpy_ndarray()) and not out.flags.writeable
    sliced = interop.to_numpy(x.slice(1, 1))
    assert np.array_equal(sliced, a[1:])
    chunked = pa.chunked_array([x, x.slice(1)])
    assert np.array_equal(interop.to_numpy(chunked), np.concatenate([a, a[1:]]))


@pytest.mark.parametrize("perm", [[1, 0], [2, 0, 1], [1, 2, 0]])
def test_fixed_shape_tensor_permutation_is_honoured(perm: list[int]) -> None:
    # The type's shape is the stored (row-major) one; logical axis i is stored axis
    # perm[i] (the canonical extension's definition).
    shape = (2, 3, 4)[: len(perm)]
    stored = np.arange(5 * int(np.prod(shape)), dtype=np.int16).reshape(5, *shape)
    ty = pa.fixed_shape_tensor(pa.int16(), shape, permutation=perm)
    storage = pa.FixedSizeListArray.from_arrays(pa.array(stored.reshape(-1)), stored[0].size)
    x = pa.ExtensionArray.from_storage(ty, storage)
    logical = stored.transpose(0, *(1 + p for p in perm))
    assert logical.shape[1:] == tuple(shape[p] for p in perm)
    out = interop.to_numpy(x)
    np.testing.assert_array_equal(out, logical)
    buffer = np.frombuffer(x.storage.values.buffers()[1], np.int16)
    assert interop.explain(x).zero_copy and np.shares_memory(out, buffer)  # a strided view
    if perm == [1, 0]:
        # pyarrow's own reading agrees; for a permutation that is not its own
        # inverse, pyarrow (26) gives the spec's shape with other strides.
        np.testing.assert_array_equal(out, x.to_numpy_ndarray())
    # The same order for what is made new: joined chunks, NaN in place of nulls, none.
    np.testing.assert_array_equal(
        interop.to_numpy(pa.chunked_array([x.slice(0, 2), x.slice(2)])), logical
    )
    nulls = pa.ExtensionArray.from_storage(
        ty,
        pa.FixedSizeListArray.from_arrays(
            pa.array(stored.reshape(-1)), stored[0].size, mask=pa.array([False, True] + [False] * 3)
        ),
    )
    expected = logical.astype(np.float64)
    expected[1] = np.nan
    np.testing.assert_array_equal(interop.to_numpy(nulls, dtype=np.float64), expected)
    empty = interop.to_numpy(pa.chunked_array([], ty))
    assert empty.shape == (0, *logical.shape[1:])


def test_arrays_pyarrow_decodes_come_back_as_new_writable_memory() -> None:
    # pyarrow hands out its decoding of these read-only; the plan promises a copy.
    for x in (
        pa.DictionaryArray.from_arrays(pa.array([0, 1, 0, 2]), pa.array([10, 20, 30])),
        pa.RunEndEncodedArray.from_arrays([2, 4], [1.0, 2.0]),
    ):
        for copy in (None, True):
            plan = interop.explain(x, copy=copy)
            out = interop.to_numpy(x, copy=copy)
            assert not plan.zero_copy and not plan.readonly
            assert out.flags.writeable and out.flags.owndata
        out[0] = 0  # (its own memory: x is unchanged)
        assert interop.to_numpy(x)[0] != 0


def test_strings_and_other_types_need_dtype_object() -> None:
    with pytest.raises(ConversionError, match="dtype=object"):
        interop.to_numpy(pa.array(["a", "b"]))
    assert interop.to_numpy(pa.array(["a", "b"]), dtype=object).tolist() == ["a", "b"]
    dates = interop.to_numpy(pa.array([0, 1], pa.date32()))
    assert dates.dtype.kind == "M"


# Columns whose values pyarrow turns into Python objects.
OBJECT_COLUMNS = {
    "string": lambda: pa.array(["a", "bc"]),
    "large_string": lambda: pa.array(["a", "bc"], pa.large_string()),
    "binary": lambda: pa.array([b"a", b"bc"]),
    "fixed_size_binary": lambda: pa.array([b"ab", b"cd"], pa.binary(2)),
    "list": lambda: pa.array([[1, 2], [3]]),
    "fixed_size_list": lambda: pa.array([[1, 2], [3, 4]], pa.list_(pa.int64(), 2)),
    "struct": lambda: pa.array([{"a": 1}, {"a": 2}]),
    "decimal": lambda: pa.array([1, 2], pa.decimal128(5, 0)),
    "time64": lambda: pa.array([1, 2], pa.time64("us")),
    "dictionary_of_strings": lambda: pa.DictionaryArray.from_arrays(
        pa.array([0, 1]), pa.array(["a", "b"])
    ),
    "uuid": lambda: pa.ExtensionArray.from_storage(
        pa.uuid(), pa.array([b"0123456789abcdef"] * 2, pa.binary(16))
    ),
}


def _plain(values: Any) -> list[Any]:
    """An object array's items, with arrays inside it as lists."""
    return [v.tolist() if isinstance(v, np.ndarray) else v for v in values]


_OBJECTS_HINT = (
    r"Python objects\. hint: cast the column to a numeric type first \(x\.cast\(\.\.\.\)\); "
    r"interop\.to_numpy\(x, dtype=object\) gives the objects themselves"
)


@pytest.mark.parametrize("kind", OBJECT_COLUMNS)
def test_columns_of_python_objects_are_refused_before_any_work(kind: str) -> None:
    x = OBJECT_COLUMNS[kind]()
    with pytest.raises(ConversionError, match=_OBJECTS_HINT) as planned:
        interop.explain(x)
    with pytest.raises(ConversionError, match=_OBJECTS_HINT) as done:
        interop.to_numpy(x)
    assert str(planned.value) == str(done.value)
    assert _plain(interop.to_numpy(x, dtype=object)) == _plain(x.to_numpy(zero_copy_only=False))
    assert interop.explain(x, dtype=object).dtype == np.dtype(object)


@pytest.mark.parametrize("name", ["torch", "tensorflow", "jax"])
@pytest.mark.parametrize("kind", OBJECT_COLUMNS)
def test_columns_of_python_objects_are_refused_by_convert_as_explain_says(
    kind: str, name: str
) -> None:
    # Such an array once reached the frameworks (raw errors from PyTorch; a crash
    # in TensorFlow's and JAX's aligned copy, which made object arrays over raw memory).
    load_framework(name)
    x = OBJECT_COLUMNS[kind]()
    with pytest.raises(ConversionError, match=_OBJECTS_HINT) as planned:
        interop.explain(x, to=name)
    for _ in range(3):
        with pytest.raises(ConversionError, match=_OBJECTS_HINT) as done:
            interop.convert(x, name)
        assert str(done.value) == str(planned.value)
    with pytest.raises(ConversionError, match=r"tree\['a'\]: .*" + _OBJECTS_HINT):
        interop.convert_tree({"a": x}, name)


def test_a_decimal_column_converts_to_the_dtype_asked() -> None:
    x = pa.array([1, 2], pa.decimal128(5, 1))
    out = interop.to_numpy(x, dtype=np.float64)
    assert out.dtype == np.float64 and out.tolist() == [1.0, 2.0]
    assert interop.explain(x, dtype=np.float64).dtype == np.float64


def test_dates_convert_to_datetime64_which_convert_refuses_as_explain_says() -> None:
    x = pa.array([0, 1], pa.date32())
    plan = interop.explain(x)
    out = interop.to_numpy(x)
    assert plan.dtype == out.dtype == np.dtype("datetime64[D]") and not plan.zero_copy
    assert out.tolist() == x.to_pylist()
    torch = load_framework("torch")
    message = r"expected numeric data to convert to torch, got dtype datetime64\[D\]\. hint:"
    with pytest.raises(ConversionError, match=message):
        interop.explain(x, to=torch.name)
    with pytest.raises(ConversionError, match=message):
        interop.convert(x, torch.name)


# Types pyarrow converts into numbers or datetimes: the dtype explain says is the one made.
CONVERTED_COLUMNS = {
    "date32": lambda: pa.array([0, 1], pa.date32()),
    "date64": lambda: pa.array([0, 86_400_000], pa.date64()),
    "dictionary_of_int64": lambda: pa.DictionaryArray.from_arrays(
        pa.array([0, 1, 0]), pa.array([10, 20])
    ),
    "dictionary_of_float16": lambda: pa.DictionaryArray.from_arrays(
        pa.array([1, 0]), pa.array(np.array([1, 2], np.float16))
    ),
    "dictionary_of_bool": lambda: pa.DictionaryArray.from_arrays(
        pa.array([1, 0]), pa.array([True, False])
    ),
    "dictionary_of_timestamps": lambda: pa.DictionaryArray.from_arrays(
        pa.array([1, 0]), pa.array([1, 2], pa.timestamp("ms", tz="UTC"))
    ),
    "dictionary_of_durations": lambda: pa.DictionaryArray.from_arrays(
        pa.array([1, 0]), pa.array([1, 2], pa.duration("s"))
    ),
    "dictionary_of_dates": lambda: pa.DictionaryArray.from_arrays(
        pa.array([1, 0]), pa.array([1, 2], pa.date32())
    ),
    "run_end_encoded_float64": lambda: pa.RunEndEncodedArray.from_arrays([2, 3], [1.0, 2.0]),
    "run_end_encoded_uint8": lambda: pa.RunEndEncodedArray.from_arrays(
        [2, 3], pa.array([1, 2], pa.uint8())
    ),
    "run_end_encoded_bool": lambda: pa.RunEndEncodedArray.from_arrays([2, 3], [True, False]),
}


@pytest.mark.parametrize("kind", CONVERTED_COLUMNS)
def test_explain_gives_the_dtype_pyarrow_converts_to(kind: str) -> None:
    x = CONVERTED_COLUMNS[kind]()
    for column in (x, pa.chunked_array([x, x]), pa.chunked_array([], x.type)):
        plan = interop.explain(column)
        out = interop.to_numpy(column)
        assert plan.dtype == out.dtype, (column.type, plan.dtype, out.dtype)
        assert not plan.zero_copy and out.flags.writeable
        assert out.tolist() == column.to_numpy(zero_copy_only=False).tolist()


def test_convert_of_dictionary_values_takes_their_dtype() -> None:
    torch = load_framework("torch")
    x = CONVERTED_COLUMNS["dictionary_of_int64"]()
    assert interop.explain(x, to=torch.name).dtype == np.int64
    assert torch.native(interop.convert(x, torch.name)).tolist() == [10, 20, 10]


@pytest.mark.parametrize(
    "make",
    [
        lambda: pa.UnionArray.from_sparse(
            pa.array([0, 1], pa.int8()), [pa.array([1, 2]), pa.array(["a", "b"])]
        ),
        lambda: pa.UnionArray.from_dense(
            pa.array([0, 0], pa.int8()), pa.array([0, 1], pa.int32()), [pa.array([1.0, 2.0])]
        ),
    ],
    ids=["sparse", "dense"],
)
def test_union_columns_are_refused_by_the_plan(make: Any) -> None:
    x = make()
    message = (
        r"pyarrow converts no union to NumPy\. hint: convert the children one at a time "
        r"\(x\.field\(i\) of a UnionArray\), or x\.to_pylist\(\) for Python objects"
    )
    for dtype in (None, object, np.float64):
        with pytest.raises(ConversionError, match=message):
            interop.explain(x, dtype=dtype)
        with pytest.raises(ConversionError, match=message):
            interop.to_numpy(x, dtype=dtype)
    with pytest.raises(ConversionError, match=message):
        interop.to_numpy(pa.chunked_array([x]))
    with pytest.raises(ConversionError, match=message):
        interop.convert(x, load_framework("torch").name)
    assert interop.to_numpy(x.field(0), dtype=np.float64).dtype == np.float64


def test_what_pyarrow_refuses_to_convert_is_a_conversion_error() -> None:
    # A union inside a list: the plan asks pyarrow, whose refusal keeps its cause.
    union = pa.UnionArray.from_sparse(
        pa.array([0, 1], pa.int8()), [pa.array([1, 2]), pa.array(["a", "b"])]
    )
    x = pa.ListArray.from_arrays([0, 1, 2], union)
    with pytest.raises(ConversionError, match=r"which it refuses: .*hint: cast the") as info:
        interop.to_numpy(x, dtype=object)
    assert isinstance(info.value.__cause__, pa.ArrowNotImplementedError)
    with pytest.raises(ConversionError, match=r"\['a'\]: .*which it refuses"):
        interop.to_numpy_tree({"a": x}, dtype=object)


class Celsius(pa.ExtensionType):  # type: ignore[misc]
    """An extension type written as pyarrow documents them: without ``__hash__``."""

    def __init__(self) -> None:
        super().__init__(pa.float64(), "tests.celsius")

    def __arrow_ext_serialize__(self) -> bytes:
        return b""

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: Any, serialized: bytes) -> Celsius:
        return cls()


class ObjectsArray(pa.ExtensionArray):  # type: ignore[misc]
    """An extension's own conversion, into Python objects."""

    def to_numpy(self, zero_copy_only: bool = True, writable: bool = False) -> Any:
        out = np.empty(len(self), object)
        out[:] = [None if v is None else f"{v}°" for v in self.storage.to_pylist()]
        return out


class Degrees(pa.ExtensionType):  # type: ignore[misc]
    """An unhashable extension type whose arrays convert themselves into objects."""

    def __init__(self) -> None:
        super().__init__(pa.float64(), "tests.degrees")

    def __arrow_ext_serialize__(self) -> bytes:
        return b""

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: Any, serialized: bytes) -> Degrees:
        return cls()

    def __arrow_ext_class__(self) -> type:
        return ObjectsArray


def test_an_unhashable_extension_type_converts_as_its_storage() -> None:
    assert Celsius.__hash__ is None
    storage = pa.array([20.5, 21.0])
    x = pa.ExtensionArray.from_storage(Celsius(), storage)
    for _ in range(2):  # (planned without the cache, every time)
        plan = interop.explain(x)
        out = interop.to_numpy(x)
        assert plan.zero_copy and plan.steps == ("values",) and plan.dtype == np.float64
        assert out.tolist() == [20.5, 21.0] and not out.flags.writeable
        assert np.shares_memory(out, storage.to_numpy())
    assert interop.to_numpy(pa.chunked_array([x, x])).tolist() == [20.5, 21.0] * 2
    assert interop.to_numpy_tree(pa.table({"t": x}))["t"].tolist() == [20.5, 21.0]
    torch = load_framework("torch")
    assert torch.native(interop.convert(x, torch.name)).tolist() == [20.5, 21.0]
    nulls = pa.ExtensionArray.from_storage(Celsius(), pa.array([1.0, None]))
    with pytest.raises(ConversionError, match="1 null"):
        interop.to_numpy(nulls)
    np.testing.assert_array_equal(interop.to_numpy(nulls, dtype=np.float32), [1.0, np.nan])


@pytest.mark.parametrize("name", ["torch", "tensorflow", "jax"])
def test_an_extension_that_converts_itself_into_objects_is_refused_after_it(name: str) -> None:
    load_framework(name)
    x = pa.ExtensionArray.from_storage(Degrees(), pa.array([1.0, 2.0]))
    plan = interop.explain(x)
    assert plan.steps == ("extension_to_numpy",) and plan.dtype is None
    with pytest.raises(ConversionError, match=r"Python objects\. hint: pass dtype=object"):
        interop.to_numpy(x)
    assert interop.to_numpy(x, dtype=object).tolist() == ["1.0°", "2.0°"]
    message = rf"expected numeric data to convert to {name}, got dtype object\. hint:"
    for _ in range(3):
        with pytest.raises(ConversionError, match=message):
            interop.convert(x, name)


class Labels(pa.ExtensionType):  # type: ignore[misc]
    """An unhashable extension type (as pyarrow documents them) over any storage."""

    def __init__(self, storage: Any) -> None:
        super().__init__(storage, "tests.labels")

    def __arrow_ext_serialize__(self) -> bytes:
        return b""

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: Any, serialized: bytes) -> Labels:
        return cls(storage_type)


class HashableLabels(Labels):
    """The same, hashable: its plans are cached."""

    def __hash__(self) -> int:
        return hash(("tests.labels", str(self.storage_type)))


@pytest.mark.parametrize("ext", [Labels, HashableLabels])
def test_an_extension_over_dictionary_storage_converts_as_its_storage(ext: type) -> None:
    # pyarrow's conversion of such an ExtensionArray itself gives a 0-d array of one
    # dict of the indices and the dictionary; of a ChunkedArray, the values.
    def labelled(storage: Any) -> Any:
        return pa.ExtensionArray.from_storage(ext(storage.type), storage)

    x = labelled(pa.array([1, 2, 1]).dictionary_encode())
    cases = [
        (x, [1, 2, 1]),
        (pa.chunked_array([x]), [1, 2, 1]),
        (x.slice(1), [2, 1]),
        (pa.chunked_array([x, x.slice(1)]), [1, 2, 1, 2, 1]),
    ]
    for column, expected in cases:
        plan = interop.explain(column)
        out = interop.to_numpy(column)
        assert plan.steps == ("pyarrow_to_numpy",) and plan.dtype == out.dtype == np.int64
        assert out.shape == (len(expected),) and out.tolist() == expected
        assert out.flags.writeable and out.flags.owndata
        objects = interop.to_numpy(column, dtype=object)
        assert objects.shape == (len(expected),) and objects.tolist() == expected
        assert [type(v) for v in objects] == [int] * len(expected)
    words = labelled(pa.array(["x", "y", "x"]).dictionary_encode())
    for column in (words, pa.chunked_array([words])):
        assert interop.to_numpy(column, dtype=object).tolist() == ["x", "y", "x"]
    # A null among the dictionary's values: the rows that point to it are null.
    holes = labelled(pa.DictionaryArray.from_arrays(pa.array([0, 1, 0]), pa.array([5, None])))
    for column in (holes, pa.chunked_array([holes])):
        with pytest.raises(ConversionError, match=r"1 null in 3 values"):
            interop.explain(column)
        with pytest.raises(ConversionError, match=r"1 null in 3 values"):
            interop.to_numpy(column)
        out = interop.to_numpy(column, dtype=object)
        assert out.shape == (3,) and out.tolist() == [5, None, 5]


class ScalarArray(pa.ExtensionArray):  # type: ignore[misc]
    """An extension's own conversion that gives one value, not its rows."""

    def to_numpy(self, zero_copy_only: bool = True, writable: bool = False) -> Any:
        return np.array(sum(self.storage.to_pylist()), dtype=np.float64)


class Total(pa.ExtensionType):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__(pa.float64(), "tests.total")

    def __arrow_ext_serialize__(self) -> bytes:
        return b""

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: Any, serialized: bytes) -> Total:
        return cls()

    def __arrow_ext_class__(self) -> type:
        return ScalarArray


def test_an_extension_whose_conversion_is_not_its_rows_is_refused() -> None:
    x = pa.ExtensionArray.from_storage(Total(), pa.array([1.0, 2.0, 3.0]))
    with pytest.raises(
        ConversionError,
        match=r"expected one row per value of an Arrow array, got shape \(\) from .* with 3 "
        r"values: .*hint: convert its storage \(x\.storage\)",
    ):
        interop.to_numpy(x)


@pytest.mark.parametrize("dtype", [np.float64, np.int64])
def test_an_extension_that_converts_itself_into_objects_refuses_a_numeric_dtype(
    dtype: Any,
) -> None:
    # Before the cast, which would raise NumPy's own error about the objects.
    x = pa.ExtensionArray.from_storage(Degrees(), pa.array([1.0, 2.0]))
    for column in (x, pa.chunked_array([x, x])):
        with pytest.raises(
            ConversionError, match=r"into an array of Python objects\. hint: pass dtype=object"
        ):
            interop.to_numpy(column, dtype=dtype)


# Columns whose values become Python objects that are never numbers.
NEVER_NUMBERS = {
    "list": lambda: pa.array([[1, 2], [3]]),
    "fixed_size_list": lambda: pa.array([[1, 2], [3, 4]], pa.list_(pa.int64(), 2)),
    "large_list": lambda: pa.array([[1], [2]], pa.large_list(pa.int64())),
    "struct": lambda: pa.array([{"a": 1}, {"a": 2}]),
    "map": lambda: pa.array([[("k", 1)], []], pa.map_(pa.string(), pa.int64())),
    "time32": lambda: pa.array([1, 2], pa.time32("s")),
    "time64": lambda: pa.array([1, 2], pa.time64("us")),
    "interval": lambda: pa.array([(1, 2, 3)], pa.month_day_nano_interval()),
    "null": lambda: pa.nulls(2),
    "dictionary_of_lists": lambda: pa.DictionaryArray.from_arrays(
        pa.array([0, 0]), pa.array([[1, 2]])
    ),
    "extension_of_structs": lambda: pa.ExtensionArray.from_storage(
        Labels(pa.struct([("a", pa.int64())])), pa.array([{"a": 1}])
    ),
}
_NEVER_NUMBERS_HINT = (
    r"whose values become Python objects that are never {dtype} values\. hint: convert the "
    r"parts that hold numbers \(x\.flatten\(\) for a list's values, x\.field\(name\) for a "
    r"struct's fields\) or cast the column with pyarrow first \(x\.cast\(\.\.\.\)\); "
    r"interop\.to_numpy\(x, dtype=object\) gives the objects themselves"
)


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.bool_, np.dtype("M8[s]")])
@pytest.mark.parametrize("kind", NEVER_NUMBERS)
def test_a_numeric_dtype_for_objects_that_are_never_numbers_is_refused_before_any_work(
    kind: str, dtype: Any
) -> None:
    x = NEVER_NUMBERS[kind]()
    hint = _NEVER_NUMBERS_HINT.format(dtype=re.escape(str(np.dtype(dtype))))
    for column in (x, pa.chunked_array([x])):
        with pytest.raises(ConversionError, match=hint) as planned:
            interop.explain(column, dtype=dtype)
        with pytest.raises(ConversionError, match=hint) as done:
            interop.to_numpy(column, dtype=dtype)
        assert str(planned.value) == str(done.value)
        if kind != "dictionary_of_lists":  # (which pyarrow refuses to decode)
            # dtype=object still gives the objects.
            assert interop.to_numpy(column, dtype=object).shape == (len(x),)
    with pytest.raises(ConversionError, match=r"\['c'\]: .*" + hint):
        interop.to_numpy_tree({"c": x}, dtype=dtype)


def test_text_and_decimals_cast_as_numpy_casts_them() -> None:
    # Text and decimals may spell numbers: explain shows the cast, which NumPy does,
    # and a value that is not a number raises NumPy's own error, as to_numpy documents.
    for x in (
        pa.array(["1.5", "-2"]),
        pa.array([b"1.5", b"-2"]),
        pa.array(["1.5", "-2"]).dictionary_encode(),
        pa.array([1.5, -2.0]).cast(pa.decimal128(4, 1)),
    ):
        plan = interop.explain(x, dtype=np.float64)
        assert plan.steps == ("pyarrow_to_numpy", "cast") and plan.dtype == np.float64
        out = interop.to_numpy(x, dtype=np.float64)
        assert out.dtype == np.float64 and out.tolist() == [1.5, -2.0]
    words = pa.array(["1.5", "a"])
    assert interop.explain(words, dtype=np.float64).steps == ("pyarrow_to_numpy", "cast")
    with pytest.raises(ValueError, match="could not convert string to float: 'a'") as info:
        interop.to_numpy(words, dtype=np.float64)
    assert not isinstance(info.value, interop.InteropError)


def test_nulls_of_types_without_nan_hint_at_to_numpy_in_convert() -> None:
    torch = load_framework("torch")
    x = pa.DictionaryArray.from_arrays(pa.array([0, None]), pa.array([10]))
    with pytest.raises(
        ConversionError,
        match=r"1 null in 2 values: .*dtype=object to get None for each null; convert, "
        r"convert_tree and iter_convert take no dtype=: pass it to interop\.to_numpy",
    ):
        interop.convert(x, torch.name)


def test_an_aligned_copy_of_python_objects_holds_them() -> None:
    # In a process of its own: references written over raw memory crash the process.
    code = """
        import numpy as np
        from interop._memory import aligned_copy
        a = np.array(["a", None, 1.5, [2]], dtype=object)
        for _ in range(20):
            out = aligned_copy(a)
            assert out.dtype == object and out.tolist() == a.tolist()
            assert not np.shares_memory(out, a) and out.flags.c_contiguous
        assert aligned_copy(np.arange(3.0), object).tolist() == [0.0, 1.0, 2.0]
        print("ok")
    """
    assert _python(code).strip() == "ok"


def test_an_empty_column_of_an_extension_that_converts_itself() -> None:
    x = pa.chunked_array([], Degrees())
    out = interop.to_numpy(x, dtype=object)
    assert out.shape == (0,) and out.dtype == object


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: pa.array([1, None, 3]), [1, None, 3]),
        (lambda: pa.array([True, None]), [True, None]),
        (lambda: pa.array(["a", None]), ["a", None]),
        (lambda: pa.array([[1.0], None]), [[1.0], None]),
        (lambda: pa.array([0, None], pa.date32()), [dt.date(1970, 1, 1), None]),
        (
            lambda: pa.ExtensionArray.from_storage(pa.bool8(), pa.array([1, None, 0], pa.int8())),
            [True, None, False],
        ),
        (
            lambda: pa.ExtensionArray.from_storage(
                pa.uuid(), pa.array([b"0123456789abcdef", None], pa.binary(16))
            ),
            [b"0123456789abcdef", None],
        ),
        (
            lambda: pa.DictionaryArray.from_arrays(pa.array([0, 1, None]), pa.array([10, None])),
            [10, None, None],
        ),
        (
            lambda: pa.RunEndEncodedArray.from_arrays([2, 4, 5], [1, None, 3]).slice(1),
            [1, None, None, 3],
        ),
        (lambda: pa.chunked_array([[1], [None, 2]]), [1, None, 2]),
    ],
    ids=[
        "int64",
        "bool",
        "string",
        "list",
        "date32",
        "bool8",
        "uuid",
        "dictionary",
        "run_end_encoded",
        "chunked",
    ],
)
def test_dtype_object_gives_none_for_each_null(make: Any, expected: list[Any]) -> None:
    x = make()
    # (Types of Python objects are refused as such; the others for their nulls.)
    with pytest.raises(ConversionError, match=r"hint: .*dtype=object"):
        interop.to_numpy(x)
    plan = interop.explain(x, dtype=object)
    out = interop.to_numpy(x, dtype=object)
    assert plan.steps == ("none_for_nulls",) and plan.dtype == out.dtype == np.dtype(object)
    assert _plain(out) == expected
    # The values keep their type (pyarrow's conversion makes floats of encoded integers).
    assert [type(v) for v in _plain(out)] == [type(v) for v in expected]


def test_nulls_among_encoded_values_are_nulls() -> None:
    # The rows of a dictionary or run-end encoded array that point to a null value
    # are null, though the array's own null_count leaves them out.
    for x in (
        pa.DictionaryArray.from_arrays(pa.array([0, 1, 1]), pa.array([10, None])),
        pa.RunEndEncodedArray.from_arrays([2, 4], [1.0, None]),
    ):
        assert x.null_count == 0
        with pytest.raises(ConversionError, match="2 nulls in"):
            interop.to_numpy(x)
        with pytest.raises(ConversionError, match="2 nulls in"):
            interop.explain(x)
    # A slice that reaches no null value has none.
    ree = pa.RunEndEncodedArray.from_arrays([2, 4], [1.0, None]).slice(0, 2)
    assert interop.to_numpy(ree).tolist() == [1.0, 1.0]


def test_nulls_in_convert_hint_at_to_numpy_for_the_dtype() -> None:
    torch = load_framework("torch")
    with pytest.raises(ConversionError, match=r"1 null.*take no dtype=: pass it to interop"):
        interop.convert(pa.array([1.0, None]), torch.name)


def test_copy_true_copies_the_rows_of_object_arrays() -> None:
    x = pa.array([[1.0, 2.0], [3.0], None])
    values = np.frombuffer(x.values.buffers()[1], np.float64)
    shared = interop.to_numpy(x, dtype=object)  # (rows: read-only views of Arrow memory)
    assert np.shares_memory(shared[0], values) and not shared[0].flags.writeable
    for column in (x, pa.chunked_array([x])):
        plan = interop.explain(column, dtype=object, copy=True)
        out = interop.to_numpy(column, dtype=object, copy=True)
        assert plan.steps[-1] == "copy_rows" and not plan.zero_copy
        assert [None if r is None else r.tolist() for r in out] == [[1.0, 2.0], [3.0], None]
        for row in out[:2]:
            assert row.flags.owndata and row.flags.writeable
            assert not np.shares_memory(row, values)
        out[0][0] = -1.0
        assert x.to_pylist()[0] == [1.0, 2.0]
    nested = pa.array([[[1, 2], [3]]])
    inner = np.frombuffer(nested.values.values.buffers()[1], np.int64)
    row = interop.to_numpy(nested, dtype=object, copy=True)[0]
    assert all(r.flags.owndata and not np.shares_memory(r, inner) for r in row)


def test_copy_true_copies_the_arrays_inside_struct_and_map_rows() -> None:
    # pyarrow makes a struct row a dict and a map row a list of (key, value) tuples;
    # the arrays inside them are read-only views of Arrow memory.
    structs = pa.array([{"a": [1, 2], "b": 3}, {"a": [4], "b": 5}])
    maps = pa.array([[("k", [1, 2])], [("j", [3])]], pa.map_(pa.string(), pa.list_(pa.int64())))
    struct_values = np.frombuffer(structs.field("a").values.buffers()[1], np.int64)
    map_values = np.frombuffer(maps.items.values.buffers()[1], np.int64)
    shared = interop.to_numpy(structs, dtype=object)
    assert np.shares_memory(shared[0]["a"], struct_values)
    assert not shared[0]["a"].flags.writeable
    assert np.shares_memory(interop.to_numpy(maps, dtype=object)[0][0][1], map_values)
    for column in (structs, pa.chunked_array([structs])):
        plan = interop.explain(column, dtype=object, copy=True)
        out = interop.to_numpy(column, dtype=object, copy=True)
        assert plan.steps == ("pyarrow_to_numpy", "copy_rows")
        assert [type(r) for r in out] == [dict, dict]
        assert [(r["a"].tolist(), r["b"]) for r in out] == [([1, 2], 3), ([4], 5)]
        for row in out:
            assert row["a"].flags.owndata and row["a"].flags.writeable
            assert not np.shares_memory(row["a"], struct_values)
        out[0]["a"][0] = -1
        assert structs.to_pylist()[0] == {"a": [1, 2], "b": 3}
    for column in (maps, pa.chunked_array([maps])):
        out = interop.to_numpy(column, dtype=object, copy=True)
        assert [type(r) for r in out] == [list, list]
        assert [[(k, v.tolist()) for k, v in r] for r in out] == [[("k", [1, 2])], [("j", [3])]]
        for row in out:
            (_, value), *_ = row
            assert type(row[0]) is tuple and value.flags.owndata and value.flags.writeable
            assert not np.shares_memory(value, map_values)
        out[0][0][1][0] = -1
        assert maps.to_pylist()[0] == [("k", [1, 2])]


def test_tables_are_containers_of_columns() -> None:
    table = pa.table({"x": np.arange(3.0), "y": pa.chunked_array([[1, 2], [3]])})
    out = interop.to_numpy_tree(table)
    assert list(out) == ["x", "y"] and out["y"].tolist() == [1, 2, 3]
    assert np.shares_memory(out["x"], table.column("x").chunk(0).to_numpy())
    batch = pa.record_batch({"x": np.arange(3.0)})
    assert interop.to_numpy_tree(batch)["x"].tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(UnsupportedTypeError, match="to_numpy_tree"):
        interop.to_numpy(table)
    nested = interop.to_numpy_tree({"batch": table, "step": 3})
    assert nested["step"] == 3 and nested["batch"]["x"].shape == (3,)
    with pytest.raises(ConversionError, match=r"tree\['nulls'\].*1 null"):
        interop.to_numpy_tree({"nulls": pa.table({"a": [1, None]})})
    twice = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    with pytest.raises(ConversionError, match="unique column names"):
        interop.to_numpy_tree(twice)


def test_iter_numpy_over_record_batches() -> None:
    table = pa.table({"x": np.arange(10.0)})
    batches = list(interop.iter_numpy(table.to_batches(max_chunksize=4)))
    assert [len(b["x"]) for b in batches] == [4, 4, 2]
    assert np.array_equal(np.concatenate([b["x"] for b in batches]), np.arange(10.0))


# -- Arrow as a target --------------------------------------------------------------------


def test_convert_1d_is_a_zero_copy_primitive_array() -> None:
    a = np.arange(1000, dtype=np.float32)
    x = interop.convert(a, "arrow")
    assert type(x) is pa.FloatArray and len(x) == 1000
    assert np.shares_memory(x.to_numpy(), a)
    plan = interop.explain(a, to="arrow")
    assert plan.zero_copy and plan.target == "arrow" and plan.readonly
    a[0] = -1  # a mutable source's writes show through, as for JAX and TensorFlow
    assert x[0].as_py() == -1
    del a
    gc.collect()
    assert x.to_numpy()[1:4].tolist() == [1, 2, 3]  # the buffers keep the source alive


def test_convert_nd_is_a_fixed_shape_tensor_of_rows() -> None:
    a = np.arange(24, dtype=np.int64).reshape(4, 3, 2)
    x = interop.convert(a, "arrow")
    assert isinstance(x, pa.FixedShapeTensorArray) and len(x) == 4
    assert list(x.type.shape) == [3, 2] and x.type.value_type == pa.int64()
    assert np.shares_memory(x.to_numpy_ndarray(), a)
    assert np.array_equal(x.to_numpy_ndarray(), a)
    assert np.array_equal(interop.to_numpy(x), a)


def test_convert_copies_what_arrow_cannot_alias() -> None:
    a = np.arange(12.0).reshape(3, 4)
    for view in (a.T, a[:, ::2], a[::-1], a.astype(">f8")):
        plan = interop.explain(view, to="arrow")
        assert not plan.zero_copy, view.strides
        with pytest.raises(CopyRequiredError):
            interop.convert(view, "arrow", copy=False)
        out = interop.convert(view, "arrow")
        assert np.array_equal(interop.to_numpy(out), view)
        assert not np.shares_memory(interop.to_numpy(out), a)
    booleans = interop.convert(np.array([True, False, True]), "arrow")
    assert booleans.to_pylist() == [True, False, True]
    with pytest.raises(CopyRequiredError, match="bits"):
        interop.convert(np.array([True]), "arrow", copy=False)
    owned = interop.convert(a, "arrow", copy=True)
    assert not np.shares_memory(owned.to_numpy_ndarray(), a)


def test_convert_refuses_what_arrow_cannot_hold() -> None:
    with pytest.raises(ConversionError, match="reshape"):
        interop.convert(np.float32(1.0), "arrow")
    with pytest.raises(ConversionError, match="numeric"):
        interop.convert(np.array(["a"]), "arrow")
    with pytest.raises(ValueError, match="Arrow"):
        interop.convert(np.zeros(2), "arrow", device="cuda")
    assert len(interop.convert(np.zeros(2), "arrow", device="cpu")) == 2


@pytest.mark.parametrize("name", ["numpy", "torch", "tensorflow", "jax"])
@pytest.mark.parametrize("copy", [None, False, True])
def test_explain_refuses_0d_data_as_convert_does(name: str, copy: bool | None) -> None:
    # (An Arrow array is a column of rows: the plan refuses what the writer would.)
    framework = load_framework(name)
    for x in (framework.make(np.array(1.5)), 1.5):
        for call in (interop.explain, interop.convert):
            with pytest.raises(ConversionError, match=r"0-d array.*reshape\(1\)"):
                call(x, to="arrow", copy=copy)


def test_variables_and_dask_arrays_are_refused_by_their_number_of_dimensions() -> None:
    # (Neither is viewed at planning: the plan reads the number of dimensions.)
    tf = pytest.importorskip("tensorflow")
    da = pytest.importorskip("dask.array")
    for make in (tf.Variable, lambda v: da.from_array(np.array(v))):
        assert interop.convert(make([1.5]), "arrow").to_pylist() == [1.5]
        with pytest.raises(ConversionError, match="0-d array"):
            interop.explain(make(1.5), to="arrow")


@pytest.mark.parametrize("name", ["torch", "tensorflow", "jax"])
def test_convert_from_every_framework(name: str) -> None:
    framework = load_framework(name)
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    src = framework.make(a)
    x = interop.convert(src, "arrow")
    out = interop.to_numpy(x)
    assert np.array_equal(out, a) and out.dtype == np.float32
    if interop.explain(src, to="arrow").zero_copy:
        assert np.shares_memory(out, framework.native(src))
    back = interop.convert(x, name)
    assert np.array_equal(interop.to_numpy(back), a)


@pytest.fixture
def simdevice(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimBackend]:
    yield from registered(monkeypatch)


def test_device_data_goes_through_the_host_transfer(simdevice: SimBackend) -> None:
    x = SimArray(np.arange(6.0).reshape(3, 2), "w")
    plan = interop.explain(x, to="arrow")
    assert plan.transfer and not plan.zero_copy and plan.target == "arrow"
    out = interop.convert(x, "arrow")
    assert isinstance(out, pa.FixedShapeTensorArray)
    assert np.array_equal(interop.to_numpy(out), x.data)
    assert simdevice.log == ["blocking w"]
    with pytest.raises(CopyRequiredError):
        interop.convert(x, "arrow", copy=False)


def test_convert_torch_tensor_with_grad() -> None:
    torch = pytest.importorskip("torch")
    t = torch.arange(6.0, requires_grad=True) * 2
    x = interop.convert(t, "arrow")
    assert x.to_pylist() == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    assert t.requires_grad and t.grad_fn is not None
    to_torch = interop.convert(x, "torch")
    assert not to_torch.requires_grad
    to_torch[0] = 100  # a writable tensor never aliases Arrow's immutable memory
    assert x[0].as_py() == 0.0


def test_arrow_to_arrow_keeps_or_copies() -> None:
    x = pa.array([1.0, 2.0])
    assert interop.convert(x, "arrow") is x
    copied = interop.convert(x, "arrow", copy=True)
    assert copied.equals(x) and not np.shares_memory(copied.to_numpy(), x.to_numpy())


# -- exact dtypes through Arrow -----------------------------------------------------------


@pytest.mark.parametrize("name", ENCODED)
def test_exact_dtypes_round_trip_bit_exactly(name: str) -> None:
    for shape in ((16,), (4, 2, 3)):
        a = _exact(name, shape)
        x = interop.convert(a, "arrow")
        assert isinstance(x.type, reading.DtypeType) and x.type.extension_name == "interop.dtype"
        storage = x.storage if len(shape) == 1 else x.storage.flatten()
        assert storage.type == pa.uint8() if a.itemsize == 1 else True
        out = interop.to_numpy(x)
        assert _same_bits(out, a), name
        assert np.shares_memory(out, a) and interop.explain(a, to="arrow").zero_copy
        assert _same_bits(x.to_numpy(), a)  # pyarrow's own to_numpy gives the dtype too
        if len(shape) == 1:
            assert _same_bits(np.asarray(x[3].as_py()).reshape(()), a[3])


def test_exact_dtype_storage_is_documented_plain_unsigned_integers() -> None:
    a = _exact("bfloat16", (3, 2))
    x = interop.convert(a, "arrow")
    assert x.type.storage_type == pa.list_(pa.uint16(), 2)
    meta = json.loads(x.type.__arrow_ext_serialize__())
    assert meta == {"dtype": "bfloat16", "shape": [2]}
    flat = interop.convert(_exact("float8_e4m3fn", (5,)), "arrow")
    assert flat.type.storage_type == pa.uint8()
    assert json.loads(flat.type.__arrow_ext_serialize__()) == {"dtype": "float8_e4m3fn"}
    assert interop.convert(_exact("complex32", (2,)), "arrow").type.storage_type == pa.uint32()
    assert interop.convert(_exact("complex128", (2,)), "arrow").type.storage_type == pa.binary(16)


def test_bad_extension_metadata_is_refused() -> None:
    for bad in (b"not json", b'{"dtype": "object"}', b'{"dtype": "bfloat16", "shape": [-1]}'):
        with pytest.raises(ValueError, match=r"interop\.dtype"):
            reading.DtypeType.__arrow_ext_deserialize__(pa.uint16(), bad)
    with pytest.raises(ValueError, match="storage"):
        reading.DtypeType.__arrow_ext_deserialize__(pa.uint8(), b'{"dtype": "bfloat16"}')
    # The same metadata on a table's field (from a file, another process): interop's error.
    for bad in (b'{"dtype": "bfloat16"}', b'{"dtype": "float32"}', b"not json"):
        field = pa.field(
            "w",
            pa.uint8(),
            metadata={b"ARROW:extension:name": b"interop.dtype", b"ARROW:extension:metadata": bad},
        )
        table = pa.Table.from_arrays([pa.array([1, 2], pa.uint8())], schema=pa.schema([field]))
        with pytest.raises(ConversionError, match=r"column 'w'.*hint") as info:
            interop.to_numpy_tree(table)
        assert isinstance(info.value.__cause__, ValueError)


def _table_of_exact_dtypes() -> tuple[Any, dict[str, np.ndarray[Any, Any]]]:
    arrays = {name: _exact(name, (6, 2), seed=i) for i, name in enumerate(ENCODED)}
    arrays["flat_bf16"] = _exact("bfloat16", (6,), seed=99)
    arrays["f32"] = np.arange(12, dtype=np.float32).reshape(6, 2)
    table = pa.table({k: interop.convert(v, "arrow") for k, v in arrays.items()})
    return table, arrays


@pytest.mark.slow  # (a reader in another process, per format)
@pytest.mark.parametrize("suffix", [".parquet", ".arrow"])
def test_exact_dtypes_survive_files_and_other_processes(suffix: str, tmp_path: Path) -> None:
    table, arrays = _table_of_exact_dtypes()
    path = tmp_path / f"t{suffix}"
    if suffix == ".parquet":
        pq.write_table(table, path)
        read = pq.read_table(path)
    else:
        feather.write_feather(table, path)
        read = feather.read_table(path)
    tree = interop.to_numpy_tree(read)
    for key, a in arrays.items():
        assert _same_bits(tree[key], a), key
        assert _same_bits(interop.to_numpy(read.column(key)), a), key
    np.save(tmp_path / "expected.npy", arrays["bfloat16"].view(np.uint16))
    reader = "pq.read_table" if suffix == ".parquet" else "feather.read_table"
    check = f"""
        import numpy as np
        t = {reader}({str(path)!r})
        out = interop.to_numpy(t.column("bfloat16"))
        assert out.dtype.name == "bfloat16", out.dtype
        assert (out.view(np.uint16) == np.load({str(tmp_path / "expected.npy")!r})).all()
        print("ok")
    """
    imports = "import pyarrow.parquet as pq, pyarrow.feather as feather\n"
    # interop imported before pyarrow, and after it: the type is registered either way.
    assert _python("import interop\n" + imports + textwrap.dedent(check)).strip() == "ok"
    assert _python(imports + "import interop\n" + textwrap.dedent(check)).strip() == "ok"


def test_a_reader_without_interop_sees_unsigned_integers_and_metadata(tmp_path: Path) -> None:
    table, _ = _table_of_exact_dtypes()
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    code = f"""
        import json, sys
        import pyarrow.parquet as pq
        t = pq.read_table({str(path)!r})
        field = t.schema.field("bfloat16")
        meta = field.metadata
        print(field.type.value_type, field.type.list_size, meta[b"ARROW:extension:name"].decode(),
              meta[b"ARROW:extension:metadata"].decode(), "interop" in sys.modules)
    """
    out = _python(code, cwd=tmp_path).split()
    assert out == ["uint16", "2", "interop.dtype", '{"dtype":"bfloat16","shape":[2]}', "False"]


def test_columns_read_without_the_type_registered_are_restored(tmp_path: Path) -> None:
    table, arrays = _table_of_exact_dtypes()
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    pa.unregister_extension_type("interop.dtype")
    try:
        plain = pq.read_table(path)
    finally:
        reading.register()
    assert plain.schema.field("bfloat16").type == pa.list_(pa.uint16(), 2)
    tree = interop.to_numpy_tree(plain)
    for key, a in arrays.items():
        assert _same_bits(tree[key], a), key


def test_the_import_hook_leaves_pyarrow_as_it_was() -> None:
    code = """
        import sys, interop
        from interop import _import_hooks
        assert "pyarrow" not in sys.modules
        assert _import_hooks._finder in sys.meta_path
        import pyarrow
        assert _import_hooks._finder not in sys.meta_path, sys.meta_path
        assert type(pyarrow.__loader__).__name__ == "SourceFileLoader", pyarrow.__loader__
        assert pyarrow.__spec__.loader is pyarrow.__loader__
        print(pyarrow.types.is_integer(pyarrow.int8()))
    """
    assert _python(code).strip() == "True"


def test_testing_catalogue_builds_arrow_arrays() -> None:
    arrow = testing.framework("arrow")
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    x = arrow.make(a)
    assert np.shares_memory(interop.to_numpy(x), arrow.native(x))
    b = _exact("bfloat16", (4,))
    y = arrow.make(b)
    assert np.shares_memory(interop.to_numpy(y), arrow.native(y))
    assert arrow.native(y).dtype == uint_of("bfloat16")


@pytest.mark.parametrize("module", ["reading", "writing", "encoding"])
def test_importing_a_module_of_the_backend_first_registers_the_type(module: str) -> None:
    # The reading module imports pyarrow, whose import hook imports the reading module
    # while it is being imported; the writing module imports pyarrow before the reading
    # module; the encoding module imports no pyarrow. Whichever comes first, the type
    # is registered all the same, with no warning.
    code = f"""
        import warnings
        warnings.simplefilter("error")
        from interop.backends.arrow import {module}
        from interop.backends.arrow import reading
        import pyarrow as pa, numpy as np, ml_dtypes
        ty = reading.DtypeType(np.dtype(ml_dtypes.bfloat16))
        storage = pa.array([1], pa.uint16())
        batch = pa.record_batch([pa.ExtensionArray.from_storage(ty, storage)], ["a"])
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        read = pa.ipc.open_stream(sink.getvalue()).read_all()
        print(read.schema.field("a").type.extension_name)
    """
    assert _python(code).strip() == "interop.dtype"


@pytest.mark.parametrize(
    "make",
    [
        lambda: pa.array(["ab"]),
        lambda: pa.array(["ab"]).dictionary_encode(),
        lambda: pa.array([{"a": 1}]),
        lambda: pa.array([dt.time(1)]),
        lambda: pa.chunked_array([["a"], ["b"]]),
    ],
)
@pytest.mark.parametrize("dtype", ["V", "V2", [("key", "V2")]])
def test_objects_that_are_no_bytes_are_refused_raw_bytes_by_the_plan(make: Any, dtype: Any) -> None:
    x = make()
    with pytest.raises(TypeError):
        x.to_numpy(zero_copy_only=False).astype(dtype)  # (every value fails)
    for call in (interop.explain, interop.to_numpy):
        with pytest.raises(ConversionError, match="casts to no such raw bytes"):
            call(x, dtype=dtype)


@pytest.mark.parametrize(
    "make",
    [
        lambda: pa.array([[1, 2]]),
        lambda: pa.array([[1, 2]], pa.large_list(pa.int8())),
        lambda: pa.array([[1, 2]], pa.list_(pa.int32(), 2)),
    ],
)
def test_list_rows_cast_only_into_raw_bytes_of_a_size(make: Any) -> None:
    # NumPy takes an array's bytes into V8, say, but into no np.void or V field.
    x = make()
    objects = x.to_numpy(zero_copy_only=False)
    for dtype in ("V", [("key", "V2")]):
        with pytest.raises((TypeError, ValueError)):
            objects.astype(dtype)
        with pytest.raises(ConversionError, match="casts to no such raw bytes"):
            interop.explain(x, dtype=dtype)
    assert interop.to_numpy(x, dtype="V2").tolist() == objects.astype("V2").tolist()


def test_binary_values_and_numbers_cast_to_raw_bytes() -> None:
    for x in (pa.array([b"ab"]), pa.array([b"ab"]).dictionary_encode(), pa.array([1, 2])):
        expected = x.to_numpy(zero_copy_only=False).astype("V2")
        assert interop.to_numpy(x, dtype="V2").tolist() == expected.tolist()


def test_text_to_bool_is_refused_rather_than_cast_by_truth() -> None:
    # NumPy casts the objects by truth: "False" and "0" would be True.
    pa = pytest.importorskip("pyarrow")
    refused = r"by their truth .*x\.cast\(pa\.bool_\(\)\)"
    for column in (pa.array(["False", "0", "no"]), pa.chunked_array([["False"], ["0"]])):
        with pytest.raises(interop.ConversionError, match=refused):
            interop.explain(column, dtype=bool)
        with pytest.raises(interop.ConversionError, match=refused):
            interop.to_numpy(column, dtype=bool)
    assert interop.to_numpy(pa.array(["1.5", "2"]), dtype=np.float64).tolist() == [1.5, 2.0]
    # No ml_dtypes format parses text either.
    for call in (interop.explain, interop.to_numpy):
        with pytest.raises(interop.ConversionError, match="no ml_dtypes format parses"):
            call(pa.array(["1.5"]), dtype=ml_dtypes.bfloat16)
