"""The copy contract of ``to_numpy``, one body per rule, for every framework.

The numbered sections follow the contract (docs/contract.md). Aliasing claims are
asserted with ``np.shares_memory`` against the framework's own NumPy view
(``fw.native``); independence claims by writing to the result and reading the
source back.
"""

from __future__ import annotations

import importlib.util
import re
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import interop
from tests.conftest import FRAMEWORKS, Framework, load_framework
from tests.support.producers import DLPackProducer

DATA = np.arange(12, dtype=np.float32).reshape(3, 4)

DTYPES = [
    "float16",
    "float32",
    "float64",
    "int8",
    "int32",
    "int64",
    "uint8",
    "bool",
    "complex64",
]


def transpose(fw: Framework, x: Any) -> Any:
    """The framework's own transpose (a strided view where the framework has views)."""
    if fw.name == "tensorflow":
        import tensorflow as tf

        return tf.transpose(x)
    return x.T


def every_other_column(x: Any) -> Any:
    return x[:, ::2]


def sample(dtype: str, shape: tuple[int, ...] = (3, 4)) -> np.ndarray:
    """Values that survive every dtype in ``DTYPES`` (small, non-negative)."""
    return (np.arange(int(np.prod(shape))) % 5).astype(dtype).reshape(shape)


# -- 1. copy=None: zero-copy on the host -----------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_copy_none_is_zero_copy_on_cpu(fw: Framework, dtype: str) -> None:
    x = fw.make(sample(dtype))
    out = interop.to_numpy(x)
    native = fw.native(x)
    assert type(out) is np.ndarray
    assert np.shares_memory(out, native)
    assert out.dtype == native.dtype
    np.testing.assert_array_equal(out, native)
    assert interop.explain(x).zero_copy


def test_numpy_input_is_returned_as_is() -> None:
    a = np.ones(3)
    assert interop.to_numpy(a) is a
    assert interop.to_numpy(a, copy=False) is a
    assert interop.to_numpy(a, dtype=a.dtype) is a


def test_read_only_numpy_input_is_returned_as_is() -> None:
    a = np.ones(3)
    a.flags.writeable = False
    assert interop.to_numpy(a) is a
    assert not a.flags.writeable
    plan = interop.explain(a)
    assert plan.zero_copy and plan.readonly


# -- 2. copy=True: owned, writable, independent ----------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
def test_copy_true_is_independent(fw: Framework, dtype: str) -> None:
    source = sample(dtype)
    x = fw.make(source)
    out = interop.to_numpy(x, copy=True)
    assert out.flags.writeable and out.flags.owndata
    assert not np.shares_memory(out, fw.native(x))
    np.testing.assert_array_equal(out, source)
    out[...] = out[0, 1]  # write every element of the result...
    np.testing.assert_array_equal(fw.native(x), source)  # ...and the source is untouched
    assert not interop.explain(x, copy=True).zero_copy


# Only these frameworks have arrays a caller can write to (TensorFlow and JAX have none).
@pytest.mark.parametrize("name", ["numpy", "torch"])
def test_copy_true_source_writes_do_not_show(name: str) -> None:
    fw = load_framework(name)
    assert not fw.immutable
    x = fw.make(DATA)
    out = interop.to_numpy(x, copy=True)
    fw.native(x)[0, 0] = 99
    assert out[0, 0] == DATA[0, 0]


# -- 3. copy=False: never copies, raises before any work -------------------------------


def test_copy_false_is_zero_copy_on_cpu(fw: Framework) -> None:
    x = fw.make(DATA)
    out = interop.to_numpy(x, copy=False)
    assert np.shares_memory(out, fw.native(x))


def test_copy_false_with_a_cast_raises_and_says_why(fw: Framework) -> None:
    x = fw.make(DATA)
    with pytest.raises(interop.CopyRequiredError, match=r"copy=False.*casting float32 to float64"):
        interop.to_numpy(x, copy=False, dtype=np.float64)


