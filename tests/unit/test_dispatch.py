"""Dispatch: generic inputs in their documented order, unsupported types, the per-type cache.

The generic protocols are tried after every framework backend, in this order:
Array API, DLPack, ``__array__``/``__array_interface__``/buffer, then NumPy and
Python scalars and sequences. Each test builds a real producer of the protocol it
checks.
"""

from __future__ import annotations

import array
import ctypes
import mmap
import threading
from typing import Any

import numpy as np
import pytest

import interop
from interop import _registry
from tests.conftest import FRAMEWORKS, Framework, load_framework
from tests.support.producers import (
    ArrayMethod,
    DLPackAndArrayMethod,
    DLPackAndLegacyArrayMethod,
    DLPackProducer,
    InterfaceOnly,
    LegacyArrayMethod,
    LegacyDLPackProducer,
)

DATA = np.arange(6, dtype=np.float32).reshape(2, 3)


def _strict() -> Any:
    return pytest.importorskip("array_api_strict")


# -- 10. Generic inputs, in their documented order -------------------------------------


def test_array_api_object_is_tried_first() -> None:
    xp = _strict()
    x = xp.asarray(DATA)
    # array-api-strict arrays also have __dlpack__ and __array__: the Array API wins.
    assert hasattr(type(x), "__dlpack__") and hasattr(type(x), "__array__")
    assert interop.framework_of(x) == "array_api"
    out = interop.to_numpy(x)
    np.testing.assert_array_equal(out, DATA)
    assert np.shares_memory(out, np.from_dlpack(x))
    plan = interop.explain(x)
    assert plan.framework == "array_api" and plan.zero_copy and plan.device == "cpu"
    copied = interop.to_numpy(x, copy=True)
    copied[0, 0] = 99
    np.testing.assert_array_equal(np.from_dlpack(x), DATA)


def test_array_api_cast_and_copy_false() -> None:
    xp = _strict()
    x = xp.asarray(DATA)
    assert interop.to_numpy(x, dtype=np.float64).dtype == np.float64
    assert np.shares_memory(interop.to_numpy(x, dtype=np.float32, copy=False), np.from_dlpack(x))
    with pytest.raises(interop.CopyRequiredError, match="casting float32 to float64"):
        interop.to_numpy(x, dtype=np.float64, copy=False)


def test_dlpack_producer_is_zero_copy_and_negotiates_dlpack_1() -> None:
    base = DATA.copy()
    producer = DLPackProducer(base)
    assert interop.framework_of(producer) == "dlpack"
    out = interop.to_numpy(producer)
    assert np.shares_memory(out, base)
    assert producer.exports[0]["max_version"] == (1, 0)
    out[0, 0] = -5  # writable memory stays writable, and writes show through
    assert base[0, 0] == -5


def test_dlpack_producer_of_read_only_memory_gives_a_read_only_view() -> None:
    base = DATA.copy()
    base.flags.writeable = False
    producer = DLPackProducer(base)
    out = interop.to_numpy(producer)
    assert np.shares_memory(out, base) and not out.flags.writeable
    assert interop.explain(producer).readonly


def test_legacy_dlpack_producer_falls_back() -> None:
    base = DATA.copy()
    producer = LegacyDLPackProducer(base)
    out = interop.to_numpy(producer)
    np.testing.assert_array_equal(out, DATA)
    assert np.shares_memory(out, base)
    assert producer.exports >= 1


@pytest.mark.parametrize(
    ("options", "shared"),
    [({}, True), ({"copy": True}, False), ({"dtype": np.int64}, False)],
    ids=["default", "copy", "cast"],
)
def test_dlpack_producer_options(options: dict[str, Any], shared: bool) -> None:
    base = DATA.copy()
    out = interop.to_numpy(DLPackProducer(base), **options)
    assert np.shares_memory(out, base) is shared
    assert out.dtype == options.get("dtype", np.float32)
    np.testing.assert_array_equal(out, DATA)


