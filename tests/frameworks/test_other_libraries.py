"""Arrays from other libraries users hand over: CuPy, Dask, array-api-strict, pandas,
xarray, and objects that only speak the ``__array__`` protocol (pyarrow has a backend
of its own: tests/frameworks/test_arrow.py)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import interop
from interop import ConversionError, CopyRequiredError, TransferError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_deprecation_warnings() -> Any:
    # NumPy 2 warns when it passes copy= to an __array__ that lacks it; the library
    # must never make it do so, whatever flags pytest runs with.
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        yield


# -- lazy imports -------------------------------------------------------------------------


def test_backend_modules_import_no_library() -> None:
    code = (
        "import sys, interop, interop.backends.cupy, interop.backends.dask, "
        "interop.backends.tensorflow, interop.backends.jax, interop.backends.generic\n"
        "interop.to_numpy([1, 2])\n"
        "names = [b.name for b in interop.backends()]\n"
        "assert 'cupy' in names and 'dask' in names, names\n"
        "assert not [b for b in interop.backends() if b.name in ('cupy', 'dask') and b.loaded]\n"
        "heavy = ('cupy', 'dask', 'scipy', 'tensorflow', 'jax', 'torch', 'pandas', 'pyarrow')\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr


# -- CuPy -----------------------------------------------------------------------------


@pytest.mark.gpu
def test_cupy_array_is_copied_to_host() -> None:
    cupy = pytest.importorskip("cupy")
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    x = cupy.asarray(a)
    assert interop.framework_of(x) == "cupy"
    plan = interop.explain(x)
    assert plan.transfer and plan.steps == ("to_host",) and plan.device == "cuda:0"
    out = interop.to_numpy(x)
    np.testing.assert_array_equal(out, a)
    assert out.flags.writeable
    np.testing.assert_array_equal(interop.to_numpy(x[:, ::2].T), a[:, ::2].T)
    with pytest.raises(TransferError):
        interop.to_numpy(x, allow_transfer=False)
    with pytest.raises(CopyRequiredError):
        interop.to_numpy(x, copy=False)
    assert interop.explain(x, dtype=np.float16).steps == ("cast_on_device", "to_host")
    assert interop.to_numpy(x, dtype=np.float16).dtype == np.float16


@pytest.mark.gpu
def test_cupy_array_made_on_another_stream() -> None:
    cupy = pytest.importorskip("cupy")
    with cupy.cuda.Stream(non_blocking=True):
        x = cupy.arange(1_000_000, dtype=cupy.float64) * 3
        out = interop.to_numpy(x)
    np.testing.assert_array_equal(out, np.arange(1_000_000, dtype=np.float64) * 3)


# -- Dask -----------------------------------------------------------------------------


def test_dask_array_is_computed() -> None:
    da = pytest.importorskip("dask.array")
    a = np.arange(12.0).reshape(3, 4)
    d = da.from_array(a, chunks=(2, 2)) * 2
    assert interop.framework_of(d) == "dask"
    plan = interop.explain(d)
    assert plan.steps == ("compute",) and not plan.zero_copy
    assert "lazy" in plan.copy_reason and "comput" in plan.copy_reason
    out = interop.to_numpy(d)
    assert type(out) is np.ndarray
    np.testing.assert_array_equal(out, a * 2)
    assert interop.to_numpy(d, dtype=np.float32).dtype == np.float32


def test_dask_copy_false_raises_before_computing() -> None:
    dask = pytest.importorskip("dask")
    import dask.array as da

    calls: list[int] = []

    def produce() -> np.ndarray:
        calls.append(1)
        return np.ones(3)

    d = da.from_delayed(dask.delayed(produce)(), shape=(3,), dtype=np.float64)
    with pytest.raises(CopyRequiredError, match="lazy"):
        interop.to_numpy(d, copy=False)
    assert calls == []
    np.testing.assert_array_equal(interop.to_numpy(d), np.ones(3))
    assert calls == [1]


def test_dask_copy_true_shares_nothing() -> None:
    da = pytest.importorskip("dask.array")
    a = np.arange(4.0)
    d = da.from_array(a, chunks=4)
    assert interop.explain(d, copy=True).steps == ("compute", "copy")
    out = interop.to_numpy(d, copy=True)
    assert not np.shares_memory(out, a) and out.flags.writeable
    out[0] = 99
    assert a[0] == 0


@pytest.mark.parametrize(
    "options",
    [{}, {"dtype": np.float64}, {"copy": True}, {"float_dtype": np.float32}, {"dtype": np.int16}],
    ids=["default", "dtype-declared", "copy", "float_dtype", "dtype-other"],
)
def test_dask_chunks_of_another_dtype_than_declared_get_the_planned_dtype(
    options: dict[str, Any],
) -> None:
    """A wrong ``dtype=`` on ``map_blocks``: the plan's dtype is what the result has."""
    da = pytest.importorskip("dask.array")
    x = da.ones(4, chunks=2).map_blocks(lambda b: b.astype(np.int8), dtype=np.float64)
    plan = interop.explain(x, **options)
    out = interop.to_numpy(x, **options)
    assert out.dtype == plan.dtype and out.tolist() == [1, 1, 1, 1]