@pytest.mark.parametrize("dtype", [str, bytes, np.void, "m8"])
def test_a_dtype_of_no_size_or_unit_is_planned_as_numpy_sizes_it(fw: Framework, dtype: Any) -> None:
    # NumPy sizes the text of float32 data (32 characters) by its dtype: the plan says so.
    x = fw.make(DATA)
    plan = interop.explain(x, dtype=dtype)
    out = interop.to_numpy(x, dtype=dtype)
    assert plan.dtype == out.dtype == DATA.astype(dtype).dtype and plan.dtype.itemsize


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ([1.0, 2.0], r"a list has no array memory"),
        ((1, 2), r"a tuple has no array memory"),
        (np.float32(1.5), r"a NumPy scalar has no array memory"),
        (3, r"a Python int has no array memory"),
    ],
    ids=["list", "tuple", "numpy-scalar", "python-int"],
)
def test_copy_false_on_values_without_array_memory_raises(value: Any, why: str) -> None:
    with pytest.raises(interop.CopyRequiredError, match=why) as info:
        interop.to_numpy(value, copy=False)
    assert "hint: use copy=None" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_copy_false_on_a_list_of_tensors_raises_before_converting_them(fw: Framework) -> None:
    items = [DLPackProducer(DATA[0]), DLPackProducer(DATA[1])]
    mixed = [fw.make(DATA[0]), *items]
    with pytest.raises(interop.CopyRequiredError, match="a list has no array memory"):
        interop.to_numpy(mixed, copy=False)
    assert all(item.exports == [] for item in items)


def test_copy_false_with_a_cast_asks_the_producer_for_no_copy() -> None:
    producer = DLPackProducer(DATA)
    with pytest.raises(interop.CopyRequiredError, match="casting float32 to int32"):
        interop.to_numpy(producer, copy=False, dtype=np.int32)
    assert all(call.get("copy") is not True for call in producer.exports)
    np.testing.assert_array_equal(producer.array, np.arange(12, dtype=np.float32).reshape(3, 4))


def test_copy_false_on_a_torch_conjugate_view_raises() -> None:
    torch = _torch()
    t = torch.tensor([1 + 2j, 3 - 1j], dtype=torch.complex64).conj()
    with pytest.raises(interop.CopyRequiredError, match="conjugate bit"):
        interop.to_numpy(t, copy=False)
    np.testing.assert_array_equal(interop.to_numpy(t), np.array([1 - 2j, 3 + 1j]))


def test_copy_false_on_a_tf_variable_raises() -> None:
    load_framework("tensorflow")
    import tensorflow as tf

    v = tf.Variable([1.0, 2.0])
    with pytest.raises(interop.CopyRequiredError, match=r"tf\.Variable is mutable"):
        interop.to_numpy(v, copy=False)


# -- 4. Read-only rule; the input is never mutated -------------------------------------


def test_readonly_rule(fw: Framework) -> None:
    x = fw.make(DATA)
    out = interop.to_numpy(x)
    assert out.flags.writeable is (not fw.immutable)
    assert interop.explain(x).readonly is fw.immutable
    if not fw.immutable:
        out[0, 0] = 42
        assert fw.native(x)[0, 0] == 42
    else:
        with pytest.raises(ValueError, match="read-only"):
            out[0, 0] = 42
        np.testing.assert_array_equal(fw.native(x), DATA)


@pytest.mark.parametrize(
    "options",
    [{}, {"copy": True}, {"copy": False}, {"dtype": np.float64}, {"dtype": np.float32}],
    ids=["default", "copy", "no-copy", "cast", "same-dtype"],
)
def test_input_is_never_mutated(fw: Framework, options: dict[str, Any]) -> None:
    x = fw.make(DATA)
    writeable_before = fw.native(x).flags.writeable
    interop.to_numpy(x, **options)
    np.testing.assert_array_equal(fw.native(x), DATA)
    assert fw.native(x).flags.writeable is writeable_before
    # The framework's own conversion still behaves as before.
    assert interop.to_numpy(x).flags.writeable is (not fw.immutable)


