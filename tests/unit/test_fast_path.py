"""The per-type fast path of ``to_numpy`` gives exactly what the planned path gives."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest

import interop
from interop import _registry
from tests.conftest import Framework

DATA = np.arange(12, dtype=np.float32).reshape(3, 4)


def test_fast_path_agrees_with_the_plan(fw: Framework) -> None:
    x = fw.make(DATA)
    for _ in range(2):  # the first call fills the per-type cache, the second uses it
        out = interop.to_numpy(x)
        plan = interop.explain(x)
        assert np.shares_memory(out, fw.native(x)) is plan.zero_copy is True
        assert out.flags.writeable is (not plan.readonly)
        np.testing.assert_array_equal(out, DATA)


def test_options_block_bypasses_the_fast_path(fw: Framework) -> None:
    x = fw.make(DATA)
    interop.to_numpy(x)
    with interop.options(copy=True):
        out = interop.to_numpy(x)
    assert not np.shares_memory(out, fw.native(x))
    assert out.flags.writeable and out.flags.owndata


def test_tensorflow_view_is_read_only_and_leaves_tensorflow_arrays_alone() -> None:
    tf = pytest.importorskip("tensorflow")
    t = tf.constant(DATA)
    out = interop.to_numpy(t)
    out = interop.to_numpy(t)
    assert not out.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        out[0, 0] = 1
    # What TensorFlow itself hands out is untouched: a fresh, writable copy.
    own = t.numpy()
    assert own.flags.writeable and not np.shares_memory(own, out)


@pytest.mark.parametrize("kind", ["grad", "bfloat16", "conj", "parameter"])
def test_torch_tensors_the_fast_path_hands_over(kind: str) -> None:
    torch = pytest.importorskip("torch")
    base = torch.from_numpy(DATA.copy())
    if kind == "grad":
        t = base.clone().requires_grad_(True)
        expected: np.ndarray[Any, Any] = DATA
    elif kind == "bfloat16":
        t = base.to(torch.bfloat16)
        expected = DATA
    elif kind == "conj":
        t = torch.complex(base, base).conj()
        expected = DATA - 1j * DATA
    else:
        t = torch.nn.Parameter(base.clone())
        expected = DATA
    for _ in range(2):
        out = interop.to_numpy(t)
        np.testing.assert_array_equal(out.astype(expected.dtype), expected)
        assert interop.explain(t).zero_copy is (kind != "conj")
    if kind in ("grad", "parameter"):
        assert t.grad_fn is None and t.requires_grad  # the graph is untouched
        assert np.shares_memory(out, t.detach().numpy())


def test_deleted_jax_array_raises_conversion_error() -> None:
    jnp = pytest.importorskip("jax.numpy")
    x = jnp.asarray(DATA)
    interop.to_numpy(x)
    x.delete()
    with pytest.raises(interop.ConversionError, match="deleted"):
        interop.to_numpy(x)


def test_keywords_behave_as_keyword_only_parameters() -> None:
    a = np.arange(3)
    with pytest.raises(TypeError, match=r"to_numpy\(\) got an unexpected keyword argument 'cpy'"):
        interop.to_numpy(a, cpy=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        interop.to_numpy(a, True)  # type: ignore[misc]
    params = inspect.signature(interop.to_numpy).parameters
    assert list(params) == [
        "x",
        "copy",
        "dtype",
        "allow_transfer",
        "upcast",
        "sparse",
        "ragged",
        "float_dtype",
    ]
    assert all(
        p.kind is p.KEYWORD_ONLY and p.default is None for n, p in params.items() if n != "x"
    )
    assert interop.to_numpy(a, copy=True) is not a
    # Keywords forwarded as None mean "not given": still the very same array.
    assert interop.to_numpy(a, copy=None, dtype=None, upcast=None) is a


class Custom:
    """An array-like that a generic backend converts until a backend claims it."""

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray[Any, Any]:
        return np.arange(3)


class CustomBackend(interop.Backend):
    name = "custom-test"

    def matches(self, cls: type) -> bool:
        return issubclass(cls, Custom)

    def host_view_for(self, cls: type, /) -> Any:
        return lambda x: np.array([42])


def test_registering_a_backend_resets_the_fast_paths() -> None:
    np.testing.assert_array_equal(interop.to_numpy(Custom()), [0, 1, 2])
    assert Custom in _registry._views
    interop.register_backend(CustomBackend())
    try:
        np.testing.assert_array_equal(interop.to_numpy(Custom()), [42])
    finally:
        _registry.unregister_backend("custom-test")
    np.testing.assert_array_equal(interop.to_numpy(Custom()), [0, 1, 2])


@pytest.mark.parametrize("dtype", ["int4", "uint4", "float4_e2m1fn", "int2"])
def test_jax_sub_byte_dtypes_leave_the_fast_path_for_a_writable_copy(dtype: str) -> None:
    jnp = pytest.importorskip("jax.numpy")
    x = jnp.array([1, 0, 1], dtype=getattr(jnp, dtype))
    plan = interop.explain(x)
    assert plan.steps == ("unpack",) and not plan.zero_copy
    # The first call fills the per-type cache (and JAX's own cached unpacking, which
    # np.asarray would hand out, read-only and shared); the second uses both.
    outs = [interop.to_numpy(x), interop.to_numpy(x), interop.convert(x, "numpy")]
    for out in outs:
        assert out.flags.writeable and not np.shares_memory(out, np.asarray(x))
        out[0] = 0
    assert np.asarray(x)[0] == 1
    assert not np.shares_memory(outs[0], outs[1])