def test_dask_chunks_that_would_lose_values_for_the_declared_dtype_are_refused() -> None:
    da = pytest.importorskip("dask.array")
    x = da.ones(4, chunks=2).map_blocks(lambda b: b.astype(np.float64), dtype=np.float32)
    assert interop.to_numpy(x, dtype=np.float32).dtype == np.float32  # asked for: cast
    with pytest.raises(ConversionError, match=r"declared float32.*got float64.*hint: "):
        interop.to_numpy(x)


def test_dask_chunks_that_compute_to_another_shape_than_declared_are_refused() -> None:
    da = pytest.importorskip("dask.array")
    x = da.ones((4,), chunks=2).map_blocks(lambda b: np.concatenate([b, b]), chunks=(2,))
    assert x.shape == (4,)
    with pytest.raises(interop.ConversionError, match=r"shape \(4,\) .* got \(8,\)"):
        interop.to_numpy(x)
    # Chunks of unknown size (nan in the shape) are known only once computed.
    y = da.ones(6, chunks=3)
    assert interop.to_numpy(y[y > 0]).shape == (6,)


def test_dask_reduction_is_a_0d_array() -> None:
    da = pytest.importorskip("dask.array")
    out = interop.to_numpy(da.ones((4, 4), chunks=2).sum())
    assert type(out) is np.ndarray and out.shape == () and out == 16


@pytest.mark.parametrize(
    "options", [{}, {"copy": True}, {"dtype": np.float32}], ids=["default", "copy", "cast"]
)
def test_dask_masked_chunks_keep_their_mask(options: dict[str, Any]) -> None:
    """A Dask array of masked chunks computes to a masked array, and keeps it as NumPy's do."""
    da = pytest.importorskip("dask.array")
    x = da.ma.masked_greater(da.arange(6, chunks=3), 3)
    out = interop.to_numpy(x, **options)
    assert type(out) is np.ma.MaskedArray
    assert out.mask.tolist() == [False] * 4 + [True] * 2
    assert out.compressed().tolist() == [0, 1, 2, 3] and out.mean() == 1.5
    assert out.dtype == options.get("dtype", np.int64) == interop.explain(x, **options).dtype
    out.data[...] = 0  # memory of the result's own
    assert x.compute().data.tolist() == [0, 1, 2, 3, 4, 5]


def test_dask_masked_chunks_are_refused_by_a_framework_without_masks() -> None:
    da = pytest.importorskip("dask.array")
    pytest.importorskip("torch")
    x = da.ma.masked_greater(da.arange(6, chunks=3), 3)
    with pytest.raises(ConversionError, match="2 of 6 entries masked"):
        interop.convert(x, "torch")