# -- 5. Autograd: the graph is never touched -------------------------------------------


def _torch() -> Any:
    load_framework("torch")
    import torch

    return torch


@pytest.mark.parametrize("copy", [None, True, False])
def test_leaf_requiring_grad_converts_without_touching_it(copy: bool | None) -> None:
    torch = _torch()
    t = torch.arange(6.0, requires_grad=True)
    out = interop.to_numpy(t, copy=copy)
    np.testing.assert_array_equal(out, np.arange(6.0))
    assert np.shares_memory(out, t.detach().numpy()) is (copy is not True)
    assert t.requires_grad and t.is_leaf and t.grad_fn is None
    (t * 2).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), np.full(6, 2.0))


def test_non_leaf_keeps_its_graph() -> None:
    torch = _torch()
    a = torch.arange(4.0, requires_grad=True)
    y = a * 3
    grad_fn = y.grad_fn
    out = interop.to_numpy(y)
    np.testing.assert_array_equal(out, [0.0, 3.0, 6.0, 9.0])
    assert y.grad_fn is grad_fn and y.requires_grad
    assert "detach" in interop.explain(y).steps
    y.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.full(4, 3.0))


def test_cast_of_a_tensor_requiring_grad() -> None:
    torch = _torch()
    t = torch.ones(3, requires_grad=True)
    out = interop.to_numpy(t, dtype=np.float64)
    assert out.dtype == np.float64 and t.requires_grad and t.dtype == torch.float32


def test_tensorflow_gradient_tape_is_not_disturbed() -> None:
    load_framework("tensorflow")
    import tensorflow as tf

    x = tf.constant([1.0, 2.0, 3.0])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = x * x
        np.testing.assert_array_equal(interop.to_numpy(y), [1.0, 4.0, 9.0])
    np.testing.assert_array_equal(tape.gradient(y, x).numpy(), [2.0, 4.0, 6.0])


@pytest.mark.parametrize("transform", ["jit", "grad"])
def test_jax_tracer_is_a_conversion_error_with_a_hint(transform: str) -> None:
    load_framework("jax")
    import jax

    def f(x: Any) -> Any:
        interop.to_numpy(x)
        return (x * x).sum()

    with pytest.raises(interop.ConversionError, match=r"tracer.*hint: use jax\.pure_callback"):
        getattr(jax, transform)(f)(jax.numpy.ones(3))


# -- 6. Device transfer ----------------------------------------------------------------


def _strict_on_device1() -> Any:
    xp = pytest.importorskip("array_api_strict")
    return xp.asarray([[1.0, 2.0], [3.0, 4.0]], device=xp.Device("device1"))


def test_non_host_array_api_device_is_a_planned_transfer() -> None:
    x = _strict_on_device1()
    plan = interop.explain(x)
    assert plan.transfer and not plan.zero_copy
    assert "device1" in plan.device
    assert plan.steps[0] == "to_cpu"
    out = interop.to_numpy(x)
    np.testing.assert_array_equal(out, [[1.0, 2.0], [3.0, 4.0]])
    assert out.flags.writeable
    assert str(x.device) == "array_api_strict.Device('device1')"  # the source stays put


def test_allow_transfer_false_raises_transfer_error_naming_the_device() -> None:
    x = _strict_on_device1()
    with pytest.raises(interop.TransferError, match=r"device1.*allow_transfer=False.*hint") as info:
        interop.to_numpy(x, allow_transfer=False)
    assert isinstance(info.value, RuntimeError)
    with interop.options(allow_transfer=False), pytest.raises(interop.TransferError):
        interop.to_numpy(x)


def test_copy_false_refuses_a_transfer() -> None:
    x = _strict_on_device1()
    with pytest.raises(interop.CopyRequiredError, match=r"device1'\) and must be copied to host"):
        interop.to_numpy(x, copy=False)


def test_host_data_never_counts_as_a_transfer(fw: Framework) -> None:
    x = fw.make(DATA)
    plan = interop.explain(x, allow_transfer=False)
    assert plan.device == "cpu" and not plan.transfer
    assert np.shares_memory(interop.to_numpy(x, allow_transfer=False), fw.native(x))