def test_dlpack_comes_before_array_method() -> None:
    producer = DLPackAndArrayMethod(DATA.copy())
    assert interop.framework_of(producer) == "dlpack"
    out = interop.to_numpy(producer)
    assert np.shares_memory(out, producer.array)
    # In host memory, a NumPy 2 ``__array__`` (one that takes ``copy=``) is the
    # object's own bridge to NumPy, and is preferred to a DLPack export.
    assert producer.array_calls >= 1 and producer.exports == []


def test_dlpack_serves_objects_whose_array_method_predates_numpy_2() -> None:
    producer = DLPackAndLegacyArrayMethod(DATA.copy())
    assert interop.framework_of(producer) == "dlpack"
    out = interop.to_numpy(producer)
    assert np.shares_memory(out, producer.array)
    assert producer.array_calls == 0 and len(producer.exports) >= 1


def test_array_method_view() -> None:
    obj = ArrayMethod(DATA.copy())
    assert interop.framework_of(obj) == "array_protocol"
    out = interop.to_numpy(obj)
    assert np.shares_memory(out, obj.array)
    assert obj.calls[0]["copy"] is False  # a view was asked for first
    assert interop.explain(obj).zero_copy
    copied = interop.to_numpy(obj, copy=True)
    copied[...] = 0
    np.testing.assert_array_equal(obj.array, DATA)


def test_legacy_array_method_is_never_claimed_as_a_copy_while_aliasing() -> None:
    obj = LegacyArrayMethod(DATA.copy())
    plan = interop.explain(obj)
    out = interop.to_numpy(obj)
    # It hands out its own memory: a view, and said so.
    assert plan.zero_copy and np.shares_memory(out, obj.array)
    copied = interop.to_numpy(obj, copy=True)
    assert not interop.explain(obj, copy=True).zero_copy
    assert not np.shares_memory(copied, obj.array)
    copied[...] = -1
    np.testing.assert_array_equal(obj.array, DATA)


@pytest.mark.parametrize("fresh", [False, True], ids=["own-memory", "new-arrays"])
def test_legacy_array_method_is_called_once_per_conversion(fresh: bool) -> None:
    """An ``__array__`` without ``copy=`` is called once, as ``np.asarray`` calls it.

    One call cannot tell its own memory from a new array, so its array counts as a
    view: ``copy=True`` copies it, and ``copy=False`` is refused before any call,
    as NumPy 2 refuses it. (It used to be called twice, to compare the answers.)
    """
    obj = LegacyArrayMethod(DATA.copy(), fresh=fresh)
    out = interop.to_numpy(obj)
    assert obj.calls == 1 and np.shares_memory(out, obj.array) is not fresh
    np.testing.assert_array_equal(out, DATA)
    assert interop.explain(obj).zero_copy  # it may share the object's memory
    obj.calls = 0
    copied = interop.to_numpy(obj, copy=True)
    assert obj.calls == 1 and not np.shares_memory(copied, obj.array)
    obj.calls = 0
    with pytest.raises(interop.CopyRequiredError, match=r"no copy=.*NumPy 1.*hint"):
        interop.to_numpy(obj, copy=False)
    assert obj.calls == 0
    tree = interop.to_numpy_tree({"a": obj, "b": [obj]})
    assert obj.calls == 2 and tree["a"].shape == DATA.shape


def test_array_interface_object() -> None:
    obj = InterfaceOnly(DATA.copy())
    assert interop.framework_of(obj) == "array_protocol"
    out = interop.to_numpy(obj, copy=False)
    assert np.shares_memory(out, obj.array)
    np.testing.assert_array_equal(out, DATA)


def test_object_array_from_array_method_is_a_conversion_error() -> None:
    obj = ArrayMethod(np.array([object(), 1], dtype=object))
    with pytest.raises(interop.ConversionError, match=r"expected numeric data.*hint"):
        interop.to_numpy(obj)


