"""JAX special cases: tracers, deleted and donated arrays, PRNG keys, sparse arrays, placement."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
import ml_dtypes  # noqa: E402

import interop  # noqa: E402
from interop import ConversionError, CopyRequiredError, _registry  # noqa: E402
from interop.backends.jax import placement  # noqa: E402
from tests.support.entry_points import assert_raises_everywhere, assert_sealed, results  # noqa: E402

# -- tracers ----------------------------------------------------------------------------


def _error_inside(transform: Callable[[Callable[..., Any]], Callable[..., Any]], *args: Any) -> Any:
    """Run ``interop.to_numpy`` on the traced argument inside ``transform`` and return the error."""
    seen: list[BaseException] = []

    def f(x: Any, *rest: Any) -> Any:
        try:
            interop.to_numpy(x)
        except Exception as exc:
            seen.append(exc)
        return x.sum() if not rest else (x, x)

    transform(f)(*args)
    assert len(seen) == 1
    return seen[0]


def _scan(f: Callable[..., Any]) -> Callable[..., Any]:
    return lambda xs: jax.lax.scan(lambda c, x: f(c, x), jnp.zeros(()), xs)


@pytest.mark.parametrize(
    ("name", "transform"),
    [("jit", jax.jit), ("vmap", jax.vmap), ("grad", jax.grad), ("scan", _scan)],
)
def test_tracer_is_a_conversion_error(name: str, transform: Any) -> None:
    exc = _error_inside(transform, jnp.arange(3.0))
    assert isinstance(exc, ConversionError)
    message = str(exc)
    assert "tracer" in message and "jax.pure_callback" in message and "jax.debug.print" in message


def test_pure_callback_is_the_way_out() -> None:
    # What the hint suggests works: the callback receives concrete values.
    def host(x: Any) -> Any:
        return interop.to_numpy(x) * 2

    f = jax.jit(lambda x: jax.pure_callback(host, jax.ShapeDtypeStruct(x.shape, x.dtype), x))
    np.testing.assert_array_equal(f(jnp.arange(3.0)), [0.0, 2.0, 4.0])


# -- deleted and donated ----------------------------------------------------------------


def _assert_gone(x: Any) -> None:
    for call in (interop.to_numpy, interop.explain):
        with pytest.raises(ConversionError, match=r"deleted or donated.*hint"):
            call(x)
    # The host view answers None (it never raises), and the plan then refuses.
    assert _registry.host_view(x) is None
    assert_raises_everywhere(lambda: x, ConversionError, "deleted or donated", "hint:")


def test_deleted_array() -> None:
    interop.to_numpy(jnp.zeros(3))  # a CPU array first, so the fast path is primed
    x = jnp.arange(3.0)
    x.delete()
    _assert_gone(x)


def test_donated_array() -> None:
    x = jnp.arange(4.0)
    interop.to_numpy(x)
    y = jax.jit(lambda a: a * 2, donate_argnums=0)(x)
    # The CPU client honours donation (checked here, since it may not on every backend).
    assert x.is_deleted()
    _assert_gone(x)
    np.testing.assert_array_equal(interop.to_numpy(y), [0.0, 2.0, 4.0, 6.0])


# -- packed sub-byte dtypes -------------------------------------------------------------


@pytest.mark.parametrize("name", ["int4", "uint4", "int2", "uint2", "float4_e2m1fn"])
def test_packed_sub_byte_arrays_unpack_into_new_writable_arrays_at_every_entry_point(
    name: str,
) -> None:
    interop.to_numpy(jnp.zeros(3))  # a CPU array first, so the host view is primed
    dtype = np.dtype(getattr(ml_dtypes, name))
    values = np.array([0, 1, 1, 0, 1, 1, 0]).astype(dtype)
    plan = interop.explain(jnp.asarray(values))
    assert plan.steps == ("unpack",) and not plan.zero_copy and "packed" in str(plan.copy_reason)
    seen: list[np.ndarray] = []
    for where, x, out in results(lambda: jnp.asarray(values)):
        assert out.dtype == dtype and out.flags.writeable and out.flags.owndata, where
        np.testing.assert_array_equal(out.astype(np.float32), values.astype(np.float32))
        # Never JAX's own unpacking, cached inside the array, nor an earlier result.
        assert not np.shares_memory(out, np.asarray(x)), where
        assert not any(np.shares_memory(out, other) for other in seen), where
        seen.append(out)
        out[...] = values[0]  # the caller's own: the array and later results keep theirs
        np.testing.assert_array_equal(np.asarray(x).astype(np.float32), values.astype(np.float32))


def test_single_device_views_are_read_only_for_good_at_every_entry_point() -> None:
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    for where, x, out in results(lambda: jnp.asarray(values)):
        assert np.shares_memory(out, np.asarray(x)), where
        assert_sealed(out)


def test_device_read_steps_read_the_host_copy_jax_keeps() -> None:
    # The to_host step of a plan for data on a GPU, run on a CPU array: what it does
    # does not depend on the device. Without a cast it reads the host copy JAX keeps
    # with the array (np.asarray's: no second copy), read-only for good; after a cast
    # on the device it reads a temporary's copy, which only the result holds.
    step = _registry.by_name("jax").steps["to_host"]
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    x = jnp.asarray(values)
    moved = "the data is on gpu:0 and must be copied to host memory"
    kept = interop.Plan("jax", "gpu:0", False, True, ("to_host",), None, True, moved)
    out = step(x, kept)
    np.testing.assert_array_equal(out, values)
    assert np.shares_memory(out, np.asarray(x)) and out is not np.asarray(x)
    assert_sealed(out)
    cast = interop.Plan("jax", "gpu:0", False, True, ("cast_on_device", "to_host"), None)
    temporary = x.astype(jnp.float16)
    private = step(temporary, cast)
    np.testing.assert_array_equal(private, values.astype(np.float16))
    private[...] = 0  # the caller's own
    np.testing.assert_array_equal(np.asarray(temporary), values.astype(np.float16))


# -- PRNG keys --------------------------------------------------------------------------


def test_typed_prng_key_names_key_data() -> None:
    interop.to_numpy(jnp.zeros(3))  # prime the fast path: keys must not take it
    keys = jax.random.split(jax.random.key(0), 3)
    for k in (jax.random.key(0), keys):
        for call in (interop.to_numpy, interop.explain):
            with pytest.raises(ConversionError, match=r"PRNG key.*jax\.random\.key_data"):
                call(k)
    data = interop.to_numpy(jax.random.key_data(keys))
    assert data.dtype == np.uint32 and data.shape == (3, 2)


def test_legacy_uint32_keys_are_plain_arrays() -> None:
    k = jax.random.PRNGKey(0)
    np.testing.assert_array_equal(interop.to_numpy(k), np.asarray(k))


# -- sparse -----------------------------------------------------------------------------

DENSE = np.array([[0.0, 1.0, 0.0], [2.0, 0.0, 3.0]], dtype=np.float32)


@pytest.fixture(params=["BCOO", "BCSR"])
def sparse_array(request: pytest.FixtureRequest) -> Any:
    from jax.experimental import sparse

    cls = getattr(sparse, request.param)
    # nse larger than needed: the arrays carry padding entries, which must not count.
    return cls.fromdense(jnp.asarray(DENSE), nse=5)


def test_jax_sparse_error_is_default(sparse_array: Any) -> None:
    assert interop.framework_of(sparse_array) == "jax"
    for call in (interop.to_numpy, interop.explain):
        with pytest.raises(ConversionError, match=r"sparse='dense'.*sparse='scipy'"):
            call(sparse_array)


def test_jax_sparse_dense(sparse_array: Any) -> None:
    plan = interop.explain(sparse_array, sparse="dense")
    assert plan.steps == ("densify",) and not plan.zero_copy
    out = interop.to_numpy(sparse_array, sparse="dense")
    assert type(out) is np.ndarray and out.flags.writeable
    np.testing.assert_array_equal(out, DENSE)
    with pytest.raises(CopyRequiredError, match="densif"):
        interop.to_numpy(sparse_array, sparse="dense", copy=False)


def test_jax_sparse_scipy(sparse_array: Any) -> None:
    import scipy.sparse

    plan = interop.explain(sparse_array, sparse="scipy")
    assert plan.steps == ("to_scipy",)
    out = interop.to_numpy(sparse_array, sparse="scipy")
    expected = scipy.sparse.csr_array if type(sparse_array).__name__ == "BCSR" else None
    assert isinstance(out, expected or scipy.sparse.coo_array)
    assert out.shape == DENSE.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out.toarray(), DENSE)


def test_jax_sparse_with_batch_dims_cannot_be_scipy() -> None:
    from jax.experimental import sparse

    batched = sparse.BCOO.fromdense(jnp.ones((2, 2, 2)), n_batch=1)
    with pytest.raises(ConversionError, match=r"batch.*sparse='dense'"):
        interop.to_numpy(batched, sparse="scipy")
    np.testing.assert_array_equal(interop.to_numpy(batched, sparse="dense"), np.ones((2, 2, 2)))


def test_jax_sparse_inside_jit_is_a_tracer_error() -> None:
    from jax.experimental import sparse

    seen: list[BaseException] = []

    def f(m: Any) -> Any:
        try:
            interop.to_numpy(m, sparse="dense")
        except Exception as exc:
            seen.append(exc)
        return m.data

    jax.jit(f)(sparse.BCOO.fromdense(jnp.asarray(DENSE)))
    assert len(seen) == 1 and isinstance(seen[0], ConversionError)
    assert "jax.pure_callback" in str(seen[0])


# -- placement: the decision for sharded and multi-process arrays ---------------------


@pytest.mark.parametrize(
    ("addressable", "replicated", "n_devices", "n_local", "expected"),
    [
        (True, True, 1, 1, "single"),
        (True, True, 4, 4, "replica"),
        (True, False, 4, 4, "assemble"),
        (False, True, 4, 2, "replica"),
        (False, False, 4, 2, "gather"),
        (False, True, 1, 0, "absent"),
    ],
)
def test_placement_decision(
    addressable: bool, replicated: bool, n_devices: int, n_local: int, expected: str
) -> None:
    assert placement(addressable, replicated, n_devices, n_local) == expected


def test_placement_of_a_real_single_device_array() -> None:
    x = jnp.arange(4.0)
    where = placement(
        x.is_fully_addressable,
        x.is_fully_replicated,
        len(x.sharding.device_set),
        len(x.sharding.addressable_devices),
    )
    assert where == "single"
    plan = interop.explain(x)
    assert plan.steps == ("numpy_view", "readonly") and plan.zero_copy and plan.device == "cpu"
    out = interop.to_numpy(x)
    assert np.shares_memory(out, np.asarray(x)) and not out.flags.writeable


def test_a_cached_plan_never_answers_for_a_deleted_array() -> None:
    # Plans are cached per dtype and sharding; a deleted array is never keyed.
    for kwargs in ({"copy": True}, {"dtype": np.float64}, {"upcast": True}):
        assert interop.to_numpy(jnp.arange(3.0), **kwargs).tolist() == [0.0, 1.0, 2.0]
        gone = jnp.arange(3.0)
        gone.delete()
        with pytest.raises(ConversionError, match="deleted"):
            interop.to_numpy(gone, **kwargs)
    half = interop.to_numpy(jnp.arange(3, dtype=jnp.bfloat16), dtype=np.float32)
    assert half.dtype == np.float32 and half.tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("name", ["int4", "uint4", "int2", "float4_e2m1fn"])
def test_sub_byte_data_into_jax_is_a_planned_copy(name: str) -> None:
    # XLA packs these dtypes, several values per byte: no host buffer of one value
    # per byte can be aliased, so explain says so and copy=False refuses.
    from interop._memory import aligned_copy

    dtype = np.dtype(getattr(ml_dtypes, name))
    a = aligned_copy(
        np.arange(8).astype(np.float32).astype(dtype)
        if "float" in name
        else np.arange(8).astype(dtype) % 2
    )
    plan = interop.explain(a, to="jax")
    assert not plan.zero_copy and "packed" in (plan.copy_reason or "")
    with pytest.raises(CopyRequiredError, match="packed"):
        interop.convert(a, "jax", copy=False)
    out = interop.convert(a, "jax")
    assert out.dtype == dtype and np.array_equal(np.asarray(out), a)


def test_an_array_deleted_between_plan_and_run_is_the_documented_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Another thread deleting (or donating) the array after its plan was checked:
    # the deletion is made here by the step itself, just before it reads the buffer.
    backend = _registry.get(jnp.arange(2.0))
    read = backend.steps["numpy_view"]

    def deleted_first(x: Any, plan: Any) -> Any:
        x.delete()
        return read(x, plan)

    monkeypatch.setitem(backend.steps, "numpy_view", deleted_first)
    calls: list[Callable[[Any], Any]] = [
        lambda x: interop.to_numpy(x, copy=True),
        lambda x: interop.to_numpy(x, dtype=np.float64),
        lambda x: interop.to_numpy_tree({"x": x}, copy=True),
    ]
    for call in calls:
        with pytest.raises(ConversionError, match="deleted"):
            call(jnp.arange(3.0))


def test_sparse_arrays_to_scipy_take_the_dtype_options_and_stay_in_jax() -> None:
    pytest.importorskip("scipy")
    from jax.experimental import sparse as jsparse

    b = jsparse.BCOO.fromdense(jnp.array([[0, 1.5], [2.5, 0]], dtype=jnp.float16))
    m = interop.to_numpy(b, sparse="scipy", float_dtype=np.float32)
    assert m.dtype == np.float32 and m.toarray().tolist() == [[0, 1.5], [2.5, 0]]
    with pytest.raises(ConversionError, match=r"values scipy\.sparse can hold"):
        interop.to_numpy(b, sparse="scipy")
    assert interop.convert(b, "jax") is b
    assert interop.explain(b, to="jax").steps == ("keep",)


@pytest.mark.parametrize("name", ["int1", "uint1"])
def test_one_bit_arrays_keep_their_dtype_and_values(name: str) -> None:
    # JAX hands out int1 and uint1 values as booleans (of the same bits), and cannot
    # compile its own copy of them: the plan's dtype and the values hold all the same.
    dtype = np.dtype(getattr(ml_dtypes, name))
    values = np.array(-1 if name == "int1" else 1, dtype)
    for source in (values, np.zeros((0, 2), dtype), np.zeros((1,), dtype)):
        x = jnp.asarray(source)
        out = interop.to_numpy(x)
        assert out.dtype == interop.explain(x).dtype == dtype
        np.testing.assert_array_equal(out.view(np.uint8), source.view(np.uint8))
        wide = interop.to_numpy(x, upcast=True)
        assert wide.dtype == interop.explain(x, upcast=True).dtype
        np.testing.assert_array_equal(wide, source.astype(wide.dtype))
        copied = interop.convert(x, "jax", copy=True)
        assert copied is not x and copied.dtype == dtype
        np.testing.assert_array_equal(
            interop.to_numpy(copied).view(np.uint8), source.view(np.uint8)
        )