def test_dask_is_a_target_of_one_chunk_in_host_memory() -> None:
    """convert(x, "dask") and like=: one chunk, the NumPy array itself unless copy=True."""
    da = pytest.importorskip("dask.array")
    a = np.arange(6.0).reshape(2, 3)
    d = interop.convert(a, "dask")
    assert interop.framework_of(d) == "dask" and d.chunks == ((2,), (3,))
    plan = interop.explain(a, to="dask")
    assert plan.zero_copy and plan.readonly and plan.steps == ("from_numpy",)
    (chunk,) = d.__dask_graph__().values()
    assert np.shares_memory(chunk, a)  # the graph's chunk is the array itself
    copied = interop.convert(a, like=da.zeros(1), copy=True)
    (chunk,) = copied.__dask_graph__().values()
    assert not np.shares_memory(chunk, a)
    a[0, 0] = 99.0  # write, then read both back
    assert d.compute()[0, 0] == 99.0 and copied.compute()[0, 0] == 0.0
    assert interop.convert(d, "dask") is d
    again = interop.convert(d, "dask", copy=True)
    assert again is not d and interop.explain(d, to="dask", copy=True).steps == ("copy",)
    assert again.compute().tolist() == d.compute().tolist()


def test_dask_target_holds_data_in_native_byte_order_as_explain_says() -> None:
    pytest.importorskip("dask.array")
    a = np.arange(4.0).astype(">f8")
    plan = interop.explain(a, to="dask")
    out = interop.convert(a, "dask")
    assert plan.dtype == out.dtype == out.compute().dtype == np.dtype("<f8")
    assert not plan.zero_copy and "byte order" in str(plan.copy_reason)
    np.testing.assert_array_equal(out.compute(), a)
    with pytest.raises(interop.CopyRequiredError, match="byte order"):
        interop.convert(a, "dask", copy=False)


def test_dask_target_refuses_other_devices() -> None:
    pytest.importorskip("dask.array")
    with pytest.raises(ValueError, match=r"expected device None or 'cpu' for Dask.*hint: "):
        interop.convert(np.ones(2), "dask", device="cuda")


# -- array-api-strict on a non-CPU device ----------------------------------------------------