def test_buffer_protocol_objects() -> None:
    data = bytearray(b"\x01\x02\x03")
    out = interop.to_numpy(data)
    assert out.dtype == np.uint8 and out.tolist() == [1, 2, 3]
    out[0] = 9  # a bytearray is mutable memory: the view is writable and writes show through
    assert data[0] == 9

    floats = array.array("d", [1.5, 2.5])
    out = interop.to_numpy(floats)
    assert out.dtype == np.float64 and out.tolist() == [1.5, 2.5]
    assert np.shares_memory(out, np.frombuffer(floats, dtype=np.float64))

    base = DATA.copy()
    view = interop.to_numpy(memoryview(base))
    assert np.shares_memory(view, base) and view.shape == (2, 3) and view.dtype == np.float32


def test_memoryview_of_immutable_bytes_is_read_only() -> None:
    out = interop.to_numpy(memoryview(b"abc"))
    assert not out.flags.writeable and out.tolist() == [97, 98, 99]
    assert interop.explain(memoryview(b"abc")).readonly
    copied = interop.to_numpy(memoryview(b"abc"), copy=True)
    assert copied.flags.writeable


class _Point(ctypes.Structure):
    # Padded (8 + 4 + 4 bytes): Python 3.11's buffer format of it is wrong.
    _fields_ = [("x", ctypes.c_double), ("n", ctypes.c_int32)]


def test_ctypes_data_is_viewed_in_its_numpy_dtype() -> None:
    values = (ctypes.c_double * 3)(1, 2, 3)
    assert interop.framework_of(values) == "array_protocol"
    out = interop.to_numpy(values, copy=False)
    assert out.dtype == np.float64 and out.tolist() == [1.0, 2.0, 3.0]
    out[0] = 9  # ctypes memory is mutable: the view is writable and writes show through
    assert values[0] == 9
    copied = interop.to_numpy(values, copy=True)
    copied[1] = -1
    assert values[1] == 2
    grid = interop.to_numpy((ctypes.c_int16 * 2 * 3)())
    assert grid.shape == (3, 2) and grid.dtype == np.int16
    scalar = interop.to_numpy(ctypes.c_float(2.5))
    assert scalar.shape == () and scalar.dtype == np.float32 and scalar == 2.5
    points = (_Point * 2)()
    points[1].x = 4.5
    records = interop.to_numpy(points)  # no RuntimeWarning: the format string is not read
    assert records.shape == (2,) and records.dtype.itemsize == ctypes.sizeof(_Point)
    assert records["x"].tolist() == [0.0, 4.5]
    with pytest.raises(interop.ConversionError, match=r"c_char_p.*hint"):
        interop.to_numpy(ctypes.c_char_p(b"text"))  # a pointer, no data of its own


def test_mmap_is_viewed_read_only_where_it_is_mapped_read_only(tmp_path: Any) -> None:
    anonymous = mmap.mmap(-1, 8)
    out = interop.to_numpy(anonymous, copy=False)
    out[0] = 7
    assert anonymous[0] == 7 and interop.framework_of(anonymous) == "array_protocol"
    del out
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(8)))
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as ro:
        view = interop.to_numpy(ro, copy=False)
        assert not view.flags.writeable and view.tolist() == list(range(8))
        assert interop.explain(ro).readonly
        copied = interop.to_numpy(ro, copy=True)
        assert copied.flags.writeable and not np.shares_memory(copied, view)
        del view


def test_array_struct_only_object_is_a_view() -> None:
    class StructOnly:
        def __init__(self, array: np.ndarray) -> None:
            self.array = array

        @property
        def __array_struct__(self) -> Any:
            return self.array.__array_struct__

    obj = StructOnly(DATA.copy())
    assert interop.framework_of(obj) == "array_protocol"
    out = interop.to_numpy(obj, copy=False)
    assert np.shares_memory(out, obj.array)
    np.testing.assert_array_equal(out, DATA)


@pytest.mark.parametrize("copy", [None, False])
def test_released_or_closed_buffer_is_a_conversion_error_with_its_cause(copy: Any) -> None:
    released = memoryview(bytearray(8))
    released.release()
    closed = mmap.mmap(-1, 8)
    closed.close()
    for value, cause in [(released, "released memoryview"), (closed, "closed")]:
        with pytest.raises(interop.ConversionError, match=rf"`(mmap\.mmap|memoryview)`.*{cause}"):
            interop.to_numpy(value, copy=copy)