def _gpu_array(name: str, a: np.ndarray) -> Any:
    """``a`` on the first GPU of framework ``name``; skips where that framework has none."""
    load_framework(name)
    if name == "torch":
        import torch

        return torch.from_numpy(a).cuda()
    if name == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        if not gpus:
            pytest.skip("jax sees no GPU")
        return jax.device_put(a, gpus[0])
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        pytest.skip("tensorflow sees no GPU")
    with tf.device("/GPU:0"):
        return tf.constant(a)


GPU_FRAMEWORKS = [f for f in FRAMEWORKS if f != "numpy"]


@pytest.mark.gpu
@pytest.mark.parametrize("name", GPU_FRAMEWORKS)
def test_gpu_data_is_copied_to_host(name: str) -> None:
    x = _gpu_array(name, DATA)
    plan = interop.explain(x)
    assert plan.transfer and not plan.zero_copy
    assert plan.device.startswith(("cuda:", "gpu:"))
    out = interop.to_numpy(x)
    np.testing.assert_array_equal(out, DATA)
    # JAX and TensorFlow: one copy, into the host copy the framework keeps with the
    # array, read-only; PyTorch and CuPy: one copy into memory the result owns.
    kept = name in ("jax", "tensorflow")
    assert plan.readonly == kept and out.flags.writeable == (not kept)
    if name == "jax":
        assert np.shares_memory(out, np.asarray(x))
    copied = interop.to_numpy(x, copy=True)
    assert copied.flags.writeable
    copied[0, 0] = 7
    np.testing.assert_array_equal(interop.to_numpy(x), DATA)


@pytest.mark.gpu
@pytest.mark.parametrize("name", GPU_FRAMEWORKS)
def test_gpu_data_with_allow_transfer_false_raises(name: str) -> None:
    x = _gpu_array(name, DATA)
    device = interop.explain(x).device
    with pytest.raises(interop.TransferError, match=re.escape(device)):
        interop.to_numpy(x, allow_transfer=False)
    with pytest.raises(interop.CopyRequiredError, match="must be copied to host"):
        interop.to_numpy(x, copy=False)


@pytest.mark.gpu
@pytest.mark.parametrize("name", GPU_FRAMEWORKS)
def test_gpu_narrowing_cast_happens_on_the_device(name: str) -> None:
    x = _gpu_array(name, DATA.astype(np.float64))
    plan = interop.explain(x, dtype=np.float16)
    assert plan.steps.index("cast_on_device") < plan.steps.index("to_host")
    out = interop.to_numpy(x, dtype=np.float16)
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, DATA.astype(np.float16))


@pytest.mark.gpu
def test_gpu_tensor_requiring_grad_is_copied_and_keeps_its_graph() -> None:
    torch = _torch()
    t = torch.arange(4.0, device="cuda", requires_grad=True)
    y = t * 2
    out = interop.to_numpy(y)
    np.testing.assert_array_equal(out, [0.0, 2.0, 4.0, 6.0])
    y.sum().backward()
    assert t.grad is not None


@pytest.mark.gpu
def test_gpu_dlpack_producer_is_a_transfer() -> None:
    torch = _torch()
    producer = DLPackProducer(torch.arange(4.0, device="cuda"))
    plan = interop.explain(producer)
    assert plan.framework == "dlpack" and plan.transfer and plan.device == "cuda:0"
    np.testing.assert_array_equal(interop.to_numpy(producer), [0.0, 1.0, 2.0, 3.0])
    with pytest.raises(interop.TransferError, match="cuda:0"):
        interop.to_numpy(producer, allow_transfer=False)


@pytest.mark.gpu
def test_gpu_tensors_inside_a_list_are_a_transfer() -> None:
    torch = _torch()
    items = [torch.ones(2, device="cuda"), torch.zeros(2, device="cuda")]
    with pytest.raises(interop.TransferError, match="cuda:0"):
        interop.to_numpy(items, allow_transfer=False)
    np.testing.assert_array_equal(interop.to_numpy(items), [[1.0, 1.0], [0.0, 0.0]])


