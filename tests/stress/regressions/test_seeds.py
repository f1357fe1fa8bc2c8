"""Every failure the fuzzer or the hostile-input probes ever found, kept as a test.

Each test is the smallest input that failed, with what went wrong before the fix.
The fuzz targets in ``tests/stress/test_fuzz.py`` also carry these inputs as ``@example``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import interop


def test_dtype_float64_is_not_dropped() -> None:
    # np.dtype("float64") == None is True in NumPy, so dtype=np.float64 compared equal
    # to "no dtype" and the cast was silently skipped.
    import torch

    assert interop.to_numpy(torch.ones(2), dtype=np.float64).dtype == np.float64
    assert interop.to_numpy(np.ones(2, np.float32), dtype=np.float64).dtype == np.float64
    with interop.options(dtype=np.float64):
        assert interop.to_numpy(np.ones(2, np.float32)).dtype == np.float64


def test_zero_dimensional_variable_gives_an_array() -> None:
    # tf.Variable(False).numpy() is a NumPy scalar, which came back as such.
    import tensorflow as tf

    out = interop.to_numpy(tf.Variable(False))
    assert isinstance(out, np.ndarray) and out.shape == () and not out


def test_array_api_items_in_a_list_are_converted_first() -> None:
    # NumPy read a 0-d array-api-strict array inside a list as a Python int and
    # raised OverflowError for dtype=int8, where a NumPy or torch item casts.
    import array_api_strict as xp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 128 wraps to -128, as in NumPy
        out = interop.to_numpy([xp.asarray(np.float32(128.0))], dtype=np.int8)
        ref = np.asarray([np.array(128.0, np.float32)], dtype=np.int8)
    np.testing.assert_array_equal(out, ref)


def test_interface_reaching_past_its_buffer_is_refused() -> None:
    # NumPy trusts __array_interface__ geometry: an 8-byte buffer declared as
    # 10**15 float64 gave an "array" of 8 PB over it.
    buf = bytearray(16)

    class Declared:
        @property
        def __array_interface__(self) -> dict[str, Any]:
            return {"typestr": "<f8", "data": buf, "shape": (2,), "offset": 8, "version": 3}

    with pytest.raises(interop.ConversionError, match="reach bytes 8 to 24"):
        interop.to_numpy(Declared())


def test_legacy_array_raises_no_deprecation_warning() -> None:
    # np.asarray(x, copy=False) on an __array__ without `copy` warns in NumPy 2.
    class Legacy:
        def __array__(self, dtype: Any = None) -> Any:
            return np.arange(3)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert interop.to_numpy(Legacy()).tolist() == [0, 1, 2]


def test_deleted_jax_array_is_a_conversion_error() -> None:
    # The JAX fast path let jax's RuntimeError("Array has been deleted") through.
    import jax.numpy as jnp

    x = jnp.arange(3)
    interop.to_numpy(x)  # the fast path now knows this sharing
    x.delete()
    with pytest.raises(interop.ConversionError, match="deleted"):
        interop.to_numpy(x)


def test_none_in_a_list_is_not_an_object_array() -> None:
    # [1.0, None] came back as an object array holding None.
    with pytest.raises(interop.ConversionError, match="NoneType"):
        interop.to_numpy([1.0, None])


def test_negative_dlpack_device_type_is_refused() -> None:
    # (-1, 0) was taken for an accelerator and "transferred".
    class Producer:
        def __dlpack__(self, **kwargs: Any) -> Any:
            return np.ones(2).__dlpack__(**kwargs)

        def __dlpack_device__(self) -> tuple[int, int]:
            return (-1, 0)

    with pytest.raises(interop.ConversionError, match="device type"):
        interop.to_numpy(Producer())


def test_array_protocol_errors_are_conversion_errors() -> None:
    # A RuntimeError raised by a third-party __array__ escaped as is.
    class Broken:
        def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
            raise RuntimeError("broken")

    with pytest.raises(interop.ConversionError) as info:
        interop.to_numpy(Broken())
    assert isinstance(info.value.__cause__, RuntimeError)


def test_upcast_applies_to_lists_of_nonstandard_tensors() -> None:
    # A list of bfloat16 tensors came back as bfloat16 under upcast=True.
    import torch

    out = interop.to_numpy([torch.zeros(1, dtype=torch.bfloat16)], upcast=True)
    assert out.dtype == np.float32
    assert "upcast_nonstandard" in interop.explain([torch.zeros(1)], upcast=True).steps


@pytest.mark.parametrize("x", [(None, None), [1, None], (None, [])], ids=repr)
@pytest.mark.parametrize("copy", [None, True])
def test_convert_to_numpy_rejects_python_values_like_to_numpy(x: Any, copy: Any) -> None:
    # Found by the fuzzer once convert joined OPERATIONS: convert(x, "numpy") returned
    # an object array, or raised NumPy's bare ValueError, for sequences that
    # to_numpy refuses with ConversionError.
    with pytest.raises(interop.ConversionError):
        interop.to_numpy(x)
    with pytest.raises(interop.ConversionError):
        interop.convert(x, "numpy", copy=copy)
