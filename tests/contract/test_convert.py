"""``interop.convert`` between every pair of frameworks, and ``explain`` for the same keywords.

Every aliasing claim is checked with ``np.shares_memory`` on the frameworks' own
NumPy views, every independence claim by writing and reading back, and every plan
against what the conversion then does.
"""

from __future__ import annotations

import importlib.util
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import interop
from interop import _memory
from interop._memory import ALIGNMENT
from tests.conftest import has_cuda

# The frameworks on both sides of a conversion, as convert names them; array-api-strict
# is reached through like=.
NAMES = ["numpy", "torch", "tensorflow", "jax", "array_api_strict"]
_MODULES = {"array_api_strict": "array_api_strict"}


def _need(name: str) -> None:
    module = _MODULES.get(name, name)
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")


def make(name: str, a: np.ndarray) -> Any:
    """An array of framework ``name`` holding ``a``, built with the framework's own API.

    NumPy and PyTorch wrap ``a`` itself (so its alignment carries over); the others copy.
    """
    _need(name)
    if name == "numpy":
        return a
    if name == "torch":
        import torch

        bits = {2: np.int16, 1: np.uint8}
        if a.dtype.type.__module__ == "ml_dtypes":
            tdt = getattr(torch, a.dtype.name)
            return torch.from_numpy(a.view(bits[a.dtype.itemsize])).view(tdt)
        return torch.from_numpy(a)
    if name == "tensorflow":
        import tensorflow as tf

        return tf.constant(a)
    if name == "jax":
        import jax.numpy as jnp

        return jnp.array(a)
    import array_api_strict as xps

    return xps.asarray(a, copy=False)


def like(name: str) -> Any:
    """A small array of framework ``name``, to pass as ``like=``."""
    return make(name, np.zeros(1, np.float32))


def native(x: Any) -> np.ndarray:
    """The NumPy view a framework itself hands out for ``x``'s memory (bits for ml_dtypes)."""
    mod = type(x).__module__.split(".")[0]
    if isinstance(x, np.ndarray):
        return x
    if mod == "torch":
        import torch

        t = x.detach()
        if t.dtype in (torch.bfloat16,):
            t = t.view(torch.int16)
        elif t.element_size() == 1 and t.dtype not in (torch.uint8, torch.int8, torch.bool):
            t = t.view(torch.uint8)
        return t.numpy()
    if mod == "array_api_strict":
        return np.from_dlpack(x)
    if mod == "tensorflow" and hasattr(x, "read_value"):
        x = x.value()  # a variable's buffer (np.asarray of the variable copies it)
    return np.asarray(x)


def framework(name: str) -> str:
    return "array_api" if name == "array_api_strict" else name


def target(name: str) -> dict[str, Any]:
    """The keywords that make ``name`` the target of ``convert``."""
    if name == "array_api_strict":
        return {"like": like(name)}
    _need(name)
    return {"to": name}


def aligned(n: int, dtype: Any = np.float32, offset: int = 0) -> np.ndarray:
    """``n`` fresh writable items starting ``offset`` bytes past a 64-byte boundary."""
    dtype = np.dtype(dtype)
    raw = np.empty(n * dtype.itemsize + 2 * ALIGNMENT, np.uint8)
    start = (-raw.ctypes.data) % ALIGNMENT + offset
    out = raw[start : start + n * dtype.itemsize].view(dtype)
    out[...] = (np.arange(n) % 7).astype(dtype)
    return out


def result_dtype(dst: str, dtype: np.dtype) -> np.dtype:
    if dst == "jax":
        import jax

        return np.dtype(jax.dtypes.canonicalize_dtype(dtype))
    return dtype


DTYPES = [np.float32, np.float64, np.int32, np.uint8, np.bool_, np.complex64]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("dst", NAMES)
@pytest.mark.parametrize("src", NAMES)
def test_matrix_values_dtype_and_plan(src: str, dst: str, dtype: Any) -> None:
    data = aligned(24, dtype).reshape(2, 3, 4)
    x = make(src, data.copy())
    plan = interop.explain(x, **target(dst))
    out = interop.convert(x, **target(dst))

    assert interop.framework_of(out) == framework(dst)
    assert plan.target == framework(dst)
    back = interop.to_numpy(out)
    assert back.dtype == result_dtype(dst, result_dtype(src, np.dtype(dtype)))
    np.testing.assert_array_equal(back, data.astype(back.dtype))
    assert np.shares_memory(native(out), native(x)) is plan.zero_copy
    assert plan.device == "cpu"


def _docs_table() -> str:
    text = (Path(__file__).resolve().parents[2] / "docs" / "convert.md").read_text()
    m = re.search(r"<!-- zero-copy-table -->\n(.*?)<!-- /zero-copy-table -->", text, re.S)
    assert m, "docs/convert.md lacks the zero-copy table markers"
    return m.group(1).strip()


def _measure(src: str, dst: str, offset: int) -> bool | None:
    """Whether convert(src array -> dst) aliases, for data ``offset`` bytes past 64-byte alignment.

    ``None`` where the source framework cannot hold unaligned data (it allocates itself).
    """
    readonly = src == "numpy (read-only)"
    name = "numpy" if readonly else src
    if offset and name in ("tensorflow", "jax"):
        return None
    a = aligned(32, np.float32, offset)
    if readonly:
        a.flags.writeable = False
    x = make(name, a)
    if name in ("tensorflow", "jax"):
        assert native(x).ctypes.data % ALIGNMENT == 0  # they allocate aligned memory
    out = interop.convert(x, **target(dst))
    shares = bool(np.shares_memory(native(out), native(x)))
    assert shares is interop.explain(x, **target(dst)).zero_copy
    return shares


def test_docs_zero_copy_table_is_measured() -> None:
    for name in NAMES:
        _need(name)
    rows = ["numpy", "numpy (read-only)", "torch", "tensorflow", "jax", "array_api_strict"]
    lines = [
        "| source \\ target | " + " | ".join(NAMES) + " |",
        "|---" * (len(NAMES) + 1) + "|",
    ]
    for src in rows:
        cells = []
        for dst in NAMES:
            on_aligned, on_unaligned = _measure(src, dst, 0), _measure(src, dst, 16)
            if on_aligned and on_unaligned is not False:
                cells.append("zero-copy")
            elif on_aligned:
                cells.append("zero-copy if 64-byte aligned")
            else:
                assert not on_unaligned
                cells.append("copy")
        lines.append(f"| {src} | " + " | ".join(cells) + " |")
    assert _docs_table() == "\n".join(lines)