def test_array_api_strict_other_device_is_a_transfer() -> None:
    xp = pytest.importorskip("array_api_strict")
    x = xp.asarray([1.0, 2.0, 3.0], device=xp.Device("device1"))
    plan = interop.explain(x)
    assert plan.transfer and plan.steps[0] == "to_cpu" and "device1" in plan.device
    with pytest.raises(TransferError, match="allow_transfer=False"):
        interop.to_numpy(x, allow_transfer=False)
    with interop.options(allow_transfer=False), pytest.raises(TransferError):
        interop.to_numpy(x)
    with pytest.raises(CopyRequiredError):
        interop.to_numpy(x, copy=False)
    out = interop.to_numpy(x, allow_transfer=True)
    np.testing.assert_array_equal(out, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(interop.to_numpy(x), [1.0, 2.0, 3.0])


@pytest.mark.parametrize("to", ["tensorflow", "jax", "torch"])
def test_array_api_strict_read_only_memory_converts_as_explain_says(to: str) -> None:
    # NumPy exports read-only memory only as a versioned DLPack capsule, which
    # TensorFlow (legacy capsules only) cannot take: one copy of the view instead.
    xp = pytest.importorskip("array_api_strict")
    raw = np.empty(16 * 8 + 64, np.uint8)
    start = (-raw.ctypes.data) % 64
    a = raw[start : start + 128].view(np.float64)  # (64-byte aligned, as TensorFlow needs)
    a[:] = np.arange(16.0)
    a.flags.writeable = False
    x = xp.asarray(a, copy=False)
    plan = interop.explain(x, to=to)
    out = interop.to_numpy(interop.convert(x, to))
    np.testing.assert_array_equal(out, np.arange(16.0))
    assert plan.zero_copy == np.shares_memory(out, a)


def test_array_api_strict_cpu_is_not_a_transfer() -> None:
    xp = pytest.importorskip("array_api_strict")
    x = xp.asarray([1.0, 2.0])
    plan = interop.explain(x)
    assert not plan.transfer and plan.zero_copy and plan.device == "cpu"
    np.testing.assert_array_equal(interop.to_numpy(x, allow_transfer=False), [1.0, 2.0])


@pytest.mark.parametrize("to", ["numpy", "torch", "jax", "tensorflow"])
def test_array_api_strict_other_device_is_a_transfer_for_every_target(to: str) -> None:
    """One decision (the device's name): data on another device is moved, never aliased.

    array_api_strict keeps every device's data in host memory and exports it through
    DLPack as kDLCPU; convert took that export as a zero-copy view of host memory.
    """
    xp = pytest.importorskip("array_api_strict")
    pytest.importorskip(to)
    x = xp.asarray([1.0, 2.0, 3.0], device=xp.Device("device1"))
    plan = interop.explain(x, to=to)
    assert plan.transfer and not plan.zero_copy and "device1" in plan.device
    assert "must be copied to host memory" in (plan.copy_reason or "")
    with pytest.raises(CopyRequiredError, match="device1"):
        interop.convert(x, to, copy=False)
    out = interop.convert(x, to)
    assert interop.to_numpy(out).tolist() == [1.0, 2.0, 3.0]
    assert not np.shares_memory(interop.to_numpy(out), x._array)
    on_cpu = xp.asarray([1.0, 2.0, 3.0])
    assert interop.explain(on_cpu, to=to).transfer is False


# -- pandas and xarray through their array protocols -----------------------------------


@dataclass(frozen=True)
class Source:
    name: str
    make: Callable[[], Any]
    # The library's own NumPy rendering of the object (a view where it has one).
    native: Callable[[Any], np.ndarray]
    zero_copy: bool


def _sources() -> list[Any]:
    cases = []

    def add(module: str, name: str, make: Callable[[Any], Any], native: Any, zc: bool) -> None:
        cases.append(pytest.param((module, name, make, native, zc), id=name))

    add("pandas", "series", lambda pd: pd.Series([1.0, 2.5, -3.0]), lambda s: s.to_numpy(), True)
    add(
        "pandas",
        "frame-one-dtype",
        lambda pd: pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}),
        lambda f: f.to_numpy(),
        True,
    )
    add(
        "pandas",
        "frame-mixed-dtypes",
        lambda pd: pd.DataFrame({"a": [1.0, 2.0], "b": [3, 4]}),
        lambda f: f.to_numpy(),
        False,
    )
    add(
        "xarray",
        "dataarray",
        lambda xr: xr.DataArray(np.arange(6.0).reshape(2, 3), dims=("x", "y")),
        lambda d: d.values,
        True,
    )
    return cases


@pytest.fixture(params=_sources())
def source(request: pytest.FixtureRequest) -> Source:
    module, name, make, native, zc = request.param
    lib = pytest.importorskip(module)
    return Source(name, lambda: make(lib), native, zc)


def test_library_object_zero_copy_claim_is_true(source: Source) -> None:
    obj = source.make()
    expected = source.native(obj).copy()
    plan = interop.explain(obj)
    out = interop.to_numpy(obj)
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == expected.dtype
    assert plan.zero_copy is source.zero_copy
    assert plan.zero_copy == np.shares_memory(out, source.native(obj))


def test_library_object_copy_false_aliases_or_raises(source: Source) -> None:
    obj = source.make()
    if source.zero_copy:
        out = interop.to_numpy(obj, copy=False)
        assert np.shares_memory(out, source.native(obj))
    else:
        with pytest.raises(CopyRequiredError, match="cannot hand out a view"):
            interop.to_numpy(obj, copy=False)


def test_library_object_copy_true_owns_memory(source: Source) -> None:
    obj = source.make()
    before = source.native(obj).copy()
    out = interop.to_numpy(obj, copy=True)
    assert not np.shares_memory(out, source.native(obj))
    assert out.flags.writeable
    out[...] = 0
    np.testing.assert_array_equal(source.native(obj), before)