# -- 7. dtype= -------------------------------------------------------------------------


@pytest.mark.parametrize("target", [np.float64, "int32", np.dtype("float16"), np.complex64])
def test_dtype_casts_with_one_copy(fw: Framework, target: Any) -> None:
    x = fw.make(DATA)
    out = interop.to_numpy(x, dtype=target)
    assert out.dtype == np.dtype(target)
    np.testing.assert_array_equal(out, DATA.astype(target))
    assert not np.shares_memory(out, fw.native(x))
    plan = interop.explain(x, dtype=target)
    assert not plan.zero_copy and plan.dtype == np.dtype(target)
    assert "cast" in plan.steps or "cast_on_device" in plan.steps
    # One copy: the cast's output is handed over, never copied again.
    assert out.flags.owndata


@pytest.mark.parametrize("copy", [None, False])
def test_dtype_equal_to_the_source_is_zero_copy(fw: Framework, copy: bool | None) -> None:
    x = fw.make(DATA)
    out = interop.to_numpy(x, dtype="float32", copy=copy)
    assert out.dtype == np.float32
    assert np.shares_memory(out, fw.native(x))
    assert interop.explain(x, dtype=np.float32).zero_copy


def test_dtype_with_copy_true_copies_once(fw: Framework) -> None:
    x = fw.make(DATA)
    out = interop.to_numpy(x, dtype=np.float32, copy=True)
    assert not np.shares_memory(out, fw.native(x))
    plan = interop.explain(x, dtype=np.float64, copy=True)
    assert plan.steps.count("cast") + plan.steps.count("copy") == 1


def test_dtype_from_an_options_block(fw: Framework) -> None:
    x = fw.make(DATA)
    with interop.options(dtype=np.float64):
        assert interop.to_numpy(x).dtype == np.float64
        assert interop.to_numpy(x, dtype=np.int16).dtype == np.int16


def test_invalid_dtype_is_a_type_error_with_a_hint() -> None:
    with pytest.raises(TypeError, match=r"expected dtype.*hint"):
        interop.to_numpy(np.ones(2), dtype="not-a-dtype")


# -- 8. Shapes and layouts -------------------------------------------------------------


def test_0d_becomes_a_0d_array_not_a_scalar(fw: Framework) -> None:
    x = fw.make(np.array(2.5, dtype=np.float32))
    out = interop.to_numpy(x)
    assert type(out) is np.ndarray and out.shape == () and out.ndim == 0
    assert out.dtype == np.float32 and out[()] == 2.5
    assert interop.explain(x).zero_copy
    assert interop.to_numpy(x, copy=True).shape == ()


@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 2, 0)])
@pytest.mark.parametrize("copy", [None, True])
def test_zero_size_keeps_shape_and_dtype(
    fw: Framework, shape: tuple[int, ...], copy: bool | None
) -> None:
    x = fw.make(np.zeros(shape, dtype=np.int32))
    out = interop.to_numpy(x, copy=copy)
    assert type(out) is np.ndarray and out.shape == shape and out.dtype == np.int32
    assert interop.explain(x, copy=copy).zero_copy is (copy is None)


def reverse_rows(fw: Framework, x: Any) -> Any:
    """``x[::-1]``; torch has no negative strides, so there it is ``flip`` (a copy)."""
    return x.flip(0) if fw.name == "torch" else x[::-1]


