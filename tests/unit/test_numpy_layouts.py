"""NumPy inputs in every layout come back unchanged (``copy=None``) or exact (``copy=True``)."""

from __future__ import annotations

from collections.abc import Callable

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
