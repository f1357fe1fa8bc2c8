"""How PyTorch's batched device-to-host copy is chosen, checked on CPU tensors.

The choice (:meth:`Source.copy_dtype`) is a function of the tensor alone, the same
for a CPU and a CUDA tensor, and the copy itself (:meth:`Source.host_copy`) is the
one PyTorch call the device path makes, with ``pin_memory`` and ``non_blocking``
off. A plain ``torch.empty(t.shape, dtype=t.dtype).copy_(t)`` (the earlier batched
copy) fails for sparse and nested tensors and for shell dtypes on every device, as
the tests show on CPU; the device runs of the same trees are in
``test_gpu_transfers.py``.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

import interop
from interop import _registry

torch = pytest.importorskip("torch")

# PyTorch announces some of the tests' inputs with a UserWarning when the first one
# is built (compressed sparse layouts, strided nested tensors, quantized tensors,
# complex32); the library builds none of them.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Sparse (CSR|CSC|BSR|BSC) tensor support:UserWarning"),
    pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors:UserWarning"),
    pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning"),
    pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental:UserWarning"),
]


@pytest.fixture
def source() -> Any:
    return _registry.by_name("torch")


def _sparse_and_nested() -> dict[str, Any]:
    dense = torch.tensor([[0.0, 1.5, 0.0], [2.0, 0.0, 3.0]])
    return {
        "coo": dense.to_sparse(),
        "csr": dense.to_sparse_csr(),
        "csc": dense.to_sparse_csc(),
        "bsr": dense.to_sparse_bsr((1, 1)),
        "nested": torch.nested.nested_tensor([torch.ones(2), torch.ones(3)]),
        "jagged": torch.nested.nested_tensor([torch.ones(2), torch.ones(3)], layout=torch.jagged),
    }


@pytest.mark.parametrize("kind", ["coo", "csr", "csc", "bsr", "nested", "jagged"])
def test_sparse_and_nested_tensors_convert_through_their_plans(source: Any, kind: str) -> None:
    t = _sparse_and_nested()[kind]
    # What a batched copy into a new dense tensor does with them: an error.
    with pytest.raises(RuntimeError):
        torch.empty(t.shape, dtype=t.dtype).copy_(t)
    # So no batched copy is started: the leaf converts at once, by its plan.
    assert source.copy_dtype(t) is None


# Shell dtypes (no copy kernel at all) and the bit formats, with a same-width integer.
_BIT_DTYPES = [
    name
    for name in (
        "uint1",
        "uint2",
        "uint3",
        "uint4",
        "uint5",
        "uint6",
        "uint7",
        "int1",
        "int2",
        "int3",
        "int4",
        "int5",
        "int6",
        "int7",
        "float8_e4m3fn",
        "float8_e5m2",
        "float8_e4m3fnuz",
        "float8_e5m2fnuz",
        "float8_e8m0fnu",
        "float4_e2m1fn_x2",
        "bfloat16",
        "complex32",
        "uint16",
        "uint32",
        "uint64",
    )
    if hasattr(torch, name)
]


def _random_bits(dtype: Any, shape: tuple[int, ...]) -> Any:
    """A tensor of ``dtype`` holding random bytes (every bit pattern a value)."""
    rng = np.random.default_rng(0)
    size = dtype.itemsize
    raw = rng.integers(0, 256, size=(*shape, size), dtype=np.uint8)
    return torch.from_numpy(raw).view(dtype).reshape(shape)


@pytest.mark.parametrize("name", _BIT_DTYPES)
def test_bit_dtypes_are_copied_as_integers_of_their_width(source: Any, name: str) -> None:
    dtype = getattr(torch, name)
    t = _random_bits(dtype, (6, 8))[:, ::2]  # not contiguous
    carrier = source.copy_dtype(t)
    assert carrier.itemsize == dtype.itemsize
    assert not carrier.is_floating_point and not carrier.is_complex
    host = source.host_copy(t.view(carrier), pinned=False).view(dtype)
    assert host.dtype is dtype and host.shape == t.shape and host.is_contiguous()
    np.testing.assert_array_equal(host.view(carrier).numpy(), t.view(carrier).numpy())
    # The copy converts exactly as the tensor itself does.
    try:
        expected = interop.to_numpy(t)
    except interop.ConversionError:  # no NumPy counterpart: the copy changes nothing
        with pytest.raises(interop.ConversionError):
            interop.to_numpy(host)
        return
    got = interop.to_numpy(host)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got.view(np.uint8), np.ascontiguousarray(expected).view(np.uint8))


@pytest.mark.parametrize("name", [n for n in _BIT_DTYPES if re.fullmatch(r"u?int[1-7]", n)])
def test_shell_dtypes_have_no_copy_kernel(name: str) -> None:
    t = _random_bits(getattr(torch, name), (4,))
    with pytest.raises(NotImplementedError):
        torch.empty(t.shape, dtype=t.dtype).copy_(t)


# Written out here rather than read from the backend's own table, so that a dtype
# dropped from (or added to) that table fails this test.
@pytest.mark.parametrize(
    "name",
    [
        "bool",
        "uint8",
        "int8",
        "int16",
        "int32",
        "int64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    ],
)
def test_standard_dtypes_are_copied_as_they_are(source: Any, name: str) -> None:
    dtype = getattr(torch, name)
    t = torch.zeros((3, 2), dtype=dtype).t()
    assert source.copy_dtype(t) is dtype
    host = source.host_copy(t, pinned=False)
    assert host.dtype is dtype and host.is_contiguous()
    np.testing.assert_array_equal(host.numpy(), t.numpy())


def test_quantized_tensors_take_no_batched_copy(source: Any) -> None:
    q = torch.quantize_per_tensor(torch.ones(3), 0.1, 0, torch.qint8)
    assert source.copy_dtype(q) is None


def test_start_copy_leaves_cpu_tensors_alone(source: Any) -> None:
    assert source.start_copy(torch.ones(3), 1 << 20) is None