def test_read_only_views_are_reported_read_only() -> None:
    pd = pytest.importorskip("pandas")
    s = pd.Series([1.0, 2.0])
    out = interop.to_numpy(s)
    plan = interop.explain(s)
    assert plan.readonly is (not out.flags.writeable)


def test_values_a_cast_cannot_take_raise_numpys_error_from_any_protocol() -> None:
    # The cast is the library's own step: its failure is NumPy's, not the object's
    # protocol's, as for an ndarray of the same values (to_numpy's documented error).
    pd = pytest.importorskip("pandas")
    for x in (pd.Series(["1.5", "a"]), np.array(["1.5", "a"], dtype=object)):
        with pytest.raises(ValueError, match="could not convert string to float: 'a'") as info:
            interop.to_numpy(x, dtype=np.float64)
        assert not isinstance(info.value, interop.InteropError)
    assert interop.to_numpy(pd.Series(["1.5", "-2"]), dtype=np.float64).tolist() == [1.5, -2.0]


def test_an_object_that_refuses_copy_false_is_planned_as_a_read_copy() -> None:
    # pandas refuses __array__(copy=False) for a column of Arrow memory, then hands out
    # a read-only view with __array__(): the plan says what it knows, and no more.
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    s = pd.Series([1.0, 2.0], dtype="double[pyarrow]")
    plan = interop.explain(s)
    assert not plan.zero_copy and "it is read with __array__()" in (plan.copy_reason or "")
    out = interop.to_numpy(s)
    assert plan.readonly is (not out.flags.writeable)
    assert out.tolist() == [1.0, 2.0]
    with pytest.raises(interop.CopyRequiredError, match="cannot hand out a view"):
        interop.to_numpy(s, copy=False)


def _counting_dask(blocks: list[int]) -> Any:
    da = pytest.importorskip("dask.array")

    def record(b: np.ndarray) -> np.ndarray:
        blocks.append(1)
        return b

    lazy = da.ones(1000, chunks=100).map_blocks(record, dtype=np.float64)
    blocks.clear()  # (map_blocks itself probed the function once)
    return lazy


@pytest.mark.parametrize("wrap", ["dataarray", "variable"])
def test_xarray_on_dask_is_planned_without_computing(wrap: str) -> None:
    """xarray's __array__ turns copy=False into copy=None and computes: never asked to plan."""
    xr = pytest.importorskip("xarray")
    blocks: list[int] = []
    lazy = _counting_dask(blocks)
    arr = xr.DataArray(lazy) if wrap == "dataarray" else xr.Variable(("x",), lazy)
    plan = interop.explain(arr)
    assert blocks == []  # explain computed the whole graph
    assert not plan.zero_copy and plan.steps == ("compute",) and plan.dtype == np.float64
    assert "holds its data in chunks" in (plan.copy_reason or "")
    with pytest.raises(CopyRequiredError, match=r"holds its data in chunks.*hint: use copy=None"):
        interop.to_numpy(arr, copy=False)
    assert blocks == []  # copy=False computed the graph into new memory and returned it
    with pytest.raises(CopyRequiredError):
        interop.to_numpy_tree({"a": arr}, copy=False)
    assert blocks == []
    out = interop.to_numpy(arr)
    assert len(blocks) == 10 and type(out) is np.ndarray and out.sum() == 1000.0
    blocks.clear()
    assert interop.explain(arr, dtype=np.float32).steps == ("compute", "cast")
    assert interop.to_numpy(arr, dtype=np.float32).dtype == np.float32
    copied = interop.to_numpy(arr, copy=True)
    assert interop.explain(arr, copy=True).steps == ("compute", "copy")
    assert copied.flags.writeable and copied.flags.owndata