def test_array_method_failing_under_copy_false_is_a_conversion_error() -> None:
    class Broken:
        def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
            raise ValueError("device lost")

    for copy in (False, None):
        with pytest.raises(interop.ConversionError, match=r"`.*Broken`.*device lost") as info:
            interop.to_numpy(Broken(), copy=copy)
        assert isinstance(info.value.__cause__, ValueError)


def test_array_method_refusing_a_view_names_its_reason() -> None:
    class Refuses:
        def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
            if copy is False:
                raise ValueError("Unable to avoid copy while creating an array as requested.")
            return np.arange(3.0)

    with pytest.raises(interop.CopyRequiredError, match=r"cannot hand out a view.*Unable to"):
        interop.to_numpy(Refuses(), copy=False)
    assert interop.to_numpy(Refuses()).tolist() == [0.0, 1.0, 2.0]


def test_a_read_only_copy_from_array_method_is_planned_read_only() -> None:
    """An ``__array__`` that can only copy, into a read-only array (one it caches)."""

    class Frozen:
        def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
            if copy is False:
                raise ValueError("Unable to avoid copy while creating an array as requested.")
            a = np.arange(3.0)
            a.flags.writeable = False
            return a

    x = Frozen()
    for options, readonly in [({}, True), ({"copy": True}, False), ({"dtype": np.float32}, False)]:
        plan = interop.explain(x, **options)  # type: ignore[arg-type]
        out = interop.to_numpy(x, **options)  # type: ignore[arg-type]
        leaf = interop.to_numpy_tree({"k": x}, **options)["k"]  # type: ignore[arg-type]
        assert plan.readonly is readonly and not plan.zero_copy, options
        assert out.flags.writeable is not readonly and leaf.flags.writeable is not readonly


def test_object_array_from_array_method_is_kept_under_dtype_object() -> None:
    obj = ArrayMethod(np.array([1, None], dtype=object))
    out = interop.to_numpy(obj, dtype=object)
    assert out.dtype == object and out.tolist() == [1, None]
    assert interop.explain(obj, dtype=object).dtype == object
    with pytest.raises(interop.ConversionError, match="dtype=object"):
        interop.to_numpy(obj)
    numbers = ArrayMethod(np.array([1, 2.5], dtype=object))
    assert interop.to_numpy(numbers, dtype=np.float64).tolist() == [1.0, 2.5]


class _HostileMeta(type):
    def __getattr__(cls, name: str) -> Any:
        raise RuntimeError(f"meta boom {name}")


def test_class_whose_metaclass_getattr_raises_is_inspected_without_running_it() -> None:
    class Plain(metaclass=_HostileMeta):
        pass

    class WithArray(metaclass=_HostileMeta):
        def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
            return DATA

    assert interop.framework_of(Plain()) is None
    with pytest.raises(interop.UnsupportedTypeError, match=r"Plain`: no backend"):
        interop.to_numpy(Plain())  # the error's hint is looked up without running it too
    assert interop.framework_of(WithArray()) == "array_protocol"
    assert interop.to_numpy(WithArray()) is DATA


@pytest.mark.parametrize(
    ("value", "dtype"),
    [(np.float32(1.5), np.float32), (np.int8(-3), np.int8), (np.bool_(True), np.bool_)],
)
def test_numpy_scalars_become_0d_arrays(value: Any, dtype: Any) -> None:
    out = interop.to_numpy(value)
    assert type(out) is np.ndarray and out.shape == () and out.dtype == dtype
    assert out[()] == value
    assert interop.framework_of(value) == "numpy"
    assert interop.to_numpy(value, dtype=np.float64).dtype == np.float64


@pytest.mark.parametrize(
    ("value", "dtype"),
    [(3, np.int64), (2.5, np.float64), (True, np.bool_), (1 + 2j, np.complex128)],
)
def test_python_scalars_become_0d_arrays(value: Any, dtype: Any) -> None:
    out = interop.to_numpy(value)
    assert type(out) is np.ndarray and out.shape == () and out.dtype == dtype
    assert out[()] == value
    assert interop.framework_of(value) == "python"
    assert interop.to_numpy(value, dtype=np.complex64).dtype == np.complex64


