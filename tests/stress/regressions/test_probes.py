"""Failures found by probing the public API by hand, each kept as its smallest input.

Every test says what went wrong before the fix. They cross entry points (convert to
the source's own framework, ``like=``, lists of arrays) where one path skipped a
check that the others make.
"""

from __future__ import annotations

import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

import interop
from interop import ConversionError
from tests.contract.test_convert import Taker


@pytest.mark.parametrize(
    "make",
    [
        lambda: [np.complex64(1 + 2j)],
        lambda: [[np.array([1 + 2j])]],
        lambda: [pytest.importorskip("torch").tensor(1 + 2j)],
        lambda: (1.0, 1 + 2j),
        lambda: 1 + 2j,
    ],
    ids=["numpy-scalar", "nested-array", "torch-item", "python-complex", "python-scalar"],
)
def test_complex_items_are_not_cast_to_a_real_dtype(make: object) -> None:
    # A list of complex NumPy scalars or tensors became real under dtype=float64,
    # with only NumPy's ComplexWarning (a single array was refused).
    x = make()  # type: ignore[operator]
    for dtype in (np.float64, np.int64):
        with pytest.raises(ConversionError, match="imaginary parts"):
            interop.to_numpy(x, dtype=dtype)
    assert interop.to_numpy(x, dtype=np.complex64).dtype == np.complex64
    assert interop.to_numpy(x, dtype=object).dtype == object


def test_float8_e5m2_reaches_tensorflow_on_every_call() -> None:
    # The first call took the general route; from the second on the fast route sent
    # the array to NumPy's DLPack export, which has no float8: a raw BufferError.
    pytest.importorskip("tensorflow")
    torch = pytest.importorskip("torch")
    bits = np.arange(4, dtype=np.uint8)
    for x in (
        bits.view(ml_dtypes.float8_e5m2),
        torch.from_numpy(bits.copy()).view(torch.float8_e5m2),
    ):
        for _ in range(3):
            out = interop.convert(x, "tensorflow")
            assert out.dtype.as_numpy_dtype == ml_dtypes.float8_e5m2
            np.testing.assert_array_equal(out.numpy().view(np.uint8), bits)


def test_arrays_without_values_are_refused_when_kept_in_their_framework() -> None:
    # convert(x, <x's own framework>) and like=x skipped the checks of the plan:
    # raw RuntimeError, NotImplementedError, and a meta result for like=meta.
    jnp = pytest.importorskip("jax.numpy")
    torch = pytest.importorskip("torch")
    deleted = jnp.arange(3.0)
    deleted.delete()
    meta = torch.empty(3, device="meta")
    for call in (
        lambda: interop.convert(deleted, "jax"),
        lambda: interop.convert(np.ones(2), like=deleted),
        lambda: interop.explain(deleted, to="jax"),
        lambda: interop.convert(meta, "torch"),
        lambda: interop.convert(np.ones(2, np.float32), like=meta),
        lambda: interop.convert(torch.ones(2), like=meta),
    ):
        for _ in range(2):  # the planned path, then the fast route
            with pytest.raises(ConversionError, match=r"expected a (live array|tensor with data)"):
                call()


def test_a_tracer_is_refused_in_its_framework() -> None:
    jax = pytest.importorskip("jax")
    errors: list[BaseException] = []

    @jax.jit
    def traced(x: object) -> object:
        try:
            interop.convert(x, "jax")
        except ConversionError as exc:
            errors.append(exc)
        return x

    traced(jax.numpy.ones(2))
    assert [str(e).split(",")[0] for e in errors] == ["expected a concrete array"]


@pytest.mark.slow  # tracing a tf.function takes seconds
def test_a_symbolic_tensor_is_refused_in_its_framework() -> None:
    tf = pytest.importorskip("tensorflow")
    errors: list[BaseException] = []

    @tf.function
    def graph(x: object) -> object:
        try:
            interop.convert(x, "tensorflow")
        except ConversionError as exc:
            errors.append(exc)
        return x

    graph(tf.ones(2))
    assert [str(e).split(",")[0] for e in errors] == ["expected an eager tensor with values"]


@pytest.mark.slow  # a fresh interpreter importing TensorFlow
def test_tensorflow_places_a_first_conversion_inside_tf_function_eagerly() -> None:
    # The default device, asked for the first time inside tf.function, was read from
    # a graph constant, which has no device yet: ValueError about device ''.
    code = (
        "import numpy as np, tensorflow as tf, interop\n"
        "@tf.function\n"
        "def f(x):\n"
        "    out.append(interop.convert(np.arange(2.0), 'tensorflow'))\n"
        "    return x\n"
        "out = []\n"
        "f(tf.ones(2))\n"
        "print(type(out[0]).__name__, out[0].numpy().tolist())\n"
    )
    pytest.importorskip("tensorflow")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[-2] == "EagerTensor [0.0, 1.0]"


@pytest.mark.parametrize("x", [[1.0, 2.0], 1.5, memoryview(b"ab")], ids=["list", "float", "buffer"])
def test_an_unknown_device_is_the_callers_value_error(x: object) -> None:
    # For a list, a scalar or a buffer the device error was translated as if the
    # input had failed: "NumPy cannot build an array" from a valid list.
    pytest.importorskip("torch")
    with pytest.raises(ValueError, match="expected a device PyTorch knows") as info:
        interop.convert(x, "torch", device="bogus")
    assert not isinstance(info.value, ConversionError)