@pytest.mark.parametrize("view", ["transpose", "every_other_column", "reverse_rows"])
def test_non_contiguous_input_keeps_shape_and_values(fw: Framework, view: str) -> None:
    x = fw.make(DATA)
    if view == "transpose":
        y, expected = transpose(fw, x), DATA.T
    elif view == "every_other_column":
        y, expected = every_other_column(x), DATA[:, ::2]
    else:
        y, expected = reverse_rows(fw, x), DATA[::-1]
    for copy in (None, True):
        out = interop.to_numpy(y, copy=copy)
        assert out.shape == expected.shape and out.dtype == expected.dtype
        np.testing.assert_array_equal(out, expected)
    out = interop.to_numpy(y)
    native = fw.native(y)
    assert np.shares_memory(out, native)
    # Where the framework has strided views, the result is the same view.
    assert out.strides == native.strides
    if fw.name in ("numpy", "torch") and view != "reverse_rows":
        assert np.shares_memory(out, fw.native(x))


def test_torch_strided_view_is_zero_copy_and_writes_through() -> None:
    torch = _torch()
    base = torch.arange(12.0).reshape(3, 4)
    view = base.T[:, 1:]
    out = interop.to_numpy(view, copy=False)
    assert out.shape == (4, 2)
    out[0, 0] = -1
    assert base[1, 0].item() == -1


# -- 9. TensorFlow: the zero-copy view is the buffer, and read-only --------------------


def test_tensorflow_view_is_the_buffer_not_numpy_method() -> None:
    load_framework("tensorflow")
    import tensorflow as tf

    t = tf.constant(DATA)
    out = interop.to_numpy(t)
    assert np.shares_memory(out, np.asarray(t))
    # .numpy() copies, which is why it is not the zero-copy path.
    assert not np.shares_memory(t.numpy(), np.asarray(t))
    assert not out.flags.writeable
    assert interop.explain(t).steps == ("numpy_view", "readonly")


def test_tensorflow_variable_is_a_snapshot() -> None:
    load_framework("tensorflow")
    import tensorflow as tf

    v = tf.Variable([1.0, 2.0, 3.0])
    out = interop.to_numpy(v)
    plan = interop.explain(v)
    assert not plan.zero_copy and "snapshot" in plan.steps
    v.assign([7.0, 8.0, 9.0])
    np.testing.assert_array_equal(out, [1.0, 2.0, 3.0])
    out[0] = -1  # the snapshot is the caller's to write
    np.testing.assert_array_equal(v.numpy(), [7.0, 8.0, 9.0])


# -- 12. explain(): the plan is what to_numpy does -------------------------------------


def _host_inputs() -> list[tuple[str, Any, np.ndarray]]:
    """(name, input, a NumPy view of the input's memory) for every host input kind."""
    import array

    found: list[tuple[str, Any, np.ndarray]] = []
    for name in FRAMEWORKS:
        if importlib.util.find_spec(name) is None:
            continue
        fw = load_framework(name)
        x = fw.make(DATA)
        found.append((name, x, fw.native(x)))
        y = every_other_column(transpose(fw, x))
        found.append((f"{name}-strided", y, fw.native(y)))
        z = fw.make(np.array(1.5, dtype=np.float32))
        found.append((f"{name}-0d", z, fw.native(z)))
    base = DATA.copy()
    found.append(("dlpack", DLPackProducer(base), base))
    found.append(("memoryview", memoryview(base), base))
    buffer = array.array("f", [1.0, 2.0, 3.0])
    found.append(("array.array", buffer, np.frombuffer(buffer, dtype=np.float32)))
    if importlib.util.find_spec("array_api_strict") is not None:
        import array_api_strict as xp

        s = xp.asarray(DATA)
        found.append(("array_api", s, np.from_dlpack(s)))
    return found


OPTIONS = [
    {},
    {"copy": True},
    {"copy": False},
    {"dtype": np.float32},
    {"dtype": np.float64},
    {"dtype": np.float64, "copy": True},
    {"dtype": np.float64, "copy": False},
    {"dtype": np.int32, "copy": False},
]