def test_xarray_in_memory_is_still_a_view_and_a_dataset_still_refused() -> None:
    xr = pytest.importorskip("xarray")
    da = pytest.importorskip("dask.array")
    data = np.arange(4.0)
    arr = xr.DataArray(data)
    assert interop.explain(arr).zero_copy
    assert np.shares_memory(interop.to_numpy(arr, copy=False), data)
    for ds in (xr.Dataset({"a": arr}), xr.Dataset({"a": xr.DataArray(da.ones(4, chunks=2))})):
        with pytest.raises(ConversionError, match=r"cannot directly convert an xarray\.Dataset"):
            interop.explain(ds)


def test_chunks_that_compute_to_another_dtype_than_declared_are_refused() -> None:
    xr = pytest.importorskip("xarray")
    da = pytest.importorskip("dask.array")
    wrong = da.ones(4, chunks=2).map_blocks(lambda b: b.astype(np.int8), dtype=np.float64)
    with pytest.raises(ConversionError, match=r"declares, float64, got int8\. hint: fix"):
        interop.to_numpy(xr.DataArray(wrong))


class ChunkedWriter:
    """A class of no chunked-array library with a tuple ``chunks`` of its own meaning."""

    chunks = ((3,),)
    dtype = np.dtype(np.float64)

    def __init__(self) -> None:
        self.buf = np.arange(3.0)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return self.buf.copy() if copy else self.buf


def test_a_subclass_of_a_lazy_xarray_class_is_planned_without_computing() -> None:
    xr = pytest.importorskip("xarray")

    class Labelled(xr.DataArray):  # type: ignore[misc]
        __slots__ = ()

    blocks: list[int] = []
    arr = Labelled(_counting_dask(blocks))
    assert interop.explain(arr).steps == ("compute",)
    with pytest.raises(CopyRequiredError, match="holds its data in chunks"):
        interop.to_numpy(arr, copy=False)
    assert blocks == []


def test_chunks_of_other_classes_say_nothing_of_where_the_data_is() -> None:
    # Only xarray, zarr and h5py arrays are planned as chunks computed into new
    # memory; any other class is read through its __array__, which tells.
    x = ChunkedWriter()
    plan = interop.explain(x)
    assert plan.steps == ("as_array",) and plan.zero_copy
    assert np.shares_memory(interop.to_numpy(x, copy=False), x.buf)
    assert not np.shares_memory(interop.to_numpy(x, copy=True), x.buf)


# -- the generic __array__ protocol -------------------------------------------------------