@pytest.mark.parametrize("dtype", ["float6_e2m3fn", "float6_e3m2fn", "complex32"])
def test_dtypes_jax_cannot_hold_are_refused_by_the_plan(dtype: str) -> None:
    # explain promised a zero-copy import; convert raised JAX's own errors.
    pytest.importorskip("jax")
    bits = np.zeros(4, np.uint32 if dtype == "complex32" else np.uint8)
    x = bits.view(np.dtype(getattr(ml_dtypes, dtype)))
    for call in (lambda: interop.explain(x, to="jax"), lambda: interop.convert(x, "jax")):
        for _ in range(3):
            with pytest.raises(ConversionError, match=f"JAX can hold .* got {dtype}"):
                call()


class Uploader(Taker):
    """A target whose arrays live on an accelerator: every conversion into it uploads."""

    name = "uploader"

    def dlpack_device(self, device: object, /) -> tuple[int, int]:
        return (2, 0)


def test_an_upload_is_no_device_to_host_transfer() -> None:
    # Host data moving to a device was planned as a device-to-host transfer, which
    # allow_transfer=False refused, saying the data was not in host memory.
    interop.register_backend(Uploader())
    try:
        a = np.arange(4.0)
        plan = interop.explain(a, to="uploader")
        assert not plan.transfer and "to_device" in plan.steps
        with interop.options(allow_transfer=False):
            tag, out = interop.convert(a, "uploader")
        assert tag == "taken" and not np.shares_memory(out, a)
        np.testing.assert_array_equal(out, a)
    finally:
        interop._registry.unregister_backend("uploader")


def test_a_tensor_whose_storage_was_freed_is_refused() -> None:
    # resize_(0) of the storage (what FSDP does to sharded parameters) left a tensor
    # that converted "zero-copy" to freed memory; a cached plan skipped any check.
    torch = pytest.importorskip("torch")
    interop.to_numpy(torch.arange(8.0), copy=True)  # a cached plan for the signature
    calls = [
        lambda t: interop.to_numpy(t),
        lambda t: interop.to_numpy(t, copy=True),
        lambda t: interop.explain(t),
        lambda t: interop.to_numpy_tree({"p": t}),
        lambda t: interop.convert(t, "numpy"),
        lambda t: interop.convert(t, "jax"),
        lambda t: interop.convert(t, "torch"),
    ]
    for freed in (torch.arange(8.0), torch.arange(8.0)[2:]):
        freed.untyped_storage().resize_(0)
        for call in calls:
            with pytest.raises(ConversionError, match="storage was freed"):
                call(freed)
    empty = torch.empty(0)  # no bytes, no elements: an ordinary zero-copy view
    assert interop.explain(empty).zero_copy and interop.to_numpy(empty).shape == (0,)


def test_a_tensor_reaching_past_its_shrunk_storage_is_refused() -> None:
    # A storage shrunk in place to fewer bytes than the tensor reaches (but not to
    # none) converted to memory past the end of its allocation: garbage, or a crash.
    torch = pytest.importorskip("torch")
    interop.to_numpy(torch.arange(8.0), copy=True)  # a cached plan for the signature
    planned = [
        lambda t: interop.to_numpy(t, copy=True),
        lambda t: interop.to_numpy(t, dtype=np.float64),
        lambda t: interop.explain(t),
        lambda t: interop.convert(t, "torch", copy=True),
    ]
    whole = torch.arange(1024.0)
    whole.untyped_storage().resize_(64)
    for call in [*planned, lambda t: interop.to_numpy(t), lambda t: interop.to_numpy_tree([t])]:
        with pytest.raises(ConversionError, match=r"freed or shrunk.*holds 64 bytes"):
            call(whole)
    # Views whose own bytes fit, but that reach past the end: at an offset, with gaps.
    base = torch.arange(64.0).reshape(8, 8)
    views = [base[6:], base[:, :2], base.T[:2]]
    base.untyped_storage().resize_(200)
    for view in views:
        for call in planned:
            with pytest.raises(ConversionError, match="freed or shrunk"):
                call(view)
    inside = torch.arange(64.0)[:10]
    inside.untyped_storage().resize_(40)  # exactly the ten values: nothing past the end
    assert interop.to_numpy(inside, copy=True).tolist() == list(range(10))


def test_convert_follows_only_copy_and_allow_transfer_of_a_block() -> None:
    # An options(dtype=...) or options(upcast=True) block cast convert(x, "numpy")
    # and no other target; convert keeps the dtype.
    torch = pytest.importorskip("torch")
    pytest.importorskip("jax")
    t = torch.arange(4.0)
    bf16 = t.to(torch.bfloat16)
    with interop.options(dtype=np.float16, upcast=True):
        assert interop.convert(t, "numpy").dtype == np.float32
        assert interop.convert(bf16, "numpy").dtype == ml_dtypes.bfloat16
        assert interop.convert(bf16, "jax").dtype == ml_dtypes.bfloat16
        assert interop.to_numpy(t).dtype == np.float16  # to_numpy follows it
    with interop.options(copy=True):
        assert not np.shares_memory(interop.convert(t, "numpy"), t.numpy())