def test_plan_zero_copy_matches_the_result() -> None:
    checked = 0
    for name, x, native in _host_inputs():
        for options in OPTIONS:
            label = f"{name} {options}"
            plan = interop.explain(x, **options)
            assert isinstance(plan, interop.Plan)
            if options.get("copy") is False and not plan.zero_copy:
                assert plan.copy_reason, label
                with pytest.raises(interop.CopyRequiredError):
                    interop.to_numpy(x, **options)
                continue
            out = interop.to_numpy(x, **options)
            assert np.shares_memory(out, native) is plan.zero_copy, label
            assert out.dtype == options.get("dtype", native.dtype) == plan.dtype, label
            assert plan.readonly is (not out.flags.writeable), label
            assert (plan.copy_reason is None) is plan.zero_copy, label
            checked += 1
    assert checked > 50


def test_plan_for_lists_and_scalars() -> None:
    for value in ([1, 2], (1.0,), 3, 2.5, True, np.float64(1.0), np.int8(3)):
        plan = interop.explain(value)
        out = interop.to_numpy(value)
        assert not plan.zero_copy and plan.copy_reason
        assert plan.dtype is None or out.dtype == plan.dtype


@settings(max_examples=25, deadline=None)
@given(
    a=hnp.arrays(
        dtype=st.sampled_from([np.float32, np.int64, np.uint8, np.bool_, np.complex64]),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    ),
    name=st.sampled_from(FRAMEWORKS),
    step=st.integers(1, 2),
    copy=st.sampled_from([None, True, False]),
    cast=st.booleans(),
)
def test_plan_property_across_dtypes_shapes_and_layouts(
    a: np.ndarray, name: str, step: int, copy: bool | None, cast: bool
) -> None:
    if importlib.util.find_spec(name) is None:
        return
    fw = load_framework(name)
    if name == "jax" and a.dtype == np.int64 and a.size:
        # JAX holds 32-bit integers here (jax_enable_x64 off): make refuses the rest.
        assume(np.iinfo(np.int32).min <= a.min() and a.max() <= np.iinfo(np.int32).max)
    x = fw.make(a)
    if a.ndim >= 1 and step > 1:
        x = x[::step]
        a = a[::step]
    options: dict[str, Any] = {"copy": copy}
    if cast:
        options["dtype"] = np.complex128  # holds every sampled dtype exactly
    plan = interop.explain(x, **options)
    if copy is False and not plan.zero_copy:
        with pytest.raises(interop.CopyRequiredError):
            interop.to_numpy(x, **options)
        return
    out = interop.to_numpy(x, **options)
    expected = fw.native(x).astype(np.complex128) if cast else fw.native(x)
    assert out.shape == a.shape and out.dtype == expected.dtype
    np.testing.assert_array_equal(out, expected)
    if a.size:
        assert np.shares_memory(out, fw.native(x)) is plan.zero_copy


def test_plan_fields_and_str(fw: Framework) -> None:
    x = fw.make(DATA)
    plan = interop.explain(x)
    assert plan.framework == fw.name
    assert plan.device == "cpu" and plan.transfer is False
    assert isinstance(plan.steps, tuple) and all(isinstance(s, str) for s in plan.steps)
    text = str(plan)
    assert text.startswith(f"{fw.name} on cpu: zero-copy")
    assert "dtype float32" in text and "steps: " in text
    copied = str(interop.explain(x, dtype=np.float64))
    assert re.search(r": copy \(casting float32 to float64 copies\)", copied)
    assert copied.endswith("cast")


def test_plan_str_examples() -> None:
    assert str(interop.explain(np.arange(3, dtype=np.int64))) == (
        "numpy on cpu: zero-copy, dtype int64; steps: none"
    )
    assert str(interop.explain(np.arange(3, dtype=np.int64), copy=True)) == (
        "numpy on cpu: copy (copy=True), dtype int64; steps: copy"
    )


def test_explain_returns_a_plan_copy_false_would_refuse(fw: Framework) -> None:
    x = fw.make(DATA)
    plan = interop.explain(x, copy=False, dtype=np.int8)
    assert not plan.zero_copy and plan.copy_reason == "casting float32 to int8 copies"


def test_explain_does_no_work_on_a_transfer() -> None:
    x = _strict_on_device1()
    plan = interop.explain(x, allow_transfer=False)
    assert plan.transfer and not plan.zero_copy