class LegacyView:
    """An ``__array__`` written for NumPy 1 (no ``copy``), handing out its own array."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data

    def __array__(self, dtype: Any = None) -> np.ndarray:
        return self.data if dtype is None else self.data.astype(dtype)


class LegacyFresh:
    """An ``__array__`` written for NumPy 1 that builds a new array on every call."""

    def __init__(self, values: list[float]) -> None:
        self.values = values

    def __array__(self, dtype: Any = None) -> np.ndarray:
        return np.array(self.values, dtype=dtype)


class Modern:
    """An ``__array__`` written for NumPy 2, which refuses ``copy=False`` when it must copy."""

    def __init__(self, values: list[float]) -> None:
        self.values = values
        self.calls: list[Any] = []

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        self.calls.append(copy)
        if copy is False:
            raise ValueError("a list cannot be viewed as an array")
        return np.array(self.values, dtype=dtype)


class Broken:
    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        raise RuntimeError("the backing file was closed")


def test_legacy_array_view_without_deprecation_warning() -> None:
    data = np.arange(4.0)
    obj = LegacyView(data)
    for copy in (None, True):
        plan = interop.explain(obj, copy=copy)
        out = interop.to_numpy(obj, copy=copy)
        np.testing.assert_array_equal(out, data)
        assert np.shares_memory(out, data) is (copy is not True)
        assert plan.zero_copy is (copy is not True)
    # One call cannot promise a view: refused, as NumPy 2 refuses it.
    with pytest.raises(CopyRequiredError, match="NumPy 1"):
        interop.to_numpy(obj, copy=False)


def test_legacy_array_that_copies_is_never_shared_under_copy_true() -> None:
    obj = LegacyFresh([1.0, 2.0])
    np.testing.assert_array_equal(interop.to_numpy(obj), [1.0, 2.0])
    assert "NumPy 1" in interop.explain(obj, copy=False).copy_reason
    with pytest.raises(CopyRequiredError):
        interop.to_numpy(obj, copy=False)
    out = interop.to_numpy(obj, copy=True)
    assert out.flags.writeable and out.tolist() == [1.0, 2.0]


def test_modern_array_copy_false_does_not_copy() -> None:
    obj = Modern([1.0, 2.0])
    with pytest.raises(CopyRequiredError, match="cannot hand out a view"):
        interop.to_numpy(obj, copy=False)
    assert obj.calls == [False]  # refused without then making the copy anyway
    np.testing.assert_array_equal(interop.to_numpy(obj), [1.0, 2.0])


def test_array_that_raises_is_a_conversion_error() -> None:
    with pytest.raises(ConversionError, match=r"`.*Broken`.*RuntimeError: the backing file"):
        interop.to_numpy(Broken())


class ReadOnlyCopies:
    """An ``__array__`` that copies, but hands out its copies read-only."""

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy is False:
            raise ValueError("cannot view")
        a = np.arange(3.0)
        a.flags.writeable = False
        return a


def test_copy_true_is_writable_even_when_the_object_copies_read_only() -> None:
    obj = ReadOnlyCopies()
    assert interop.explain(obj, copy=True).steps == ("as_array", "copy")
    out = interop.to_numpy(obj, copy=True)
    assert out.flags.writeable
    np.testing.assert_array_equal(out, [0.0, 1.0, 2.0])
    assert interop.explain(obj).steps == ("as_array",)


def test_dask_chunks_of_another_dtype_are_cast_only_where_every_value_is_kept() -> None:
    # NumPy calls int64 -> float64 "safe", but it rounds 2**53 + 1.
    da = pytest.importorskip("dask.array")
    big = np.array([2**53 + 1, 2**63 - 1], dtype=np.int64)
    wide = da.from_array(big, chunks=2).map_blocks(lambda b: b, dtype=np.float64)
    with pytest.raises(ConversionError, match="without losing values"):
        interop.to_numpy(wide)
    small = np.array([1, 2], dtype=np.int32)
    exact = da.from_array(small, chunks=2).map_blocks(lambda b: b, dtype=np.float64)
    out = interop.to_numpy(exact)
    assert out.dtype == np.float64 and out.tolist() == [1.0, 2.0]


def test_dask_chunks_of_other_frameworks_come_back_as_the_plan_says() -> None:
    # Chunks that compute to another framework's arrays: a new writable array of the
    # result's own, as explain says, never a view of an array held elsewhere.
    da = pytest.importorskip("dask.array")
    dask = pytest.importorskip("dask")
    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")
    meta = np.empty(0, np.float32)
    held = torch.arange(4.0)
    graphs = [
        da.arange(6, chunks=6, dtype=np.float32).map_blocks(
            jnp.asarray, dtype=np.float32, meta=meta
        ),
        da.from_delayed(dask.delayed(lambda: held)(), shape=(4,), dtype=np.float32, meta=meta),
    ]
    for x in graphs:
        plan = interop.explain(x)
        out = interop.to_numpy(x)
        assert not plan.zero_copy and not plan.readonly and out.flags.writeable
        assert not np.shares_memory(out, held.numpy())
        out[0] = 99.0
    assert held[0].item() == 0.0


def test_dask_chunks_declared_in_another_frameworks_dtype_convert() -> None:
    # map_blocks infers its metadata from a chunk: the array's dtype is then a PyTorch
    # or TensorFlow dtype, told as NumPy's by that framework's backend (or, where it
    # cannot tell, known once computed). np.dtype() of it was a bare TypeError.
    da = pytest.importorskip("dask.array")
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("tensorflow")
    # (TensorFlow's backend tells the dtype of an empty tensor once it has met one.)
    int64 = np.dtype(np.int64)
    cases = ((lambda b: torch.from_numpy(b.copy()), {int64}), (tf.constant, {None, int64}))
    for to_chunk, dtypes in cases:
        x = da.arange(4, chunks=4).map_blocks(to_chunk)  # (Dask joins no tensor chunks)
        assert not isinstance(x.dtype, np.dtype)
        plan = interop.explain(x)
        assert plan.dtype in dtypes and not plan.zero_copy
        for out in (
            interop.to_numpy(x),
            interop.to_numpy_tree({"a": x})["a"],
            interop.convert(x, "numpy"),
            interop.to_numpy(interop.convert(x, "torch")),
        ):
            assert out.dtype == np.int64 and out.tolist() == [0, 1, 2, 3]
        assert interop.to_numpy(x, dtype=np.float32).dtype == np.float32


def test_array_api_data_on_another_device_keeps_its_dtype_in_the_plan() -> None:
    # Off the CPU the plan knows the standard dtype without reading the data, so a
    # cast that drops imaginary parts is refused there too; devices keep their names.
    xp = pytest.importorskip("array_api_strict")
    for device in (xp.Device("CPU_DEVICE"), xp.Device("device1")):
        z = xp.asarray([1 + 2j, 3 - 4j], dtype=xp.complex64, device=device)
        assert interop.explain(z).dtype == np.complex64
        with pytest.raises(ConversionError, match="imaginary"):
            interop.to_numpy(z, dtype=np.float32)
    a1 = xp.asarray([1.0], device=xp.Device("device1"))
    a2 = xp.asarray([1.0], device=xp.Device("device2"))
    plan = interop.explain(a1, like=a2)
    assert "device1" in plan.device and "device2" in (plan.copy_reason or "")


def test_dask_masked_chunks_are_refused_on_every_call() -> None:
    # The first call plans; later ones take convert's fast route: both refuse.
    da = pytest.importorskip("dask.array")
    pytest.importorskip("torch")
    plain = da.arange(6, chunks=3)
    assert interop.to_numpy(interop.convert(plain, "torch")).tolist() == list(range(6))
    x = da.ma.masked_greater(da.arange(6, chunks=3), 3)
    for _ in range(3):
        with pytest.raises(ConversionError, match="2 of 6 entries masked"):
            interop.convert(x, "torch")


def test_a_pandas_index_is_a_read_only_view() -> None:
    # Its __array__ hands out the memory it holds, writable; a write corrupted the
    # index (its lookups, a RangeIndex's cached values).
    pd = pytest.importorskip("pandas")
    for index in (pd.Index([10, 20, 30]), pd.RangeIndex(3), pd.Index([1.5, 2.5])):
        assert interop.explain(index).readonly
        for out in (
            interop.to_numpy(index),
            interop.to_numpy(index, copy=False),
            interop.to_numpy_tree({"i": index})["i"],
            interop.convert(index, "numpy"),
        ):
            assert not out.flags.writeable and np.shares_memory(out, index.values)
        mine = interop.to_numpy(index, copy=True)
        assert mine.flags.writeable and not np.shares_memory(mine, index.values)
    series = pd.Series([1.0, 2.0])
    assert interop.to_numpy(series).tolist() == [1.0, 2.0]


def test_dask_and_chunked_xarray_copy_once_for_copy_true_and_a_cast() -> None:
    # Computing builds new memory, a cast copies it: copy=True adds no third copy, but
    # copies where nothing else would (a graph may hand back an array held elsewhere).
    da = pytest.importorskip("dask.array")
    xr = pytest.importorskip("xarray")
    x = da.arange(4, chunks=2)
    for source in (x, xr.DataArray(x)):
        assert interop.explain(source, copy=True, dtype=np.float32).steps[-1] == "cast"
        assert "copy" not in interop.explain(source, copy=True, dtype=np.float32).steps
        assert interop.explain(source, copy=True).steps[-1] == "copy"
        out = interop.to_numpy(source, copy=True, dtype=np.float32)
        assert out.dtype == np.float32 and out.flags.writeable and out.tolist() == [0, 1, 2, 3]