def test_nested_lists_and_tuples_convert_like_asarray() -> None:
    for value in ([[1, 2], [3, 4]], ((1.0, 2.0), (3.0, 4.0)), [(1, 2), [3, 4]], []):
        out = interop.to_numpy(value)
        expected = np.asarray(value)
        assert out.dtype == expected.dtype and out.shape == expected.shape
        np.testing.assert_array_equal(out, expected)
        assert out.flags.writeable
    assert interop.to_numpy([[1, 2]], dtype=np.float32).dtype == np.float32


def test_list_of_framework_tensors(fw: Framework) -> None:
    items = [fw.make(DATA[0]), fw.make(DATA[1])]
    before = list(items)
    out = interop.to_numpy(items)
    np.testing.assert_array_equal(out, DATA)
    assert out.dtype == np.float32 and out.shape == (2, 3)
    assert all(a is b for a, b in zip(items, before, strict=True)) and len(items) == 2
    # The result is a new array, never a view of an item.
    assert not np.shares_memory(out, fw.native(items[0]))
    assert interop.to_numpy(tuple(items), dtype=np.float64).dtype == np.float64


def test_list_of_0d_tensors(fw: Framework) -> None:
    items = [fw.make(np.array(v, dtype=np.float32)) for v in (1.0, 2.0, 3.0)]
    out = interop.to_numpy(items)
    assert out.shape == (3,) and out.dtype == np.float32
    np.testing.assert_array_equal(out, [1.0, 2.0, 3.0])


def test_nested_list_mixing_frameworks() -> None:
    names = [name for name in FRAMEWORKS]
    rows = [load_framework(name).make(DATA[0]) for name in names]
    out = interop.to_numpy([rows, [list(DATA[0])] * len(rows)])
    assert out.shape == (2, len(rows), 3)
    np.testing.assert_array_equal(out[0], np.stack([DATA[0]] * len(rows)))
    np.testing.assert_array_equal(out[1], out[0])


def test_list_of_dlpack_and_array_api_items() -> None:
    out = interop.to_numpy([DLPackProducer(DATA[0]), DLPackProducer(DATA[1])])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, DATA)
    xp = _strict()
    out = interop.to_numpy([xp.asarray(DATA[0]), xp.asarray(DATA[1])])
    np.testing.assert_array_equal(out, DATA)


@pytest.mark.parametrize("name", ["torch", "jax"])
def test_list_items_take_the_options_of_the_call(name: str) -> None:
    load_framework(name)
    if name == "torch":
        import torch

        items = [torch.ones(2, dtype=torch.bfloat16), torch.zeros(2, dtype=torch.bfloat16)]
    else:
        import jax.numpy as jnp

        items = [jnp.ones(2, dtype=jnp.bfloat16), jnp.zeros(2, dtype=jnp.bfloat16)]
    assert interop.to_numpy(items).dtype.name == "bfloat16"
    assert interop.to_numpy(items, upcast=True).dtype == np.float32
    with interop.options(upcast=True):
        assert interop.to_numpy(items).dtype == np.float32
    out = interop.to_numpy(items, upcast=True, dtype=np.float64)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[1.0, 1.0], [0.0, 0.0]])


def test_list_conversion_never_mutates_the_list() -> None:
    inner = [1, 2]
    value = [inner, (3, 4)]
    interop.to_numpy(value, dtype=np.float32)
    assert value == [[1, 2], (3, 4)] and value[0] is inner


# -- 11. Unsupported types -------------------------------------------------------------


def _gen() -> Any:
    yield 1


