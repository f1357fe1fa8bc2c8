"""``interop.options``: defaults for a block, nesting, explicit keywords, threads, asyncio."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import pickle
import threading
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import interop
from tests.conftest import Framework

DATA = np.arange(6, dtype=np.int32).reshape(2, 3)


def test_block_sets_defaults_of_every_function(fw: Framework) -> None:
    x = fw.make(DATA)
    with interop.options(copy=True, dtype=np.float64) as active:
        assert active.copy is True and active.dtype == np.float64
        a = interop.to_numpy(x)
        tree = interop.to_numpy_tree({"x": x})
        plan = interop.explain(x)
        batches = interop.iter_numpy([x])
    for out in (a, tree["x"], next(iter(batches))):
        assert out.dtype == np.float64 and out.flags.writeable
        assert not np.shares_memory(out, fw.native(x))
    assert plan.dtype == np.float64 and not plan.zero_copy
    assert interop.explain(x).dtype == np.int32


def test_explicit_keywords_win() -> None:
    a = DATA.copy()
    with interop.options(dtype=np.float64, allow_transfer=False):
        assert interop.to_numpy(a, dtype=np.float32).dtype == np.float32
        assert interop.to_numpy_tree([a], dtype=np.int8)[0].dtype == np.int8
        assert interop.explain(a, dtype=np.int16).dtype == np.int16
        assert next(iter(interop.iter_numpy([a], dtype=np.uint8))).dtype == np.uint8
        with interop.options(copy=True), pytest.raises(interop.CopyRequiredError):
            # copy=False wins over the block's copy=True; its dtype still applies.
            interop.to_numpy(a, copy=False)
        assert interop.to_numpy(a, allow_transfer=True).dtype == np.float64


def test_copy_false_call_inside_copy_true_block() -> None:
    a = DATA.copy()
    with interop.options(copy=True):
        assert interop.to_numpy(a, copy=False) is a
        assert interop.to_numpy(a) is not a


def test_nesting_merges_and_restores() -> None:
    a = DATA.copy()
    with interop.options(copy=True):
        with interop.options(dtype=np.float32) as inner:
            assert inner.copy is True and inner.dtype == np.float32
            out = interop.to_numpy(a)
            assert out.dtype == np.float32 and not np.shares_memory(out, a)
            with interop.options(dtype=np.float64):
                assert interop.to_numpy(a).dtype == np.float64
            assert interop.to_numpy(a).dtype == np.float32
        out = interop.to_numpy(a)
        assert out.dtype == np.int32 and out is not a
    assert interop.to_numpy(a) is a


def test_block_is_restored_after_an_error() -> None:
    a = DATA.copy()
    with pytest.raises(KeyError), interop.options(copy=True):
        raise KeyError("boom")
    assert interop.to_numpy(a) is a


def test_allow_transfer_false_block_refuses_device_data() -> None:
    xp = pytest.importorskip("array_api_strict")
    on_device = xp.asarray([1.0, 2.0], device=xp.Device("device1"))
    with interop.options(allow_transfer=False):
        assert interop.to_numpy(DATA) is DATA
        with pytest.raises(interop.TransferError, match="allow_transfer=False"):
            interop.to_numpy(on_device)
        with pytest.raises(interop.TransferError, match=r"^tree\['batch'\]\[1\]: "):
            interop.to_numpy_tree({"batch": [DATA, on_device]})
        assert interop.explain(on_device).transfer


INVALID = [
    ({"copy": "yes"}, TypeError, "expected copy to be None, True or False, got 'yes'"),
    ({"copy": 2}, TypeError, "expected copy to be None, True or False, got 2"),
    (
        {"copy": np.array([True, False])},
        TypeError,
        "expected copy to be None, True or False, got array([ True, False])",
    ),
    ({"upcast": np.array([1])}, TypeError, "expected upcast to be True or False, got array"),
    ({"sparse": np.array(["dense"])}, ValueError, "expected sparse to be one of"),
    ({"allow_transfer": 1.5}, TypeError, "expected allow_transfer to be True or False, got 1.5"),
    (
        {"allow_transfer": "yes"},
        TypeError,
        "expected allow_transfer to be True or False, got 'yes'",
    ),
    ({"upcast": "no"}, TypeError, "expected upcast to be True or False, got 'no'"),
    (
        {"sparse": "drop"},
        ValueError,
        "expected sparse to be one of ('error', 'dense', 'scipy'), got 'drop'",
    ),
    (
        {"ragged": "flat"},
        ValueError,
        "expected ragged to be one of ('error', 'object', 'pad'), got 'flat'",
    ),
    ({"dtype": "not a dtype"}, TypeError, "expected dtype to be a NumPy dtype or None, got 'not a"),
    (
        {"dtype": object()},
        TypeError,
        "expected dtype to be a NumPy dtype or None, got <object object",
    ),
    (
        {"float_dtype": np.int32},
        TypeError,
        "expected float_dtype to be a floating-point dtype, got int32",
    ),
    # NumPy would spread a subarray dtype into the shape of the result.
    (
        {"dtype": np.dtype((np.float32, (2,)))},
        TypeError,
        "expected dtype to be a dtype of one element, got the subarray dtype ('<f4', (2,))",
    ),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), INVALID)
def test_invalid_values_are_refused(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    # The same check and message for a block and for the keywords of one call.
    with pytest.raises(error) as info, interop.options(**kwargs):
        pass  # pragma: no cover - never entered
    assert message in str(info.value)
    with pytest.raises(error) as call:
        interop.to_numpy(np.zeros(1), **kwargs)
    assert message in str(call.value)
    with pytest.raises(error) as made:
        interop.Options(**kwargs)
    assert message in str(made.value)


@pytest.mark.parametrize(
    "kwargs",
    [{"copy": np.True_}, {"copy": 0}, {"allow_transfer": np.bool_(False)}, {"upcast": 1}],
)
def test_numpy_booleans_and_integers_count_as_booleans(kwargs: dict[str, Any]) -> None:
    a = np.zeros(2, dtype=np.float32)
    ((name, value),) = kwargs.items()
    with interop.options(**kwargs):
        in_block = interop.to_numpy(a)
    out = interop.to_numpy(a, **kwargs)
    for result in (in_block, out):
        if name == "copy":
            assert (result is not a) == bool(value)
        else:
            assert result is a
    if name == "copy":
        assert interop.explain(a, **kwargs).zero_copy is not bool(value)
    assert getattr(interop.Options(**kwargs), name) is bool(value)


def test_threads_each_in_their_own_block() -> None:
    dtypes = [np.float16, np.float32, np.float64, np.int8, np.int16, np.int64]
    barrier = threading.Barrier(len(dtypes))
    seen: dict[int, list[np.dtype[Any]]] = {}
    errors: list[BaseException] = []

    def work(i: int, dtype: Any) -> None:
        try:
            with interop.options(dtype=dtype):
                barrier.wait()  # every thread is inside its block now
                got = []
                for _ in range(50):
                    got.append(interop.to_numpy(DATA).dtype)
                    got.append(interop.to_numpy_tree({"a": [DATA]})["a"][0].dtype)
                barrier.wait()
                seen[i] = got
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, d)) for i, d in enumerate(dtypes)]
    with interop.options(dtype=np.uint8):
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert interop.to_numpy(DATA).dtype == np.uint8
    assert not errors
    for i, dtype in enumerate(dtypes):
        assert set(seen[i]) == {np.dtype(dtype)}
    assert interop.to_numpy(DATA) is DATA


def test_new_threads_do_not_inherit_a_block_unless_given_the_context() -> None:
    results: dict[str, Any] = {}

    def convert(name: str) -> None:
        results[name] = interop.to_numpy(DATA).dtype

    with interop.options(dtype=np.float32):
        plain = threading.Thread(target=convert, args=("plain",))
        context = contextvars.copy_context()
        inherited = threading.Thread(target=context.run, args=(convert, "inherited"))
        for t in (plain, inherited):
            t.start()
            t.join()
    assert results == {"plain": np.dtype(np.int32), "inherited": np.dtype(np.float32)}


def test_asyncio_tasks_each_in_their_own_block() -> None:
    async def task(dtype: Any, copy: bool) -> list[Any]:
        with interop.options(dtype=dtype, copy=copy):
            got = []
            for _ in range(20):
                await asyncio.sleep(0)  # let the other tasks run inside their blocks
                out = interop.to_numpy_tree({"a": DATA})["a"]
                got.append((out.dtype, np.shares_memory(out, DATA)))
            return got

    async def main() -> tuple[list[list[Any]], Any]:
        with interop.options(dtype=np.int8):
            results = await asyncio.gather(
                task(np.float32, True), task(np.float64, True), task(np.int16, True)
            )
            return list(results), interop.to_numpy(DATA).dtype

    results, outer = asyncio.run(main())
    assert outer == np.int8
    for got, dtype in zip(results, [np.float32, np.float64, np.int16], strict=True):
        assert set(got) == {(np.dtype(dtype), False)}
    assert interop.to_numpy(DATA) is DATA


def test_as_a_decorator() -> None:
    @interop.options(dtype=np.float32)
    def convert() -> np.ndarray:
        return interop.to_numpy(DATA)

    assert convert().dtype == np.float32
    assert convert().dtype == np.float32
    assert interop.to_numpy(DATA) is DATA


def test_default_block_keeps_the_fast_identity() -> None:
    with interop.options(copy=None, dtype=None) as active:
        assert active == interop.Options()
        assert interop.to_numpy(DATA) is DATA
        assert interop.to_numpy_tree([DATA])[0] is DATA


@pytest.mark.parametrize("dtype", [np.float64, "float64", np.dtype("float64")])
def test_float64_is_a_cast_not_the_default(dtype: Any) -> None:
    # NumPy compares np.dtype("float64") == None as True: a cast to float64 must
    # still be a cast, in a call and in a block.
    a = np.arange(3, dtype=np.int32)
    assert interop.Options(dtype=np.dtype(dtype)) != interop.Options()
    assert interop.to_numpy(a, dtype=dtype).dtype == np.float64
    assert interop.to_numpy_tree({"a": a}, dtype=dtype)["a"].dtype == np.float64
    with interop.options(dtype=dtype) as active:
        assert active.dtype == np.float64
        assert interop.to_numpy(a).dtype == np.float64
        assert interop.explain(a).steps == ("cast",)


def test_options_equality_and_hash() -> None:
    base = interop.Options()
    same = base.replace(copy=None)
    assert same == base and hash(same) == hash(base)
    for changed in (
        base.replace(copy=False),
        base.replace(copy=True),
        base.replace(dtype=np.float32),
        base.replace(allow_transfer=False),
        base.replace(upcast=True),
        base.replace(sparse="dense"),
        base.replace(ragged="pad"),
    ):
        assert changed != base and changed == changed.replace()
    assert len({base, base.replace(dtype=np.float64), base.replace(dtype="float64")}) == 2


def test_options_that_compare_equal_hash_equal_whatever_the_dtype_spelling() -> None:
    spelt = interop.Options(dtype=np.float32)
    made = interop.Options(dtype=np.dtype("float32"))
    assert spelt == made and hash(spelt) == hash(made) and len({spelt, made}) == 1
    assert spelt == interop.Options(dtype="float32") and spelt.dtype == np.dtype(np.float32)
    floats = interop.Options(float_dtype=np.float16)
    assert hash(floats) == hash(interop.Options(float_dtype=np.dtype("float16")))


def test_options_are_immutable_values() -> None:
    opts = interop.Options(copy=True, dtype=np.dtype(np.float32))
    with pytest.raises(AttributeError, match="immutable"):
        opts.copy = False  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        del opts.dtype
    assert pickle.loads(pickle.dumps(opts)) == opts
    assert repr(opts) == (
        "Options(copy=True, dtype=dtype('float32'), allow_transfer=True, upcast=False, "
        "sparse='error', ragged='error', float_dtype=None)"
    )
    assert opts != (True, np.float32) and opts.replace(float_dtype=None) == opts


def test_keywords_resolve_once_per_kind_of_call() -> None:
    # The keywords of a call are resolved once, then found again by their values
    # and types under the options in force.
    from interop import _options

    first = _options.from_keywords({"copy": True, "dtype": np.float32}, "to_numpy")
    assert _options.from_keywords({"copy": True, "dtype": np.float32}, "to_numpy") is first
    assert first == interop.Options(copy=True, dtype=np.float32)
    # Values that compare equal across types are never taken for each other: NumPy
    # says np.dtype("float64") == None.
    none = _options.from_keywords({"dtype": None}, "to_numpy")
    cast = _options.from_keywords({"dtype": np.dtype("float64")}, "to_numpy")
    assert none is _options.DEFAULT and cast.dtype == np.float64
    assert _options.from_keywords({"dtype": None}, "to_numpy") is none
    # The block in force is part of what was resolved.
    with interop.options(upcast=True):
        inside = _options.from_keywords({"copy": True}, "to_numpy")
    assert inside.upcast and not _options.from_keywords({"copy": True}, "to_numpy").upcast
    # Bad keywords and values are refused every time, cached or not.
    for _ in range(2):
        with pytest.raises(TypeError, match="unexpected keyword argument 'cpy'"):
            _options.from_keywords({"cpy": True}, "to_numpy")
        with pytest.raises(TypeError, match="expected copy to be None, True or False"):
            _options.from_keywords({"copy": "yes"}, "to_numpy")
    # Unhashable values (a structured dtype spelt as a list) resolve without a key.
    spec = [("a", "<f4"), ("b", "<i4")]
    assert _options.from_keywords({"dtype": spec}, "to_numpy").dtype == np.dtype(spec)
    for i in range(2 * _options._MAX_RESOLVED):
        _options.from_keywords({"dtype": f"<U{i + 1}"}, "to_numpy")
    assert len(_options._resolved) <= _options._MAX_RESOLVED


def test_the_hash_of_options_is_made_once() -> None:
    opts = interop.Options(copy=True, dtype=np.float32)
    assert hash(opts) == hash(interop.Options(copy=True, dtype="float32"))
    assert hash(pickle.loads(pickle.dumps(opts))) == hash(opts)


def test_keywords_that_may_change_meaning_are_resolved_every_time() -> None:
    # A dtype's metadata does not take part in its equality, and a class given as
    # dtype is read through its `dtype` attribute, which may change: neither is a key.
    from interop import _options

    tagged = np.dtype("O", metadata={"vlen": str})
    assert _options.from_keywords({"dtype": tagged}, "to_numpy").dtype.metadata == {"vlen": str}
    assert _options.from_keywords({"dtype": np.dtype("O")}, "to_numpy").dtype.metadata is None

    class Spec:
        dtype = np.dtype(np.int32)

    assert _options.from_keywords({"dtype": Spec}, "to_numpy").dtype == np.int32
    Spec.dtype = np.dtype(np.int16)
    assert _options.from_keywords({"dtype": Spec}, "to_numpy").dtype == np.int16
    assert interop.to_numpy(np.arange(2), dtype=Spec).dtype == np.int16
    for fixed in (np.float32, ml_dtypes.bfloat16, float, np.dtype("<f4")):
        assert _options._fixed(fixed), fixed


def test_a_copy_refusal_inside_a_copy_false_block_names_the_block() -> None:
    # copy=None given to a call means "not given": the block's copy=False stays, so the
    # usual hint (use copy=None) could not be followed there.
    with interop.options(copy=False):
        with pytest.raises(interop.CopyRequiredError) as info:
            interop.to_numpy([1.0, 2.0])
        assert "copy=False is in force here (an interop.options(copy=False) block" in str(
            info.value
        )
        assert "use copy=None" not in str(info.value)
        assert interop.to_numpy([1.0, 2.0], copy=True).tolist() == [1.0, 2.0]
    with pytest.raises(interop.CopyRequiredError, match="hint: use copy=None") as outside:
        interop.to_numpy([1.0, 2.0], copy=False)
    assert "block" not in str(outside.value)


def test_the_keywords_are_written_once_and_listed_in_order() -> None:
    from interop._options import KEYWORDS, DenseKeywords, Keywords

    # (Keywords extends DenseKeywords by sparse, for to_numpy's sparse="scipy" overload.)
    assert set(KEYWORDS) == set(Keywords.__annotations__) and len(KEYWORDS) == 7
    assert set(Keywords.__annotations__) - set(DenseKeywords.__annotations__) == {"sparse"}
    assert list(inspect.signature(interop.to_numpy).parameters)[1:] == list(KEYWORDS)
