"""The one rule for casting on an accelerator: :func:`interop._dtypes.cast_on_device`.

A device cast is taken only where it provably gives the host cast's bits. The rule
is checked here on the CPU: the table itself, CPU PyTorch showing why the casts
left out of it differ from NumPy's (its CUDA kernels share the conversion code),
and the plans of every backend that has one on this machine asking the rule.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from interop import _dtypes, _options

torch = pytest.importorskip("torch")

INTS = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]
FLOATS = ["float16", "float32", "float64"]


@pytest.mark.parametrize("source", INTS)
@pytest.mark.parametrize("target", INTS)
def test_integer_casts_are_exact_on_the_device(source: str, target: str) -> None:
    assert _dtypes.exact_on_device(np.dtype(source), np.dtype(target))


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("float64", "float32"),
        ("float64", "float16"),
        ("float32", "float16"),
        ("float32", "bfloat16"),
        ("float32", "float8_e4m3fn"),
        ("float32", "float8_e8m0fnu"),
        ("float32", "float4_e2m1fn"),
        ("int32", "int4"),
        ("float16", "float32"),
        ("int32", "float32"),
        ("int64", "float64"),
        ("float32", "int32"),
        ("complex128", "complex64"),
    ],
)
def test_casts_left_to_the_host(source: str, target: str) -> None:
    """Float narrowing, ml_dtypes targets, inexact int->float, float->int: host casts.

    The ml_dtypes targets include those CuPy's ``astype`` and ``tf.as_dtype`` refuse
    with their own errors (float8_e8m0fnu, float4): the old rule cast them on the
    device because they are narrower.
    """

    def dtype(name: str) -> np.dtype:
        return np.dtype(getattr(ml_dtypes, name, name))

    assert not _dtypes.cast_on_device(dtype(source), dtype(target))
    if dtype(source).itemsize > dtype(target).itemsize:
        assert not _dtypes.exact_on_device(dtype(source), dtype(target))


def test_only_narrowing_casts_go_to_the_device() -> None:
    """Widening moves more bytes over the bus: the cast waits for the host."""
    assert _dtypes.cast_on_device(np.dtype("int64"), np.dtype("int8"))
    assert _dtypes.cast_on_device(np.dtype("uint32"), np.dtype("bool"))
    assert not _dtypes.cast_on_device(np.dtype("int8"), np.dtype("int64"))
    assert not _dtypes.cast_on_device(np.dtype("int16"), np.dtype("float32"))
    assert not _dtypes.cast_on_device(np.dtype("int64"), None)


def test_torch_rounds_float64_to_float16_twice() -> None:
    """Why float64 -> float16 is a host cast: PyTorch goes through float32."""
    value = 1 + 2**-11 + 2**-30
    host = np.array(value).astype(np.float16)
    device = torch.tensor(value, dtype=torch.float64).to(torch.float16)
    assert float(host) != float(device)  # 1.001 against 1.0
    assert not _dtypes.cast_on_device(np.dtype("float64"), np.dtype("float16"))


def test_torch_saturates_float8() -> None:
    """Why float -> float8 is a host cast: PyTorch saturates where ml_dtypes gives NaN."""
    values = np.array([1000.0, np.inf], dtype=np.float32)
    host = values.astype(ml_dtypes.float8_e4m3fn).astype(np.float32)
    device = torch.from_numpy(values).to(torch.float8_e4m3fn).float().numpy()
    assert np.isnan(host).all()
    assert (device == 448).all()


@pytest.mark.parametrize("source", INTS)
@pytest.mark.parametrize("target", [*INTS, *FLOATS])
def test_the_table_agrees_with_torch_bit_for_bit(source: str, target: str) -> None:
    """Every cast the table calls exact gives NumPy's bits in PyTorch's kernels."""
    src, dst = np.dtype(source), np.dtype(target)
    if not _dtypes.exact_on_device(src, dst):
        return
    rng = np.random.default_rng(0)
    if src.kind == "b":
        a = rng.integers(0, 2, 257).astype(bool)
    else:
        info = np.iinfo(src)
        a = rng.integers(info.min, info.max, 257, dtype=src, endpoint=True)
        a[:4] = [info.min, info.max, 0, 1]
    tsrc = torch.from_numpy(a)
    device = tsrc.to(getattr(torch, target)).numpy()
    np.testing.assert_array_equal(device.view(np.uint8), a.astype(dst).view(np.uint8))


@pytest.mark.parametrize(
    ("source", "target", "on_device"),
    [
        ("float64", "float16", False),
        ("float32", "float16", False),
        ("float64", "float32", False),
        ("int64", "int16", True),
        ("int32", "uint8", True),
    ],
)
def test_torch_plans_ask_the_rule(source: str, target: str, on_device: bool) -> None:
    """A CUDA tensor's plan, made from a CPU tensor with the accelerator steps forced.

    The old rule cast float64 -> float16 and float32 -> float16 on the device,
    because they are narrower.
    """
    import interop

    t = torch.zeros(3, dtype=getattr(torch, source))
    backend = interop._registry.get(t)
    opts = _options.resolve(None, np.dtype(target), None, None, None, None)
    plan = backend._plan_values(t, opts, [], None, "cuda:0", True, on_device=True)
    assert ("cast_on_device" in plan.steps) is on_device
    assert plan.dtype == np.dtype(target)
    if not on_device:
        assert plan.steps[-1] == "cast"  # on the host, after the copy
