"""``interop.testing``: the catalogue of constructors that the tests, benchmarks and doctor share.

``Framework.make`` must hold a copy of its source, as its docstring says: tests
that reuse or write to their source after ``make`` (and every aliasing claim
checked against ``native``) would otherwise test the wrong memory.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest

from interop import testing
from tests.conftest import load_framework

CATALOGUE = [*testing.FRAMEWORKS, "arrow"]


def _sources() -> dict[str, np.ndarray[Any, Any]]:
    """Arrays of a few dtypes and layouts, with bit patterns that a cast would change."""
    bits = np.array([0x7FC1, 0xFFC3, 0x0001, 0x3F80, 0xC2F7, 0x8000], dtype=np.uint16)
    return {
        "float32": np.array([1.5, -0.0, np.nan, 3e38, -7.25, 1e-45], dtype=np.float32),
        "float32-2d": np.arange(12, dtype=np.float32).reshape(3, 4),
        "int32": np.array([-(2**31), 2**31 - 1, 0, 7], dtype=np.int32),
        "bfloat16": bits.view(ml_dtypes.bfloat16),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)),
    }


@pytest.mark.parametrize("name", CATALOGUE)
@pytest.mark.parametrize("source", list(_sources()))
def test_make_holds_a_copy_of_its_source(name: str, source: str) -> None:
    fw = load_framework(name)
    a = _sources()[source]
    # What make() gives for these values from a source no one writes to (JAX with
    # 64-bit types off narrows float64, as its policy is).
    reference = np.ascontiguousarray(fw.native(fw.make(a.copy())))
    x = fw.make(a)
    assert not np.shares_memory(fw.native(x), a)
    # A write to the source right after make() is never seen (JAX copied it
    # asynchronously; pyarrow wrapped a 1-d array's memory).
    a[...] = np.array(3).astype(a.dtype)
    after = np.ascontiguousarray(fw.native(x))
    assert after.dtype == reference.dtype and after.shape == reference.shape
    assert after.tobytes() == reference.tobytes()


@pytest.mark.slow  # (a race, tried 300 times per framework)
@pytest.mark.parametrize("name", CATALOGUE)
def test_make_is_independent_of_a_source_written_at_once_many_times(name: str) -> None:
    # The race of an asynchronous copy: JAX saw the write in 2 to 34 of 300 runs.
    fw = load_framework(name)
    for _ in range(300):
        a = np.arange(1 << 20, dtype=np.float32)
        x = fw.make(a)
        a[...] = -1.0
        view = fw.native(x)
        assert (float(view[0]), float(view[-1])) == (0.0, float((1 << 20) - 1))


def test_torch_make_refuses_a_structured_dtype_it_holds_no_tensor_of() -> None:
    # Two int16 fields have complex32's width: they were made into complex32 values.
    fw = load_framework("torch")
    fields = np.zeros(2, dtype=[("count", "i2"), ("flags", "i2")])
    with pytest.raises(ValueError, match="structured dtype"):
        fw.make(fields)
