"""``float_dtype=``: casts floating-point data only, in every entry point and options block."""

from __future__ import annotations

import warnings
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import interop
from tests.conftest import Framework


def _tree(fw: Framework) -> dict[str, Any]:
    return {
        "weights": fw.make(np.ones((2, 2), dtype=np.float64)),
        "half": fw.make(np.ones(2, dtype=ml_dtypes.bfloat16)),
        "labels": fw.make(np.arange(3, dtype=np.int64)),
        "mask": fw.make(np.array([True, False])),
        "phase": fw.make(np.array([1 + 1j], dtype=np.complex64)),
    }


def _expected(tree: dict[str, Any]) -> dict[str, Any]:
    """float32 for the floating-point leaves; the others keep their own dtype (JAX
    without x64 holds int32 labels)."""
    own = {key: interop.to_numpy(x).dtype for key, x in tree.items()}
    return {**own, "weights": np.dtype(np.float32), "half": np.dtype(np.float32)}


def test_only_floating_point_leaves_are_cast(fw: Framework) -> None:
    tree = _tree(fw)
    out = interop.to_numpy_tree(tree, float_dtype=np.float32)
    for key, dtype in _expected(tree).items():
        assert out[key].dtype == dtype, key
    assert out["labels"].dtype.kind == "i" and out["phase"].dtype.kind == "c"
    np.testing.assert_array_equal(out["labels"], [0, 1, 2])


def test_entry_points_agree(fw: Framework) -> None:
    tree = _tree(fw)
    with interop.options(float_dtype=np.float32):
        in_block = interop.to_numpy_tree(tree)
        batch = next(iter(interop.iter_numpy([tree])))
    for key, dtype in _expected(tree).items():
        assert interop.to_numpy(tree[key], float_dtype=np.float32).dtype == dtype
        assert interop.explain(tree[key], float_dtype=np.float32).dtype == dtype
        assert in_block[key].dtype == dtype and batch[key].dtype == dtype


def test_python_values_are_cast_once_built() -> None:
    assert interop.to_numpy([1.5, 2.0], float_dtype=np.float16).dtype == np.float16
    assert interop.to_numpy([1, 2], float_dtype=np.float16).dtype == np.int64
    assert interop.to_numpy(True, float_dtype=np.float16).dtype == np.bool_


def test_an_equal_dtype_stays_zero_copy() -> None:
    a = np.ones(3, dtype=np.float32)
    assert interop.to_numpy(a, float_dtype=np.float32) is a
    assert interop.to_numpy(np.arange(3), float_dtype=np.float32, copy=False).dtype == np.int64


def test_float_dtype_and_dtype_are_exclusive_and_checked() -> None:
    with pytest.raises(TypeError, match="expected one of dtype and float_dtype"):
        interop.to_numpy(np.ones(2), dtype=np.float32, float_dtype=np.float16)
    with pytest.raises(TypeError, match="expected float_dtype to be a floating-point dtype"):
        interop.to_numpy(np.ones(2), float_dtype=np.int8)
    # A call's dtype replaces the block's float_dtype.
    with interop.options(float_dtype=np.float16):
        assert interop.to_numpy(np.ones(2), dtype=np.float64).dtype == np.float64
        assert interop.to_numpy(np.ones(2)).dtype == np.float16


ML_FLOATS = ["bfloat16", "float4_e2m1fn", "float6_e2m3fn", "float8_e4m3fn", "float8_e8m0fnu"]
ML_INTEGERS = ["int2", "int4", "uint4"]


@pytest.mark.parametrize("name", ML_FLOATS + ML_INTEGERS + ["bcomplex32"])
def test_ml_dtypes_floats_are_floats_and_their_integers_are_not(name: str) -> None:
    # ml_dtypes' types all have kind "V": their names tell floats from integers.
    dtype = np.dtype(getattr(ml_dtypes, name))
    a = np.ones(2).astype(dtype)  # (1 is in every range, 0 is not: float8_e8m0fnu)
    out = interop.to_numpy(a, float_dtype=np.float32)
    if name in ML_FLOATS:
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, [1.0, 1.0])
    else:
        assert out is a
    # Only a float is a float_dtype to cast to.
    if name in ML_FLOATS:
        assert interop.to_numpy(np.ones(2), float_dtype=dtype).dtype == dtype
    else:
        with pytest.raises(TypeError, match=f"floating-point dtype, got {name}"):
            interop.to_numpy(np.ones(2), float_dtype=dtype)


def test_float_dtype_reaches_sparse_and_ragged_values() -> None:
    # The values of a scipy result and the rows of an object array of a ragged or
    # nested tensor take float_dtype, as dtype= reaches them; integers stay.
    torch = pytest.importorskip("torch")
    pytest.importorskip("scipy")
    half = torch.eye(2, dtype=torch.float16).to_sparse()
    assert interop.to_numpy(half, sparse="scipy", float_dtype=np.float32).dtype == np.float32
    ints = torch.eye(2, dtype=torch.int32).to_sparse()
    assert interop.to_numpy(ints, sparse="scipy", float_dtype=np.float32).dtype == np.int32
    with pytest.raises(interop.ConversionError) as info:
        interop.to_numpy(half, sparse="scipy", upcast=True)
    # upcast leaves float16 (a standard dtype) alone: the hint does not offer it.
    assert "upcast" not in str(info.value) and "float_dtype=np.float32" in str(info.value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (torch.nested is a prototype)
        nested = torch.nested.nested_tensor([torch.ones(2), torch.ones(3)])
    rows = interop.to_numpy(nested, ragged="object", float_dtype=np.float16)
    assert [row.dtype for row in rows] == [np.float16, np.float16]
    tf = pytest.importorskip("tensorflow")
    ragged = tf.ragged.constant([[1.0, 2.0], [3.0]])
    rows = interop.to_numpy(ragged, ragged="object", float_dtype=np.float16)
    assert [row.dtype for row in rows] == [np.float16, np.float16]
    counts = interop.to_numpy(
        tf.ragged.constant([[1], [2, 3]]), ragged="object", float_dtype=np.float16
    )
    assert [row.dtype for row in counts] == [np.int32, np.int32]
