"""The host-memory helpers: data addresses, alignment and layout problems of any array."""

from __future__ import annotations

from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from interop import _memory
from interop._memory import ALIGNMENT, aligned_copy, is_aligned, layout_problem, misalignment


def _address(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


def _views(dtype: np.dtype) -> list[np.ndarray]:
    """Views of one buffer at every item offset over two alignments, in several layouts."""
    raw = np.zeros(4 * ALIGNMENT + 64, dtype=np.uint8)
    out = []
    for offset in range(0, 2 * ALIGNMENT, dtype.itemsize):
        flat = raw[offset : offset + 8 * dtype.itemsize].view(dtype)
        out += [flat, flat[::-1], flat[::2], flat.reshape(2, 4).T]
    return out


DTYPES = [np.uint8, "<f4", ">i4", np.complex128, ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn]


@pytest.mark.parametrize("dtype", [np.dtype(d) for d in DTYPES], ids=str)
@pytest.mark.parametrize("writeable", [True, False], ids=["writable", "read-only"])
def test_misalignment_is_the_offset_of_the_data(dtype: np.dtype, writeable: bool) -> None:
    # Writable buffers of NumPy's own numbers take one path, the rest (read-only
    # memory, ml_dtypes) another: both give the address NumPy reports.
    for view in _views(dtype):
        view = view.view()
        view.flags.writeable = writeable
        assert misalignment(view) == _address(view) % ALIGNMENT
        assert is_aligned(view) == (_address(view) % ALIGNMENT == 0)
        assert misalignment(view, 16) == _address(view) % 16


def test_read_only_framework_memory() -> None:
    # An array whose base is another object's read-only buffer, as frameworks hand out.
    source = aligned_copy(np.arange(32, dtype=np.float32))
    view = np.frombuffer(memoryview(source.tobytes()), dtype=np.float32)
    assert not view.flags.writeable
    assert misalignment(view) == _address(view) % ALIGNMENT
    assert misalignment(view[1:]) == (_address(view) + 4) % ALIGNMENT


def test_empty_arrays_are_aligned() -> None:
    empty = np.zeros((3, 0), dtype=np.float64)
    empty.flags.writeable = False
    assert misalignment(empty) == 0 and is_aligned(empty[:, 0:0])


def test_layout_problem_of_read_only_memory_names_the_offset() -> None:
    a = aligned_copy(np.arange(40, dtype=np.float32))
    shifted = a[1:33].view()
    shifted.flags.writeable = False
    problem = layout_problem(shifted, contiguous=True, aligned=True)
    assert problem is not None and "starts 4 bytes past a boundary" in problem
    whole = a[:32].view()
    whole.flags.writeable = False
    assert layout_problem(whole, contiguous=True, aligned=True) is None


def test_a_subclass_cannot_lie_about_its_address() -> None:
    class Liar(np.ndarray):
        @property
        def __array_struct__(self) -> int:  # type: ignore[override]
            return 12345

    base = np.arange(9, dtype=np.float64)
    lying = base[1:].view(Liar)
    lying.flags.writeable = False
    assert misalignment(lying) == (_address(base) + 8) % ALIGNMENT


@pytest.mark.parametrize("dtype", [np.dtype(d) for d in DTYPES], ids=str)
def test_both_address_readers_agree(dtype: np.dtype, tmp_path: Path) -> None:
    # The data pointer read from the array's C struct (CPython) and from NumPy's
    # interface capsule (anywhere): same address for views, subclasses and maps.
    class Sub(np.ndarray):
        pass

    mapped = np.memmap(tmp_path / "m.bin", dtype=np.uint8, mode="w+", shape=(256,))
    arrays = [*_views(dtype), mapped[3:], np.arange(6.0).reshape(2, 3).view(Sub)[:, 1:]]
    for a in arrays:
        assert _memory._address_from_interface(a) == _address(a)
        if _memory._field_readable():
            assert _memory._address_from_field(a) == _address(a)
    readers = (_memory._address_from_interface, _memory._address_from_field)
    assert _memory._data_address is readers[_memory._field_readable()]