@pytest.mark.parametrize("dst", NAMES)
@pytest.mark.parametrize("src", NAMES)
def test_copy_true_shares_nothing(src: str, dst: str) -> None:
    data = aligned(12).reshape(3, 4)
    x = make(src, data.copy())
    out = interop.convert(x, copy=True, **target(dst))
    assert not np.shares_memory(native(out), native(x))
    assert not interop.explain(x, copy=True, **target(dst)).zero_copy
    view = native(out)
    if dst == "numpy":
        assert view.flags.writeable and view.flags.owndata
    if view.flags.writeable:  # (JAX and TensorFlow results cannot be written)
        view[0, 0] = 99
        assert native(x)[0, 0] == 0


@pytest.mark.parametrize("dst", NAMES)
@pytest.mark.parametrize("src", NAMES)
@pytest.mark.parametrize("offset", [0, 16])
def test_copy_false_aliases_or_refuses_before_work(src: str, dst: str, offset: int) -> None:
    x = make(src, aligned(16, np.float32, offset) if src in ("numpy", "torch") else aligned(16))
    plan = interop.explain(x, copy=False, **target(dst))
    if plan.zero_copy:
        out = interop.convert(x, copy=False, **target(dst))
        assert np.shares_memory(native(out), native(x))
    else:
        with pytest.raises(interop.CopyRequiredError, match="copy=False"):
            interop.convert(x, copy=False, **target(dst))


IMMUTABLE = ["tensorflow", "jax", "numpy (read-only)"]
WRITABLE = ["torch", "array_api_strict"]


@pytest.mark.parametrize("dst", WRITABLE)
@pytest.mark.parametrize("src", IMMUTABLE)
def test_writable_result_never_aliases_immutable_memory(src: str, dst: str) -> None:
    a = aligned(8)
    if src == "numpy (read-only)":
        a.flags.writeable = False
        x: Any = a
    else:
        x = make(src, a)
    before = native(x).copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "non-writable" warning from PyTorch
        out = interop.convert(x, **target(dst))
    view = native(out)
    assert not np.shares_memory(view, native(x))
    view[...] = -1  # write through the result ...
    np.testing.assert_array_equal(native(x), before)  # ... and the source is untouched
    plan = interop.explain(x, **target(dst))
    assert not plan.zero_copy and "immutable" in (plan.copy_reason or "")
    with pytest.raises(interop.CopyRequiredError, match="immutable"):
        interop.convert(x, copy=False, **target(dst))


def test_readonly_numpy_to_writable_numpy_copies() -> None:
    import jax.numpy as jnp

    x = jnp.arange(4.0)
    out = interop.convert(x, "numpy")
    assert not out.flags.writeable  # the zero-copy view of immutable memory is read-only
    out2 = interop.convert(x, "numpy", copy=True)
    out2[0] = 5
    assert float(x[0]) == 0.0


@pytest.mark.parametrize("dst", ["jax", "tensorflow"])
def test_immutable_result_may_alias_a_mutable_source(dst: str) -> None:
    # Documented: a zero-copy JAX or TensorFlow result shows later writes to the source.
    import torch

    t = torch.from_numpy(aligned(8))
    out = interop.convert(t, dst)
    assert interop.explain(t, to=dst).zero_copy
    t[0] = 42
    assert native(out)[0] == 42


# -- nonstandard dtypes ----------------------------------------------------------------

ML_DTYPES = [ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2]
ML_NAMES = ["numpy", "torch", "tensorflow", "jax"]


def _every_bit_pattern(dtype: Any) -> np.ndarray:
    dtype = np.dtype(dtype)
    bits = np.arange(2 ** (8 * dtype.itemsize), dtype=f"u{dtype.itemsize}")
    out = aligned(bits.size, dtype)
    out.view(bits.dtype)[...] = bits
    return out


