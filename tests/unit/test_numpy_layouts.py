"""NumPy inputs in every layout come back unchanged (``copy=None``) or exact (``copy=True``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import interop

BASE = np.arange(24, dtype=np.float64).reshape(4, 6)

LAYOUTS: dict[str, Callable[[], np.ndarray]] = {
    "c-contiguous": lambda: BASE.copy(),
    "negative-strides": lambda: BASE[::-1, ::-2],
    "fortran": lambda: np.asfortranarray(BASE),
    "transposed": lambda: BASE.T,
    "big-endian": lambda: BASE.astype(">f8"),
    "little-endian-int": lambda: BASE.astype("<i2"),
    "big-endian-complex": lambda: (BASE + 1j).astype(">c16"),
    "big-endian-fortran-sliced": lambda: np.asfortranarray(BASE.astype(">i4"))[1:, ::3],
    "0-d": lambda: np.array(3.5),
    "0-d-big-endian": lambda: np.array(7, dtype=">u4"),
    "zero-size": lambda: np.empty((0, 3)),
    "zero-size-strided": lambda: BASE[:, 6:],
    "broadcast": lambda: np.broadcast_to(np.arange(3.0), (4, 3)),
    "read-only": lambda: _readonly(BASE.copy()),
    "structured": lambda: np.array([(1, 2.0), (3, 4.0)], dtype=[("a", ">i4"), ("b", "<f8")]),
}


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


@pytest.fixture(params=list(LAYOUTS))
def layout(request: pytest.FixtureRequest) -> np.ndarray:
    return LAYOUTS[request.param]()


def test_copy_none_returns_the_same_object(layout: np.ndarray) -> None:
    flags = (layout.flags.writeable, layout.strides, layout.dtype)
    assert interop.to_numpy(layout) is layout
    assert interop.to_numpy(layout, copy=False) is layout
    plan = interop.explain(layout)
    assert plan.zero_copy and plan.steps == () and plan.dtype == layout.dtype
    assert (layout.flags.writeable, layout.strides, layout.dtype) == flags


def test_copy_true_is_exact(layout: np.ndarray) -> None:
    before = layout.copy()
    out = interop.to_numpy(layout, copy=True)
    assert out is not layout
    assert out.dtype == layout.dtype  # byte order included: '>f8' stays '>f8'
    assert out.dtype.byteorder == layout.dtype.byteorder
    assert out.shape == layout.shape
    np.testing.assert_array_equal(out, layout)
    assert out.tobytes() == layout.tobytes()
    assert out.flags.writeable and not np.shares_memory(out, layout)
    out[...] = np.zeros((), dtype=out.dtype)  # write, then read the input back
    np.testing.assert_array_equal(layout, before)
    assert interop.explain(layout, copy=True).steps == ("copy",)


def test_copy_true_keeps_memory_order() -> None:
    f = np.asfortranarray(BASE)
    assert interop.to_numpy(f, copy=True).flags.f_contiguous
    assert interop.to_numpy(BASE, copy=True).flags.c_contiguous


def test_numpy_scalar_becomes_a_0d_array() -> None:
    s = np.float32(2.5)
    out = interop.to_numpy(s)
    assert type(out) is np.ndarray and out.shape == () and out.dtype == np.float32
    assert out == s
    with pytest.raises(interop.CopyRequiredError):
        interop.to_numpy(s, copy=False)


# -- masked arrays and other subclasses ------------------------------------------------------


def _masked() -> np.ma.MaskedArray:
    """Readings where -9999 marks a missing value, masked as such (hard mask, fill value 0)."""
    ma = np.ma.masked_equal(np.array([[1.0, -9999.0, 3.0], [4.0, 5.0, -9999.0]]), -9999.0)
    ma.harden_mask()
    ma.fill_value = 0.0
    return ma


def test_masked_array_is_returned_as_is() -> None:
    ma = _masked()
    assert interop.to_numpy(ma) is ma
    assert interop.to_numpy(ma, copy=False) is ma


@pytest.mark.parametrize(
    "options",
    [
        {"copy": True},
        {"dtype": np.float32},
        {"dtype": np.float32, "copy": True},
        {"float_dtype": np.float32},
    ],
    ids=["copy", "cast", "cast-copy", "float_dtype"],
)
def test_masked_array_keeps_its_mask_where_it_is_copied(options: dict[str, object]) -> None:
    """copy=True (and a cast) copy the data and the mask: masked entries never become data."""
    ma = _masked()
    before = (ma.data.copy(), ma.mask.copy())
    out = interop.to_numpy(ma, **options)  # type: ignore[arg-type]
    assert type(out) is np.ma.MaskedArray
    assert out.mask.tolist() == [[False, True, False], [False, False, True]]
    assert out.compressed().tolist() == [1.0, 3.0, 4.0, 5.0] and out.mean() == 3.25
    assert out.dtype == (np.float64 if options == {"copy": True} else np.float32)
    assert out.fill_value == 0.0 and out.hardmask
    assert not np.shares_memory(out.data, ma.data)
    assert not np.shares_memory(out.mask, ma.mask)
    assert out.flags.writeable
    out.data[...] = 7.0  # write, then read the input back
    out.mask[...] = False
    np.testing.assert_array_equal(ma.data, before[0])
    np.testing.assert_array_equal(ma.mask, before[1])
    assert interop.explain(ma, **options).steps in (("copy",), ("cast",))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "options", [{"upcast": True}, {"float_dtype": np.float32}, {"dtype": np.float32}]
)
@pytest.mark.parametrize("printed", [False, True])
def test_a_masked_cast_keeps_the_mask_whatever_its_fill_value(
    options: dict[str, object], printed: bool
) -> None:
    # NumPy casts a masked array's fill value too, once it was read (by a repr): a
    # bfloat16 array's default fill value (b'???') casts to no float.
    ml_dtypes = pytest.importorskip("ml_dtypes")
    data = np.array([1.0, -9999.0, 3.0]).astype(ml_dtypes.bfloat16)
    ma = np.ma.array(data, mask=[False, True, False])
    if printed:
        repr(ma)
    plan = interop.explain(ma, **options)  # type: ignore[arg-type]
    out = interop.to_numpy(ma, **options)  # type: ignore[arg-type]
    assert type(out) is np.ma.MaskedArray and out.dtype == np.float32 == plan.dtype
    assert out.mask.tolist() == [False, True, False]
    assert out.compressed().tolist() == [1.0, 3.0]
    kept = np.ma.masked_equal(np.array([1.0, 2.0]), 2.0)
    kept.fill_value = -1.0  # a fill value the new dtype holds is kept
    assert interop.to_numpy(kept, dtype=np.float32).fill_value == -1.0
    texts = np.ma.array(np.array(["1", "2"]), mask=[False, True])
    repr(texts)  # (its default fill value, 'N/A', reads as no number)
    assert interop.to_numpy(texts, dtype=np.float32).compressed().tolist() == [1.0]


def test_masked_array_keeps_its_mask_in_trees() -> None:
    ma = _masked()
    with interop.options(copy=True):
        out = interop.to_numpy_tree({"x": [ma]})["x"][0]
    assert type(out) is np.ma.MaskedArray and out.mask.sum() == 2
    assert not np.shares_memory(out.mask, ma.mask)
    assert interop.to_numpy_tree({"x": ma}, copy=True)["x"].mean() == ma.mean()


def test_masked_array_without_a_mask_copies_as_one() -> None:
    ma = np.ma.array([1.0, 2.0])  # np.ma.nomask
    out = interop.to_numpy(ma, copy=True)
    assert type(out) is np.ma.MaskedArray and out.mask is np.ma.nomask
    assert out.tolist() == [1.0, 2.0] and not np.shares_memory(out, ma)


def _memmap(tmp: Path) -> np.ndarray:
    m = np.memmap(tmp / "data.bin", dtype=np.float64, mode="w+", shape=BASE.shape)
    m[...] = BASE
    return m


@pytest.mark.parametrize(
    "make",
    [_memmap, lambda tmp: np.rec.fromarrays([np.arange(3), np.arange(3.0)], names="a,b")],
    ids=["memmap", "recarray"],
)
def test_other_subclasses_copy_into_plain_arrays_of_the_same_values(
    make: Callable[[Path], np.ndarray], tmp_path: Path
) -> None:
    # (A copy of a memmap is no longer the file's memory.)
    x = make(tmp_path)
    assert interop.to_numpy(x) is x
    out = interop.to_numpy(x, copy=True)
    assert type(out) is np.ndarray and out.dtype == x.dtype and out.shape == x.shape
    assert out.tobytes() == x.tobytes() and not np.shares_memory(out, x)


def test_masked_items_of_a_list_are_refused_not_turned_into_data() -> None:
    # np.asarray builds one plain array from a list: a mask among the items would go.
    ma = _masked()
    for x in ([ma, ma], (ma,), [[1.0, 2.0, 3.0], ma[0]], [1.0, np.ma.masked]):
        with pytest.raises(interop.ConversionError, match=r"np\.ma\.stack") as info:
            interop.to_numpy(x)
        assert "as an item of a list or tuple" in str(info.value)
        with pytest.raises(interop.ConversionError, match="masked entries"):
            interop.explain(x)
        with pytest.raises(interop.ConversionError, match="masked entries"):
            interop.convert(x, "numpy")
    unmasked = np.ma.array([1.0, 2.0])
    assert interop.to_numpy([unmasked, [3.0, 4.0]]).tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert interop.to_numpy([1, 2.5, True]).tolist() == [1.0, 2.5, 1.0]


def test_masked_dask_items_of_a_list_are_refused_once_computed() -> None:
    da = pytest.importorskip("dask.array")
    x = da.ma.masked_greater(da.arange(4, chunks=2), 2)
    with pytest.raises(interop.ConversionError, match="1 of 4 entries masked"):
        interop.to_numpy([x])
    assert interop.to_numpy([da.arange(4, chunks=2)]).tolist() == [[0, 1, 2, 3]]


class _TaggedMasked(np.ma.MaskedArray):
    """A subclass of MaskedArray, as a library might make one."""


@pytest.mark.parametrize(
    "options", [{"copy": True}, {"dtype": np.float32}, {"float_dtype": np.float32}]
)
def test_a_subclass_of_masked_array_stays_one_when_copied_or_cast(
    options: dict[str, object],
) -> None:
    tagged = np.ma.array([1.0, 2.0, 3.0], mask=[False, True, False]).view(_TaggedMasked)
    tagged.harden_mask()
    out = interop.to_numpy(tagged, **options)  # type: ignore[arg-type]
    assert type(out) is _TaggedMasked and out.hardmask
    assert out.mask.tolist() == [False, True, False] and not np.shares_memory(out, tagged)


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.zeros(3, dtype=[("a", "i4"), ("b", "f8")]),
        lambda: np.zeros(3, dtype=[("a", "i4"), ("b", "f8")]).view(np.recarray),
        lambda: np.zeros(3, dtype=[("float0", "V")]),  # JAX's float0: no bytes to read
    ],
    ids=["structured", "recarray", "float0"],
)
def test_a_cast_numpy_makes_for_no_values_is_refused_by_the_plan(
    make: Callable[[], np.ndarray],
) -> None:
    # Before any work, at every entry point, and explain says so too (it planned a cast).
    x = make()
    message = r"expected a dtype= that .* data casts to, got dtype=float32.*hint: (convert|view)"
    calls: dict[str, Callable[[], object]] = {  # by entry point
        "explain": lambda: interop.explain(x, dtype=np.float32),
        "to_numpy": lambda: interop.to_numpy(x, dtype=np.float32),
        "tree": lambda: interop.to_numpy_tree({"k": x}, dtype=np.float32),
        "numpy_function": lambda: interop.numpy_function(lambda a: a, dtype=np.float32)(x),
    }
    for call in calls.values():
        with pytest.raises(interop.ConversionError, match=message):
            call()
    # Casts NumPy makes stay: one field, to objects, to the same fields widened.
    one_field = np.zeros(2, dtype=[("a", "f4")])
    assert interop.to_numpy(one_field, dtype=np.float64).dtype == np.float64
    assert interop.to_numpy(x, dtype=object).dtype == object


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ([("a", "f4"), ("b", "i4")], [("a", "f4")]),  # two fields to one
        ([("a", "f4")], [("a", "f4"), ("b", "i4")]),  # one to two
        ([("a", "f4"), ("b", "i4")], "V4"),  # fields to raw bytes
        ("bfloat16", "V2"),  # an ml_dtypes format to raw bytes
    ],
)
def test_casts_to_fields_or_bytes_numpy_makes_for_no_values_are_refused_by_the_plan(
    source: object, target: object
) -> None:
    import ml_dtypes

    src = np.dtype(ml_dtypes.bfloat16) if source == "bfloat16" else np.dtype(source)  # type: ignore[call-overload]
    x = np.zeros(2, dtype=src)
    for call in (interop.explain, interop.to_numpy):
        with pytest.raises(interop.ConversionError, match="which NumPy casts no such data to"):
            call(x, dtype=target)  # type: ignore[operator]


def test_casts_between_fields_and_bytes_numpy_makes_still_run() -> None:
    two = np.zeros(2, dtype=[("a", "i4"), ("b", "f8")])
    widened = interop.to_numpy(two, dtype=[("a", "i8"), ("b", "f4")])
    assert widened.dtype == np.dtype([("a", "i8"), ("b", "f4")])
    assert interop.to_numpy(np.zeros(2, "V4"), dtype="V8").dtype == np.dtype("V8")
    assert interop.to_numpy(np.zeros(2, "f4"), dtype="V4").dtype == np.dtype("V4")
    # Raw bytes to raw bytes, as a field too.
    for source, target in [
        ([("a", "V2")], [("z", "V2")]),
        ([("a", "V2"), ("x", "f4")], [("a", "V2"), ("x", "f8")]),
        ("V4", [("z", "V4")]),
    ]:
        out = interop.to_numpy(np.zeros(2, source), dtype=target)
        assert (
            out.dtype == np.dtype(target)
            and out.tolist() == np.zeros(2, source).astype(target).tolist()
        )


@pytest.mark.parametrize(
    ("source", "target"),
    [("bfloat16", [("a", "V2")]), ([("a", "i4"), ("b", "f4")], [("a", "O")])],
)
def test_casts_into_fields_numpy_makes_for_no_values_are_refused_too(
    source: object, target: object
) -> None:
    import ml_dtypes

    src = np.dtype(ml_dtypes.bfloat16) if source == "bfloat16" else np.dtype(source)  # type: ignore[call-overload]
    for call in (interop.explain, interop.to_numpy):
        with pytest.raises(interop.ConversionError, match="which NumPy casts no such data to"):
            call(np.zeros(2, src), dtype=target)  # type: ignore[operator]


def test_raw_bytes_cast_as_numpy_reads_them() -> None:
    # NumPy reads raw bytes as text: numbers where they spell one, bools by emptiness.
    spelled = np.array([b"1234"], dtype="V4")
    assert interop.to_numpy(spelled, dtype=np.int64).tolist() == [1234]
    pair = np.array([b"12345678"], dtype="V8")
    fields = interop.to_numpy(pair, dtype=[("a", "f4"), ("b", "i4")])
    assert fields.tolist() == pair.astype([("a", "f4"), ("b", "i4")]).tolist()
    float0 = np.zeros(2, dtype=[("float0", "V")])
    assert interop.to_numpy(float0, dtype=bool).tolist() == [False, False]


def test_a_dtype_of_no_unit_keeps_datetimes_as_they_are() -> None:
    for a in (np.arange(3).astype("M8[s]"), np.arange(3).astype("m8[ms]")):
        generic = np.dtype(a.dtype.kind.replace("M", "M8").replace("m", "m8"))
        plan = interop.explain(a, dtype=generic)
        assert plan.zero_copy and plan.dtype == a.dtype
        assert interop.to_numpy(a, dtype=generic, copy=False) is a


def test_dtype_str_keeps_text_as_it_is() -> None:
    # dtype=str names a kind, not a size: as np.asarray(a, dtype=str), no cast.
    a = np.array(["ab", "c"])
    assert interop.explain(a, dtype=str).zero_copy
    assert interop.to_numpy(a, dtype=str, copy=False) is a
    b = np.array([b"ab"])
    assert interop.to_numpy(b, dtype=bytes, copy=False) is b


UNSIZED_CASES = [
    (np.arange(3), str),
    (np.arange(3), bytes),
    (np.arange(3), np.void),
    (np.array([True]), "U"),
    (np.array([1.5]), str),
    (np.array(["2020-01-01"], "M8[D]"), "m8"),
    (np.array([1], "m8[s]"), "M8"),
    (np.array([b"ab"]), str),
    (np.array(["2020"]), "M8"),
    (np.array(["ab", 1], dtype=object), str),
    ([1, 22], str),
    (["abc", "de"], bytes),
]


@pytest.mark.parametrize(("x", "dtype"), UNSIZED_CASES)
def test_a_dtype_of_no_size_or_unit_is_planned_as_numpy_sizes_it(x: Any, dtype: Any) -> None:
    # NumPy sizes str and bytes by the data's dtype (int64: 21 characters), or by the
    # values (objects, list items; text to dates: the unit written): the plan gives
    # the dtype where the data's dtype decides it, and None where the values do.
    plan = interop.explain(x, dtype=dtype)
    out = interop.to_numpy(x, dtype=dtype)
    assert out.dtype == np.asarray(x, dtype=dtype).dtype
    by_values = isinstance(x, list) or x.dtype.hasobject
    by_values = by_values or (x.dtype.kind in "SU" and np.dtype(dtype).kind == "M")
    assert plan.dtype == (None if by_values else out.dtype)
    assert "cast" in plan.steps or isinstance(x, list)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("M8[D]", [("a", "M8")]),
        ([("a", "M8[D]")], [("a", "M8")]),
        ([("a", "M8[D]")], "M8"),
        ([("a", "m8[s]")], [("a", "m8")]),
        ("M8[D]", "S2"),
        ("M8[ns]", "U2"),
        ("M8[Y]", [("a", "S1")]),
    ],
)
def test_datetime_casts_that_fail_for_every_value_are_refused_by_the_plan(
    source: Any, target: Any
) -> None:
    # A unit to no unit inside a field (NumPy keeps the unit only for a whole array),
    # and dates to text too short for any date, or for NaT (3 characters).
    x = np.zeros(2, dtype=source)
    with pytest.raises((ValueError, RuntimeError)):
        x.astype(target)
    for call in (interop.explain, interop.to_numpy):
        with pytest.raises(interop.ConversionError, match="which NumPy casts no such data to"):
            call(x, dtype=target)


@pytest.mark.parametrize(
    ("source", "target"),
    [("M8[D]", "m8"), ("M8[D]", [("a", "m8")]), ("m8[s]", [("a", "M8")]), ("M8[Y]", "S4")],
)
def test_datetime_casts_numpy_makes_are_made(source: Any, target: Any) -> None:
    x = np.zeros(2, dtype=source)
    assert interop.to_numpy(x, dtype=target).tolist() == x.astype(target).tolist()


def test_np_ma_masked_copies_into_an_array_of_its_own() -> None:
    # NumPy's masked constant is one shared read-only object, whose copy() is itself.
    for x in (np.ma.masked, np.ma.masked_array(np.ma.masked)):
        out = interop.to_numpy(x, copy=True)
        assert out is not np.ma.masked and out.flags.writeable
        assert bool(np.ma.getmaskarray(out)) and out.shape == ()


@pytest.mark.parametrize("target", ["U8", "S8", "M8[D]", "bfloat16"])
@pytest.mark.parametrize("source", ["V4", [("a", "V4")], [("float0", "V")]])
def test_raw_bytes_to_text_datetimes_or_formats_are_refused_by_the_plan(
    source: object, target: str
) -> None:
    # NumPy reads no text, datetime or ml_dtypes value from raw bytes: every value fails.
    import ml_dtypes

    dtype = np.dtype(ml_dtypes.bfloat16) if target == "bfloat16" else np.dtype(target)
    x = np.zeros(2, dtype=source)  # type: ignore[call-overload]
    for call in (interop.explain, interop.to_numpy):
        with pytest.raises(interop.ConversionError, match="which NumPy casts no such data to"):
            call(x, dtype=dtype)  # type: ignore[operator]


@pytest.mark.parametrize("target", ["U40", "S40", "V16", [("z", "c16")], [("z", "c8", (1,))]])
def test_complex_data_to_text_bytes_or_a_complex_field_keeps_its_imaginary_part(
    target: object,
) -> None:
    # Only a real dtype= drops the imaginary parts; these keep them, as NumPy casts them.
    x = np.array([1 + 2j])
    assert interop.to_numpy(x, dtype=target).tolist() == x.astype(target).tolist()  # type: ignore[arg-type]
    with pytest.raises(interop.ConversionError, match="discard the imaginary parts"):
        interop.to_numpy(x, dtype=np.float64)