@pytest.mark.parametrize(
    ("value", "name", "hint"),
    [
        (None, "NoneType", "None has no data"),
        ("text", "str", "text is not an array"),
        ({"a": 1}, "dict", "convert its values"),
        (object(), "object", None),
        ({1, 2}, "set", "sets have no order"),
        (b"raw", "bytes", "np.frombuffer"),
        (_gen(), "generator", "materialise iterables"),
    ],
    ids=["None", "str", "dict", "object", "set", "bytes", "generator"],
)
def test_unsupported_type_names_type_backends_and_hint(
    value: Any, name: str, hint: str | None
) -> None:
    with pytest.raises(interop.UnsupportedTypeError) as info:
        interop.to_numpy(value)
    message = str(info.value)
    assert isinstance(info.value, TypeError)
    assert message.startswith(f"expected an array or tensor, got `{name}`")
    tried = message.split("tried: ", 1)[1]
    for backend in interop.backends():
        # Every backend of arrays is named (TensorDict's backend takes containers only).
        assert backend.name in tried or backend.name == "tensordict"
    if hint is None:
        assert "hint" not in message
    else:
        assert hint in message.split(". hint: ", 1)[1]
    with pytest.raises(interop.UnsupportedTypeError):
        interop.explain(value)
    assert interop.framework_of(value) is None


def test_unsupported_user_class_names_its_module() -> None:
    class Opaque:
        pass

    with pytest.raises(
        interop.UnsupportedTypeError, match=r"got `tests\.unit\.test_dispatch\..*Opaque`"
    ):
        interop.to_numpy(Opaque())


# -- Dispatch: framework_of, the per-type cache, threads -------------------------------


def test_framework_of(fw: Framework) -> None:
    assert interop.framework_of(fw.make(DATA)) == fw.name
    assert interop.framework_of([1]) == "python"
    assert interop.framework_of(DLPackProducer(DATA)) == "dlpack"


def test_tensor_subclasses_dispatch_to_their_framework() -> None:
    load_framework("torch")
    load_framework("tensorflow")
    import tensorflow as tf
    import torch

    p = torch.nn.Parameter(torch.ones(2))
    assert interop.framework_of(p) == "torch"
    assert interop.framework_of(tf.Variable([1.0])) == "tensorflow"


def test_second_lookup_is_a_dict_hit(monkeypatch: pytest.MonkeyPatch) -> None:
    class Fresh(DLPackProducer):
        pass

    assert Fresh not in _registry._cache
    np.testing.assert_array_equal(interop.to_numpy(Fresh(DATA)), DATA)
    assert _registry._cache[Fresh] is _registry.by_name("dlpack")

    def resolve_again(cls: type) -> Any:
        raise AssertionError(f"{cls} was resolved twice")

    monkeypatch.setattr(_registry, "_resolve", resolve_again)
    np.testing.assert_array_equal(interop.to_numpy(Fresh(DATA)), DATA)
    assert interop.explain(Fresh(DATA)).framework == "dlpack"
    assert interop.framework_of(Fresh(DATA)) == "dlpack"


def test_unsupported_types_are_cached_too(monkeypatch: pytest.MonkeyPatch) -> None:
    class Nothing:
        pass

    assert interop.framework_of(Nothing()) is None
    assert Nothing in _registry._cache and _registry._cache[Nothing] is None

    def resolve_again(cls: type) -> Any:
        raise AssertionError(f"{cls} was resolved twice")

    monkeypatch.setattr(_registry, "_resolve", resolve_again)
    assert interop.framework_of(Nothing()) is None


def test_first_conversions_of_new_types_from_many_threads() -> None:
    # Each type is new to the cache; every thread converts all of them at once.
    kinds = [
        (type("FreshDLPack", (DLPackProducer,), {}), "dlpack"),
        (type("FreshArrayMethod", (ArrayMethod,), {}), "array_protocol"),
        (type("FreshInterface", (InterfaceOnly,), {}), "array_protocol"),
        (type("FreshList", (list,), {}), "python"),
    ]
    for cls, _ in kinds:
        assert cls not in _registry._cache
    threads = 8
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            barrier.wait()
            for i in range(len(kinds)):
                cls, _ = kinds[(i + offset) % len(kinds)]
                value = cls(DATA.tolist()) if issubclass(cls, list) else cls(DATA.copy())
                np.testing.assert_array_equal(interop.to_numpy(value), DATA)
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    for cls, name in kinds:
        backend = _registry._cache[cls]
        assert backend is not None and backend.name == name