@pytest.mark.parametrize("dtype", ML_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("dst", ML_NAMES)
@pytest.mark.parametrize("src", ML_NAMES)
def test_ml_dtypes_round_trip_bit_exact(src: str, dst: str, dtype: Any) -> None:
    data = _every_bit_pattern(dtype)
    x = make(src, data.copy())
    out = interop.convert(x, **target(dst))
    back = interop.convert(out, like=x) if src != "numpy" else interop.convert(out, "numpy")
    for arr in (out, back):
        a = interop.to_numpy(arr)
        assert a.dtype == np.dtype(dtype)  # the framework's native dtype, not a cast
        np.testing.assert_array_equal(a.view(f"u{a.itemsize}"), data.view(f"u{a.itemsize}"))
    assert np.shares_memory(native(out), native(x)) is interop.explain(x, **target(dst)).zero_copy


def test_ml_dtypes_native_framework_dtypes() -> None:
    import jax.numpy as jnp
    import tensorflow as tf
    import torch

    a = _every_bit_pattern(ml_dtypes.bfloat16)
    assert interop.convert(a, "torch").dtype == torch.bfloat16
    assert interop.convert(a, "tensorflow").dtype == tf.bfloat16
    assert interop.convert(a, "jax").dtype == jnp.bfloat16
    f8 = _every_bit_pattern(ml_dtypes.float8_e4m3fn)
    assert interop.convert(f8, "torch").dtype == torch.float8_e4m3fn


def test_dtype_the_target_cannot_hold_is_refused() -> None:
    _need("array_api_strict")
    with pytest.raises(interop.ConversionError, match="array_api_strict supports, got bfloat16"):
        interop.convert(np.zeros(3, ml_dtypes.bfloat16), like=like("array_api_strict"))
    with pytest.raises(interop.ConversionError, match="PyTorch can hold, got float6_e2m3fn"):
        interop.convert(np.zeros(3, ml_dtypes.float6_e2m3fn), "torch")
    with pytest.raises(interop.ConversionError, match="numeric data"):
        interop.convert(np.array(["a", "b"]), "torch")


def test_jax_without_x64_casts_64_bit_data_and_says_so() -> None:
    import jax

    x = np.arange(4.0)  # float64
    plan = interop.explain(x, to="jax")
    out = interop.convert(x, "jax")
    if jax.config.jax_enable_x64:
        assert out.dtype == np.float64
        return
    assert out.dtype == np.float32 and plan.dtype == np.float32
    assert not plan.zero_copy and "jax_enable_x64" in (plan.copy_reason or "")
    np.testing.assert_array_equal(np.asarray(out), x)
    with pytest.raises(interop.CopyRequiredError, match="jax_enable_x64"):
        interop.convert(x, "jax", copy=False)


# -- layouts and alignment ---------------------------------------------------------------


def test_tensorflow_needs_64_byte_alignment() -> None:
    import tensorflow as tf

    for offset, zero_copy in [(0, True), (16, False), (32, False)]:
        a = aligned(16, np.float32, offset)
        plan = interop.explain(a, to="tensorflow")
        out = interop.convert(a, "tensorflow")
        assert plan.zero_copy is zero_copy
        assert np.shares_memory(np.asarray(out), a) is zero_copy
        assert np.asarray(out).ctypes.data % ALIGNMENT == 0  # TensorFlow gets aligned memory
        if not zero_copy:
            assert "64-byte aligned" in (plan.copy_reason or "")
        assert isinstance(out, tf.Tensor)


LAYOUTS = {
    "c": lambda a: a,
    "fortran": lambda a: np.asfortranarray(a),
    "transposed": lambda a: a.T,
    "negative": lambda a: a[::-1, ::-1],
    "strided": lambda a: a[:, ::2],
    "big_endian": lambda a: a.astype(a.dtype.newbyteorder(">")),
    "broadcast": lambda a: np.broadcast_to(a[:1], a.shape),
    "zero_d": lambda a: a[0, 0, ...].copy(),
    "empty": lambda a: a[:0],
}


@pytest.mark.parametrize("dst", NAMES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_numpy_layouts(layout: str, dst: str) -> None:
    base = aligned(24, np.float32).reshape(4, 6)
    a = LAYOUTS[layout](base)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = interop.explain(a, **target(dst))
        out = interop.convert(a, **target(dst))
    np.testing.assert_array_equal(interop.to_numpy(out), a)
    if a.size:  # (an empty array shares memory with nothing)
        assert np.shares_memory(native(out), a) is plan.zero_copy
    if (layout == "big_endian" and dst != "numpy") or (
        layout == "negative"
        and dst
        in (
            "torch",
            "tensorflow",
            "jax",
        )
    ):
        assert not plan.zero_copy


@pytest.mark.parametrize("dst", ["numpy", "tensorflow", "jax", "array_api_strict"])
@pytest.mark.parametrize("layout", ["transposed", "strided", "offset"])
def test_torch_layouts(layout: str, dst: str) -> None:
    import torch

    t = torch.arange(48, dtype=torch.float32).reshape(6, 8)
    x = {"transposed": t.T, "strided": t[:, ::2], "offset": t.reshape(-1)[4:]}[layout]
    plan = interop.explain(x, **target(dst))
    out = interop.convert(x, **target(dst))
    np.testing.assert_array_equal(interop.to_numpy(out), x.numpy())
    assert np.shares_memory(native(out), x.numpy()) is plan.zero_copy


def _odd_strides(dtype: Any) -> np.ndarray:
    """Three items 3 bytes apart: strides of no whole item (PyTorch and DLPack refuse them)."""
    data = np.arange(3.0).astype(dtype)
    return np.lib.stride_tricks.as_strided(data, shape=(3,), strides=(3,))


@pytest.mark.parametrize("dst", [name for name in NAMES if name != "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_strides_that_are_not_whole_items_copy(
    dst: str, dtype: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = _odd_strides(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = interop.explain(a, **target(dst))
        out = interop.convert(a, **target(dst))
    assert not plan.zero_copy
    if result_dtype(dst, a.dtype) == a.dtype:  # (not a cast, which copies first)
        assert "not whole multiples of the item size" in (plan.copy_reason or "")
    back = interop.to_numpy(out)
    np.testing.assert_array_equal(back, a.astype(back.dtype))
    # copy=False refuses before any work: the target is never asked for an array.
    backend = interop._registry.by_name(framework(dst))
    for hook in ("from_numpy", "from_dlpack"):
        monkeypatch.setattr(backend, hook, lambda *args, **kwargs: pytest.fail("work was done"))
    with pytest.raises(interop.CopyRequiredError, match="copy=False"):
        interop.convert(a, **target(dst), copy=False)


# Layouts of size-1 dimensions, in items: NumPy calls them all C-contiguous; XLA reads
# the order of the dimensions from the sorted strides, size-1 dimensions included.
SIZE_ONE_LAYOUTS = {
    "growing": ((1, 1, 1), (1, 2, 3)),
    "large-middle": ((2, 1, 3), (3, 25, 1)),
    "row-major": ((2, 1, 3), (3, 1, 1)),
    "equal": ((1, 1, 4), (4, 4, 1)),
    "leading-small": ((1, 4), (1, 1)),
}


@pytest.mark.parametrize("source", ["numpy", "torch"])
@pytest.mark.parametrize("layout", SIZE_ONE_LAYOUTS)
def test_jax_plan_predicts_aliasing_of_size_one_dimensions(source: str, layout: str) -> None:
    import torch

    shape, strides = SIZE_ONE_LAYOUTS[layout]
    base = aligned(64)
    if source == "numpy":
        x: Any = np.lib.stride_tricks.as_strided(base, shape, [s * 4 for s in strides])
    else:
        x = torch.from_numpy(base).as_strided(shape, strides)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = interop.explain(x, to="jax")
        out = interop.convert(x, "jax")
    assert np.shares_memory(native(out), native(x)) is plan.zero_copy
    np.testing.assert_array_equal(np.asarray(out), native(x))


@pytest.mark.parametrize("layout", SIZE_ONE_LAYOUTS)
def test_jax_dlpack_problem_predicts_xla(layout: str) -> None:
    import jax

    shape, strides = SIZE_ONE_LAYOUTS[layout]
    a = np.lib.stride_tricks.as_strided(aligned(64), shape, [s * 4 for s in strides])
    problem = interop._registry.by_name("jax").dlpack_problem(a.dtype, a, (1, 0))
    out = jax.dlpack.from_dlpack(a)
    assert np.shares_memory(np.asarray(out), a) is (problem is None)


def test_negative_strides_from_array_api_to_torch_copy() -> None:
    # torch.from_dlpack aborts the process on negative strides; convert must copy.
    _need("array_api_strict")
    import array_api_strict as xps

    x = xps.flip(xps.asarray(np.arange(6.0)))
    assert any(s < 0 for s in np.from_dlpack(x).strides)
    plan = interop.explain(x, to="torch")
    out = interop.convert(x, "torch")
    assert not plan.zero_copy and "negative strides" in (plan.copy_reason or "")
    np.testing.assert_array_equal(out.numpy(), np.arange(6.0)[::-1])


# -- what a result carries ----------------------------------------------------------------


@pytest.mark.parametrize("dst", NAMES)
def test_gradients_are_not_carried(dst: str) -> None:
    import torch

    t = torch.arange(4.0, requires_grad=True)
    out = interop.convert(t, **target(dst))
    np.testing.assert_array_equal(interop.to_numpy(out), np.arange(4.0))
    if dst == "torch":
        assert not out.requires_grad and out.is_leaf and out.grad_fn is None
    assert t.requires_grad  # the source is left alone


def test_same_framework_is_kept_moved_or_copied() -> None:
    import jax.numpy as jnp
    import tensorflow as tf
    import torch

    for x in (torch.arange(3.0), jnp.arange(3.0), tf.range(3.0)):
        name = interop.framework_of(x)
        assert interop.convert(x, name) is x
        assert interop.explain(x, to=name).steps == ("keep",)
        copied = interop.convert(x, name, copy=True)
        assert not np.shares_memory(native(copied), native(x))
        np.testing.assert_array_equal(native(copied), native(x))
    t = torch.arange(3.0, requires_grad=True)
    out = interop.convert(t, "torch")
    assert not out.requires_grad and np.shares_memory(out.detach().numpy(), t.detach().numpy())


def test_like_takes_framework_and_device() -> None:
    import jax
    import jax.numpy as jnp
    import tensorflow as tf
    import torch

    x = np.arange(3.0)
    assert interop.convert(x, like=torch.zeros(1)).device == torch.device("cpu")
    assert interop.convert(x, like=jnp.zeros(1)).devices() == {jax.devices("cpu")[0]}
    assert interop.convert(x, like=tf.zeros(1)).device.endswith("CPU:0")
    assert interop.convert(torch.arange(2), like=np.zeros(1)).dtype == np.int64


@pytest.mark.parametrize(
    "dst,device",
    [
        ("torch", "cpu"),
        ("torch", "CPU"),
        ("jax", "cpu:0"),
        ("tensorflow", "cpu"),
        ("tensorflow", "/CPU:0"),
        ("numpy", "cpu"),
    ],
)
def test_device_strings(dst: str, device: str) -> None:
    out = interop.convert(np.arange(3.0), dst, device=device)
    assert interop.framework_of(out) == dst


def test_native_device_objects() -> None:
    import jax
    import tensorflow as tf
    import torch

    assert interop.convert([1.0], "torch", device=torch.device("cpu")).device.type == "cpu"
    cpu = jax.devices("cpu")[0]
    assert interop.convert([1.0], "jax", device=cpu).devices() == {cpu}
    spec = tf.DeviceSpec(device_type="CPU", device_index=0)
    assert interop.convert([1.0], "tensorflow", device=spec).device.endswith("CPU:0")


def test_unavailable_devices_are_refused_or_used() -> None:
    if not has_cuda():
        with pytest.raises(ValueError, match="CUDA device"):
            interop.convert(np.zeros(2), "torch", device="cuda")
    else:
        assert interop.convert(np.zeros(2), "torch", device="cuda").is_cuda
    with pytest.raises(ValueError, match="JAX"):
        interop.convert(np.zeros(2), "jax", device="tpu:3")
    with pytest.raises(ValueError, match="TensorFlow"):
        interop.convert(np.zeros(2), "tensorflow", device="gpu:7")
    with pytest.raises(ValueError, match="NumPy arrays live in host memory"):
        interop.convert(np.zeros(2), "numpy", device="cuda")
    with pytest.raises(ValueError, match="expected a device such as"):
        interop.convert(np.zeros(2), "torch", device="cuda:x")


def test_argument_errors() -> None:
    a = np.zeros(2)
    with pytest.raises(TypeError, match=r"exactly one of `to`.*neither"):
        interop.convert(a)
    with pytest.raises(TypeError, match=r"exactly one of `to`.*both"):
        interop.convert(a, "numpy", like=a)
    with pytest.raises(TypeError, match="framework name"):
        interop.convert(a, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="expected a framework name"):
        interop.convert(a, "pandas")
    with pytest.raises(TypeError, match=r"hint: convert.*like="):
        interop.convert(a, "array_api")
    with pytest.raises(TypeError, match="only reads them"):
        interop.convert(a, "dlpack")
    with pytest.raises(TypeError, match="only `copy`"):
        interop.explain(a, to="torch", upcast=True)
    for like in ([1, 2], 3.0, memoryview(b"ab")):
        with pytest.raises(TypeError, match=r"expected like= to be an array of a framework"):
            interop.convert(a, like=like)
    with pytest.raises(TypeError, match=r"expected to= or like= with device='cpu'.*explain\(x,"):
        interop.explain(a, device="cpu")
    with pytest.raises(interop.UnsupportedTypeError):
        interop.convert(object(), "torch")


@pytest.mark.parametrize("dst", ["torch", "jax", "tensorflow"])
def test_non_array_sources(dst: str) -> None:
    import tensorflow as tf

    for x, expected in [
        ([[1.0, 2.0], [3.0, 4.0]], np.array([[1.0, 2.0], [3.0, 4.0]])),
        (np.float32(2.5), np.array(2.5, np.float32)),
        (tf.Variable([1.0, 2.0]), np.array([1.0, 2.0], np.float32)),
    ]:
        out = interop.convert(x, dst)
        np.testing.assert_array_equal(interop.to_numpy(out), expected)
        assert interop.framework_of(out) == dst
        if isinstance(x, tf.Variable) and dst == "tensorflow":
            # The variable's value now, zero-copy: a tensor, not the variable.
            assert not isinstance(out, tf.Variable)
            assert interop.explain(x, to=dst).zero_copy
            continue
        assert not interop.explain(x, to=dst).zero_copy


@pytest.mark.parametrize("dst", ["torch", "tensorflow", "jax", "numpy"])
@pytest.mark.parametrize("copy", [None, True])
def test_variable_snapshot_does_not_follow_assign(dst: str, copy: bool | None) -> None:
    import tensorflow as tf

    v = tf.Variable([1.0, 2.0])
    out = interop.convert(v, dst, copy=copy)
    plan = interop.explain(v, to=dst, copy=copy)
    v.assign([5.0, 6.0])
    v.assign_add([1.0, 1.0])
    np.testing.assert_array_equal(interop.to_numpy(out), [1.0, 2.0])
    assert not isinstance(out, tf.Variable)
    if dst == "tensorflow":
        assert plan.zero_copy is (copy is None) and plan.readonly


def test_options_block_sets_copy() -> None:
    a = aligned(4)
    with interop.options(copy=True):
        out = interop.convert(a, "torch")
    assert not np.shares_memory(out.numpy(), a)
    with interop.options(copy=False), pytest.raises(interop.CopyRequiredError):
        interop.convert(aligned(4, offset=16), "tensorflow")


def test_explain_describes_the_route() -> None:
    import jax.numpy as jnp

    plan = interop.explain(jnp.arange(4.0), to="torch")
    assert plan.framework == "jax" and plan.target == "torch"
    assert not plan.zero_copy and plan.steps == ("numpy_view", "copy")
    assert "jax on cpu -> torch: copy" in str(plan)
    plan = interop.explain(jnp.arange(4.0), to="tensorflow")
    assert plan.zero_copy and plan.steps == ("dlpack",)


def test_convert_does_not_touch_the_source() -> None:
    import torch

    t = torch.arange(4.0)
    before = t.clone()
    for dst in ("numpy", "jax", "tensorflow"):
        interop.convert(t, dst, copy=True)
    assert torch.equal(t, before) and t.is_leaf


# -- accelerators ---------------------------------------------------------------------------


@pytest.mark.gpu
def test_gpu_numpy_to_torch_cuda() -> None:
    a = aligned(8)
    plan = interop.explain(a, to="torch", device="cuda")
    out = interop.convert(a, "torch", device="cuda")
    assert out.is_cuda and plan.transfer and not plan.zero_copy
    np.testing.assert_array_equal(out.cpu().numpy(), a)
    with pytest.raises(interop.CopyRequiredError):
        interop.convert(a, "torch", device="cuda", copy=False)


@pytest.mark.gpu
def test_gpu_same_device_is_zero_copy_and_like_keeps_the_device() -> None:
    import torch

    t = torch.arange(8.0, device="cuda")
    assert interop.convert(t, like=torch.zeros(1, device="cuda")) is t
    assert interop.explain(t, to="torch", device="cuda").zero_copy
    moved = interop.convert(t, "torch", device="cpu")
    assert moved.device.type == "cpu"
    np.testing.assert_array_equal(moved.numpy(), np.arange(8.0))


@pytest.mark.gpu
@pytest.mark.parametrize("dst", ["numpy", "jax", "tensorflow"])
def test_gpu_torch_cuda_to_host_targets(dst: str) -> None:
    import torch

    t = torch.arange(8.0, device="cuda")
    plan = interop.explain(t, to=dst, device="cpu")
    out = interop.convert(t, dst, device="cpu")
    assert plan.transfer and not plan.zero_copy
    np.testing.assert_array_equal(interop.to_numpy(out), np.arange(8.0, dtype=np.float32))


@pytest.mark.gpu
def test_gpu_jax_to_torch_cuda_copies() -> None:
    import jax
    import jax.numpy as jnp

    try:
        gpu = jax.devices("gpu")[0]
    except RuntimeError:
        pytest.skip("JAX has no GPU backend here")
    x = jax.device_put(jnp.arange(8.0), gpu)
    plan = interop.explain(x, to="torch", device="cuda")
    out = interop.convert(x, "torch", device="cuda")
    assert out.is_cuda and not plan.zero_copy  # JAX memory is immutable; torch's is not
    out[0] = 42
    assert float(x[0]) == 0.0


def test_jax_without_x64_refuses_integers_that_would_wrap() -> None:
    import jax
    import torch

    if jax.config.jax_enable_x64:
        assert interop.convert(np.array([2**40]), "jax")[0] == 2**40
        return
    for x in (np.array([2**40, 1]), torch.tensor([-(2**40)])):
        with pytest.raises(interop.ConversionError, match=r"fit int32.*jax_enable_x64"):
            interop.convert(x, "jax")
    np.testing.assert_array_equal(
        np.asarray(interop.convert(np.array([2**31 - 1]), "jax")), [2**31 - 1]
    )


# -- a property over layouts, dtypes and targets ------------------------------------------

PROPERTY_DTYPES = [np.float32, np.int16, np.uint8, np.complex64, np.float64, ml_dtypes.bfloat16]


@st.composite
def strided_arrays(draw: st.DrawFn) -> tuple[str, np.ndarray]:
    dtype = np.dtype(draw(st.sampled_from(PROPERTY_DTYPES)))
    source = draw(st.sampled_from(["numpy", "torch"]))
    ndim = draw(st.integers(0, 3))
    shape = [draw(st.integers(0, 4)) for _ in range(ndim)]
    steps = [draw(st.sampled_from([1, 2, -1] if source == "numpy" else [1, 2])) for _ in shape]
    base_shape = [max(1, n * abs(s)) for n, s in zip(shape, steps, strict=True)]
    offset = draw(st.sampled_from([0, 16, 32, 64])) // dtype.itemsize * dtype.itemsize
    size = int(np.prod(base_shape))
    base = aligned(size, dtype, offset).reshape(base_shape)
    base.view(f"u{dtype.itemsize}")[...] = np.arange(size).reshape(base_shape) % 251
    a = base[(*(slice(None, None, s) for s in steps), ...)]
    a = a[(*(slice(0, n) for n in shape), ...)]
    if ndim > 1 and draw(st.booleans()):
        a = a.T
    return source, a


@pytest.fixture(scope="module")
def imported() -> None:
    """Import every framework before Hypothesis runs (importing one changes the recursion limit)."""
    for name in NAMES:
        like(name)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strided_arrays(), st.sampled_from(NAMES))
def test_property_values_and_plan_agree(
    imported: None, case: tuple[str, np.ndarray], dst: str
) -> None:
    source, a = case
    ml = a.dtype.type.__module__ == "ml_dtypes"
    if dst == "array_api_strict" and ml:
        return  # refused, tested above
    x = make(source, a)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = interop.explain(x, **target(dst))
        out = interop.convert(x, **target(dst))
    back = interop.to_numpy(out)
    expected = a.astype(result_dtype(dst, a.dtype))
    assert back.shape == a.shape and back.dtype == expected.dtype
    assert np.array_equal(back.view(f"u{back.itemsize}"), expected.view(f"u{back.itemsize}"))
    if a.size and not (ml and a.ndim == 0 and "tensorflow" in (source, dst)):
        # (TensorFlow has no NumPy view of a 0-d ml_dtypes tensor to compare with.)
        assert np.shares_memory(native(out), native(x)) is plan.zero_copy


@st.composite
def any_strides(draw: st.DrawFn) -> np.ndarray:
    """Arrays over one buffer with any strides in bytes: negative, zero, overlapping, odd."""
    dtype = np.dtype(draw(st.sampled_from([np.int32, np.int16, np.uint8, np.float32])))
    ndim = draw(st.integers(0, 3))
    shape = tuple(draw(st.integers(0, 3)) for _ in range(ndim))
    strides = tuple(draw(st.integers(-24, 24)) for _ in range(ndim))
    raw = aligned(512, np.uint8)
    raw[...] = np.arange(raw.size) % 251
    start = 256 - draw(st.sampled_from([0, 64, dtype.itemsize, 1]))
    return np.ndarray(shape, dtype, buffer=raw, offset=start, strides=strides)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_strides(), st.sampled_from([name for name in NAMES if name != "numpy"]))
def test_property_any_strides_copy_or_alias_as_planned(
    imported: None, a: np.ndarray, dst: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = interop.explain(a, **target(dst))
        out = interop.convert(a, **target(dst))
        if plan.zero_copy:
            interop.convert(a, **target(dst), copy=False)
        else:
            with pytest.raises(interop.CopyRequiredError):
                interop.convert(a, **target(dst), copy=False)
    back = interop.to_numpy(out)
    bits = f"u{a.itemsize}"
    assert back.shape == a.shape and np.array_equal(back.view(bits), a.view(bits))
    if a.size:
        assert np.shares_memory(native(out), a) is plan.zero_copy


def test_tf_zero_d_bfloat16_source() -> None:
    import tensorflow as tf

    t = tf.constant(np.array(1.5, ml_dtypes.bfloat16))
    out = interop.convert(t, "torch")
    assert float(out) == 1.5


# -- route 4b: data its source copies into a NumPy array, which the target adopts --------


class Built:
    """Data a third-party source hands to NumPy as an array it makes on every read.

    ``kept``: it makes that array once and keeps it, read-only, for every later reader
    (as JAX and TensorFlow keep their host copy of device data).
    """

    def __init__(self, values: np.ndarray, kept: bool = False) -> None:
        self.values = values
        self.kept = kept
        self.made: list[np.ndarray] = []


class BuiltBackend(interop.Backend):
    name = "built"

    def __init__(self) -> None:
        super().__init__()
        self.steps["build"] = self._build

    def matches(self, cls: type) -> bool:
        return cls is Built

    def plan(self, x: Any, options: interop.Options, /) -> interop.Plan:
        from interop import _plan

        return _plan.finish(
            "built",
            "cpu",
            ["build"],
            source_dtype=x.values.dtype,
            options=options,
            copy_reason="the source builds a new array",
            readonly=x.kept,
            kept=x.kept,
        )

    def _build(self, x: Built, plan: interop.Plan) -> np.ndarray:
        if x.kept and x.made:
            return x.made[0]
        out = x.values.copy()
        if x.kept:
            out.setflags(write=False)
        x.made.append(out)
        return out


@pytest.fixture
def built() -> Any:
    interop.register_backend(BuiltBackend())
    try:
        yield Built
    finally:
        interop._registry.unregister_backend("built")


def test_a_new_array_of_the_source_is_adopted_without_a_second_copy(built: Any) -> None:
    torch = pytest.importorskip("torch")
    x = built(np.arange(6.0).reshape(2, 3))
    plan = interop.explain(x, to="torch")
    assert plan.steps == ("to_numpy", "from_numpy") and not plan.zero_copy
    assert plan.copy_reason == "the source builds a new array" and not plan.transfer
    assert plan.framework == "built" and plan.target == "torch"
    t = interop.convert(x, "torch")
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float64
    # The array the source made is private: the tensor aliases it, one copy in all.
    assert np.shares_memory(t.numpy(), x.made[-1])
    np.testing.assert_array_equal(t.numpy(), x.values)


def test_a_new_array_in_another_byte_order_is_copied_once_more(built: Any) -> None:
    torch = pytest.importorskip("torch")
    x = built(np.arange(4, dtype=">i4"))
    assert interop.explain(x, to="torch").dtype == np.dtype("<i4")
    t = interop.convert(x, "torch")
    assert t.dtype == torch.int32 and t.tolist() == [0, 1, 2, 3]
    assert not np.shares_memory(t.numpy(), x.made[-1])


def test_an_array_the_source_keeps_is_copied_for_a_writable_target(built: Any) -> None:
    pytest.importorskip("torch")
    x = built(np.arange(4.0), kept=True)
    plan = interop.explain(x)
    assert plan.readonly and not plan.zero_copy and plan.steps == ("build",)
    t = interop.convert(x, "torch")
    assert not np.shares_memory(t.numpy(), x.made[0])
    t += 1  # the tensor is the caller's: the kept array stays as it was
    np.testing.assert_array_equal(x.made[0], np.arange(4.0))
    out = interop.to_numpy(x)
    assert out is x.made[0] and not out.flags.writeable
    copied = interop.to_numpy(x, copy=True)
    assert copied.flags.writeable and not np.shares_memory(copied, x.made[0])


class Taker(interop.Backend):
    """A target that takes any NumPy array as it is, or a copy where told to copy.

    Its arrays are ``(tag, array)`` pairs.
    """

    name = "taker"
    tag = "taken"

    def matches(self, cls: type) -> bool:
        return False

    def default_device(self) -> Any:
        return "cpu"

    def dlpack_device(self, device: Any, /) -> tuple[int, int]:
        return (1, 0)

    def target_dtype(self, dtype: np.dtype, device: Any, /) -> np.dtype:
        return dtype

    def numpy_problem(self, a: np.ndarray, /) -> str | None:
        return None

    def from_numpy(self, a: np.ndarray, /, *, device: Any, copy: bool) -> Any:
        return (self.tag, a.copy() if copy else a)


class ImmutableTaker(Taker):
    name = "immutable_taker"
    mutable = False


@pytest.mark.parametrize(("target", "aliases"), [(Taker, False), (ImmutableTaker, True)])
def test_only_an_immutable_target_aliases_an_array_the_source_keeps(
    built: Any, target: type, aliases: bool
) -> None:
    interop.register_backend(target())
    try:
        kept = built(np.arange(4.0), kept=True)
        _, a = interop.convert(kept, target.name)
        assert (a is kept.made[0]) == aliases
        np.testing.assert_array_equal(a, np.arange(4.0))
        fresh = built(np.arange(4.0))
        _, b = interop.convert(fresh, target.name)
        assert b is fresh.made[-1]  # a private array: aliased by either
    finally:
        interop._registry.unregister_backend(target.name)


class BrokenTaker(Taker):
    """A target whose from_numpy fails with pyarrow's error, or makes None."""

    name = "broken_taker"
    fails = True

    def from_numpy(self, a: np.ndarray, /, *, device: Any, copy: bool) -> Any:
        if self.fails:
            import pyarrow as pa

            raise pa.ArrowInvalid("no room")
        return None


@pytest.mark.parametrize("fails", [True, False])
def test_a_third_party_targets_failure_names_it_not_the_source(fails: bool) -> None:
    # An Arrow source translates pyarrow's errors as its own: not the target's.
    pa = pytest.importorskip("pyarrow")
    target = BrokenTaker()
    target.fails = fails
    interop.register_backend(target)
    try:
        for x in (pa.array([1.0, 2.0]), np.arange(2.0), [1.0, 2.0]):
            with pytest.raises(interop.ConversionError) as info:
                interop.convert(x, target.name)
            message = str(info.value)
            assert "expected backend 'broken_taker'" in message
            assert "from_numpy() to make one of its arrays" in message
            assert ("ArrowInvalid('no room')" if fails else "got None") in message
            assert "the error is in that backend, not in the data" in message
    finally:
        interop._registry.unregister_backend(target.name)


class MisjudgingTaker(Taker):
    """A target whose target_dtype has a bug: integers are a KeyError."""

    name = "misjudging_taker"

    def target_dtype(self, dtype: np.dtype, device: Any, /) -> np.dtype:
        return {"f": dtype}[dtype.kind]


def test_a_third_party_targets_failing_decision_names_it_not_the_source() -> None:
    # The source's backend translated it as its own: a list's "nested sequences of
    # equal lengths", a memoryview's protocol, NumPy's bare KeyError.
    target = MisjudgingTaker()
    interop.register_backend(target)
    try:
        assert interop.convert(np.arange(2.0), target.name)[0] == "taken"
        # (explain plans a list's dtype only once it is built: convert alone asks.)
        calls = [
            (x, call)
            for x in (np.arange(2), [1, 2], memoryview(bytearray(2)))
            for call in (interop.convert, lambda x, to: interop.explain(x, to=to))
            if not (isinstance(x, list) and call is not interop.convert)
        ]
        for x, call in calls:
            with pytest.raises(interop.ConversionError) as info:
                call(x, target.name)
            message = str(info.value)
            assert "expected backend 'misjudging_taker'" in message
            assert "target_dtype() to decide the conversion, but it raised KeyError" in message
    finally:
        interop._registry.unregister_backend(target.name)


def _policy_sources() -> dict[str, tuple[Callable[[], Any], str]]:
    """Sources the default sparse or ragged policy refuses, and that keyword."""
    import jax.numpy as jnp
    import tensorflow as tf
    import torch
    from jax.experimental import sparse as jsparse

    return {
        "tf-ragged": (lambda: tf.ragged.constant([[1, 2], [3]]), "ragged"),
        "tf-sparse": (lambda: tf.sparse.from_dense([[0.0, 1.0]]), "sparse"),
        "torch-sparse": (lambda: torch.eye(2).to_sparse(), "sparse"),
        "jax-bcoo": (lambda: jsparse.BCOO.fromdense(jnp.eye(2)), "sparse"),
    }


def _other(x: Any) -> str:
    """A framework other than ``x``'s own (which would keep a sparse array as it is)."""
    return "jax" if interop.framework_of(x) == "torch" else "torch"


_CONVERT_ENTRIES: dict[str, Callable[[Any], Any]] = {
    "convert-numpy": lambda x: interop.convert(x, "numpy"),
    "convert-other": lambda x: interop.convert(x, _other(x)),
    "explain-to": lambda x: interop.explain(x, to=_other(x)),
    "convert_tree-numpy": lambda x: interop.convert_tree({"a": x}, "numpy"),
    "convert_tree-other": lambda x: interop.convert_tree([x], _other(x)),
    "iter_convert-numpy": lambda x: list(interop.iter_convert([{"a": x}], "numpy")),
    "iter_convert-other": lambda x: list(interop.iter_convert([(x,)], _other(x))),
}


@pytest.mark.parametrize("entry", sorted(_CONVERT_ENTRIES))
@pytest.mark.parametrize("source", sorted(_policy_sources()))
def test_policy_hints_of_convert_say_how(source: str, entry: str) -> None:
    # convert and its kin take no sparse=/ragged=: the hint says what does.
    make_x, keyword = _policy_sources()[source]
    x = make_x()
    for _ in range(2):  # a fresh message each time, told once
        with pytest.raises(interop.ConversionError) as info:
            _CONVERT_ENTRIES[entry](x)
        message = str(info.value)
        assert message.count(f"no {keyword}=:") == 1
        assert f"hint: pass {keyword}=" in message
        assert f"convert, convert_tree and iter_convert take no {keyword}=" in message
        assert info.value.keyword is None


@pytest.mark.parametrize("source", sorted(_policy_sources()))
def test_policy_hints_of_to_numpy_and_numpy_function(source: str) -> None:
    make_x, keyword = _policy_sources()[source]
    x = make_x()
    for call in (
        lambda: interop.to_numpy(x),
        lambda: interop.to_numpy_tree({"a": x}),
        lambda: list(interop.iter_numpy([{"a": x}])),
    ):
        with pytest.raises(interop.ConversionError, match=f"hint: pass {keyword}=") as info:
            call()
        assert f"no {keyword}=" not in str(info.value)  # these take the keyword
    with pytest.raises(interop.ConversionError) as info:
        interop.numpy_function(lambda a: a)(x)
    assert str(info.value).startswith("<lambda>(): argument 'a': ")
    assert f"numpy_function takes no {keyword}=" in str(info.value)
    with interop.options(**{keyword: "dense" if keyword == "sparse" else "pad"}):
        interop.numpy_function(lambda a: a)(x)  # what the hint says works


# -- NumPy masked arrays: no other framework has masks -------------------------------------

_TARGETS = ["torch", "tensorflow", "jax", "array_api_strict"]


def _convert_to(x: Any, dst: str, **kwargs: Any) -> Any:
    if dst == "array_api_strict":
        return interop.convert(x, like=like(dst), **kwargs)
    return interop.convert(x, dst, **kwargs)


def _masked() -> np.ma.MaskedArray:
    return np.ma.masked_equal(np.array([1.0, -9999.0, 3.0]), -9999.0)


class _MaskedHolder:
    """An object whose ``__array__`` returns a masked array (a netCDF variable does)."""

    def __init__(self, ma: np.ma.MaskedArray) -> None:
        self.ma = ma

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ma.MaskedArray:
        return self.ma


class _LegacyMaskedHolder(_MaskedHolder):
    """The same, with an ``__array__`` written for NumPy 1 (no ``copy=``)."""

    def __array__(self) -> np.ma.MaskedArray:  # type: ignore[override]
        return self.ma


_MASKED_SOURCES: dict[str, Callable[[np.ma.MaskedArray], Any]] = {
    "masked-array": lambda ma: ma,
    "__array__": _MaskedHolder,
    "__array__-numpy-1": _LegacyMaskedHolder,
}


@pytest.mark.parametrize("source", list(_MASKED_SOURCES))
@pytest.mark.parametrize("dst", _TARGETS)
def test_a_masked_entry_is_never_converted_into_data(dst: str, source: str) -> None:
    """The value under a mask (a -9999 sentinel here) would become data: refused.

    Also where an object's ``__array__`` returns the masked array: ``np.asarray``
    would keep only the data beneath the mask.
    """
    _need(dst)
    ma = _masked()
    x = _MASKED_SOURCES[source](ma)
    calls = {
        "convert": lambda: _convert_to(x, dst),
        "convert-copy": lambda: _convert_to(x, dst, copy=True),
        "convert_tree": lambda: interop.convert_tree({"x": x}, like=like(dst)),
        "explain": lambda: interop.explain(x, like=like(dst)),
        # (numpy_function passes an object that is no framework's array as it is.)
        "numpy_function": lambda: interop.numpy_function(lambda a, b: interop.to_numpy(b))(
            like(dst), x
        ),
    }
    for name, call in calls.items():
        with pytest.raises(interop.ConversionError) as info:
            call()
        message = str(info.value)
        assert "got `numpy.ma.MaskedArray` with 1 of 3 entries masked" in message, name
        assert message.endswith(
            "hint: fill them first with x.filled(value), keep only the others with "
            "x.compressed(), or keep the mask with interop.to_numpy(x)"
        ), name
    # To NumPy, the mask is kept.
    assert interop.convert(x, "numpy") is ma
    assert interop.to_numpy(x) is ma and interop.to_numpy_tree([x])[0] is ma
    out = interop.convert(x, "numpy", copy=True)
    assert type(out) is np.ma.MaskedArray and out.mask.tolist() == [False, True, False]
    # What the hint says works.
    filled = _convert_to(ma.filled(np.nan), dst)
    assert np.isnan(interop.to_numpy(filled)[1])
    assert interop.to_numpy(_convert_to(ma.compressed(), dst)).tolist() == [1.0, 3.0]


def _unmasked(mask: str) -> tuple[np.ndarray, np.ma.MaskedArray]:
    data = _memory.aligned_copy(np.array([1.0, 2.0, 3.0], dtype=np.float32))
    ma = np.ma.array(data) if mask == "nomask" else np.ma.array(data, mask=[False] * 3)
    return data, ma


@pytest.mark.parametrize("mask", ["nomask", "all-false"])
@pytest.mark.parametrize("dst", _TARGETS)
def test_a_masked_array_with_no_entry_masked_converts_its_data(dst: str, mask: str) -> None:
    _need(dst)
    data, ma = _unmasked(mask)
    copied = _convert_to(ma, dst, copy=True)
    assert interop.to_numpy(copied).tolist() == [1.0, 2.0, 3.0]
    assert not np.shares_memory(native(copied), data)
    if dst == "jax":
        return  # (zero-copy: see the next test)
    plan = interop.explain(ma, like=like(dst))
    out = _convert_to(ma, dst)
    assert interop.to_numpy(out).tolist() == [1.0, 2.0, 3.0]
    assert plan.zero_copy and np.shares_memory(native(out), data)


def test_a_masked_array_with_no_entry_masked_aliases_into_jax() -> None:
    _need("jax")
    data, ma = _unmasked("nomask")
    assert interop.explain(ma, to="jax").zero_copy
    out = interop.convert(ma, "jax")
    assert np.shares_memory(native(out), data)


def test_a_dtype_hint_holds_for_numpy_function_which_takes_dtype() -> None:
    pa = pytest.importorskip("pyarrow")
    column = pa.array([1.0, None])
    with pytest.raises(interop.ConversionError) as info:
        interop.numpy_function(lambda a: a)(column)
    assert "takes no dtype=" not in str(info.value) and "dtype=object to get None" in str(
        info.value
    )
    assert interop.numpy_function(dtype=object)(lambda a: a)(column).tolist() == [1.0, None]
    with pytest.raises(
        interop.ConversionError, match=r"take no dtype=: pass it to interop\.to_numpy"
    ):
        interop.convert(column, "torch")


@pytest.mark.parametrize("dtype", [np.longdouble, np.clongdouble])
@pytest.mark.parametrize("dst", ["torch", "tensorflow", "jax"])
def test_the_hint_for_a_dtype_a_framework_lacks_can_be_followed(dst: str, dtype: type) -> None:
    # upcast=True changes only the ml_dtypes formats: NumPy's longdouble needs dtype=.
    _need(dst)
    x = np.ones(2, dtype=dtype)
    if x.dtype.itemsize <= (16 if x.dtype.kind == "c" else 8):
        pytest.skip("longdouble is double on this platform")
    with pytest.raises(interop.ConversionError, match=r"hint: .*interop\.to_numpy\(") as info:
        interop.convert(x, dst)
    hint = str(info.value).partition("hint: ")[2]
    assert "upcast" not in hint
    code = hint.partition("with ")[2]
    followed = eval(code, {"interop": interop, "np": np, "x": x})
    assert interop.to_numpy(interop.convert(followed, dst)).tolist() == [1, 1]


def test_the_hint_for_complex32_into_jax_can_be_followed() -> None:
    # JAX holds no complex32; its hint names upcast=True (complex64), not a real dtype.
    _need("jax")
    from interop import _dtypes

    x = np.zeros(2, dtype=_dtypes.complex32())
    with pytest.raises(interop.ConversionError, match=r"hint: .*upcast=True") as info:
        interop.convert(x, "jax")
    code = str(info.value).partition("hint: ")[2].partition("with ")[2]
    followed = eval(code, {"interop": interop, "np": np, "x": x})
    assert interop.to_numpy(interop.convert(followed, "jax")).dtype == np.complex64


def test_iter_convert_copy_false_gives_the_hint_convert_gives() -> None:
    # Its copy=False is the call's own, not a block's: copy=None lifts it there too.
    _need("jax")
    _need("torch")
    import jax.numpy as jnp

    x = jnp.ones(2)
    hints = []
    for call in (
        lambda: interop.convert(x, "torch", copy=False),
        lambda: list(interop.iter_convert([x], "torch", copy=False)),
    ):
        with pytest.raises(interop.CopyRequiredError) as info:
            call()
        hints.append(str(info.value).partition("hint: ")[2])
    assert hints[0] == hints[1] == "use copy=None to allow a copy when needed"


def test_writable_buffers_are_aliased_and_read_only_ones_copied() -> None:
    # The buffer protocol says whether its memory is read-only: a bytearray, an
    # array.array or a writable memoryview is shared with torch (writes show), as its
    # to_numpy view is; a read-only memoryview is copied, and copy=False refuses it.
    import array

    torch = pytest.importorskip("torch")
    for buffer in (bytearray(8), array.array("f", [0.0, 0.0]), memoryview(bytearray(8))):
        out = interop.convert(buffer, "torch", copy=False)
        assert interop.explain(buffer, to="torch").zero_copy
        out.view(torch.uint8)[0] = 7
        assert bytes(memoryview(buffer).cast("B"))[0] == 7
    frozen = memoryview(bytearray(8)).toreadonly()
    assert not interop.explain(frozen, to="torch").zero_copy
    out = interop.convert(frozen, "torch")
    out[0] = 7
    assert bytes(frozen)[0] == 0
    with pytest.raises(interop.CopyRequiredError, match="immutable"):
        interop.convert(frozen, "torch", copy=False)
