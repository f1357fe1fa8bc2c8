"""convert_tree and iter_convert: whole structures into one framework, leaf by leaf."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import interop
from tests.conftest import FRAMEWORKS, Framework, load_framework
from tests.support.producers import ArrayMethod


def _structure(fw: Framework) -> Any:
    Pair = collections.namedtuple("Pair", "x y")
    return {
        "batch": Pair(fw.make(np.arange(4.0).reshape(2, 2)), fw.make(np.arange(2))),
        "extra": [fw.make(np.ones(3, dtype=np.float32)), None, "tag", 3],
    }


@pytest.mark.parametrize("target", FRAMEWORKS)
def test_every_leaf_is_what_convert_gives(fw: Framework, target: str) -> None:
    load_framework(target)  # skips where the target is not installed
    tree = _structure(fw)
    out = interop.convert_tree(tree, target)
    assert type(out["batch"]).__name__ == "Pair" and out["extra"][1:] == [None, "tag", 3]
    for got, source in [
        (out["batch"].x, tree["batch"].x),
        (out["batch"].y, tree["batch"].y),
        (out["extra"][0], tree["extra"][0]),
    ]:
        expected = interop.convert(source, target)
        assert type(got) is type(expected)
        np.testing.assert_array_equal(interop.to_numpy(got), interop.to_numpy(expected))
    assert (isinstance(tree["extra"], list) and tree["extra"][0] is not out["extra"][0]) or (
        target == fw.name
    )


@pytest.mark.parametrize(
    ("target", "device"),
    [("numpy", "cpu"), ("torch", None), ("jax", None)],
    ids=["numpy-cpu", "torch", "jax"],
)
def test_buffer_and_array_method_leaves_are_what_convert_gives(
    target: str, device: str | None
) -> None:
    """Leaves that only offer a buffer or ``__array__`` convert for every target and device."""
    load_framework(target)
    tree = {"mv": memoryview(bytearray(b"ab")), "obj": ArrayMethod(np.arange(3.0)), "n": 3}
    out = interop.convert_tree(tree, target, device=device)
    assert out["n"] is tree["n"]
    for key in ("mv", "obj"):
        expected = interop.convert(tree[key], target, device=device)
        assert type(out[key]) is type(expected)
        np.testing.assert_array_equal(interop.to_numpy(out[key]), interop.to_numpy(expected))


def test_like_and_copy_reach_every_leaf() -> None:
    torch = pytest.importorskip("torch")
    a = np.arange(3.0)
    out = interop.convert_tree({"a": a, "b": [a]}, like=torch.zeros(1), copy=True)
    assert isinstance(out["a"], torch.Tensor) and isinstance(out["b"][0], torch.Tensor)
    out["a"][0] = 7
    assert a[0] == 0  # copy=True: nothing shared


def test_a_tuple_of_tensors_is_refused_by_convert_with_a_hint() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("jax")
    pair = (torch.ones(2), torch.ones(2))
    with pytest.raises(interop.ConversionError, match=r"holding 2 array.*convert_tree"):
        interop.convert(pair, "jax")
    with pytest.raises(interop.ConversionError, match="convert_tree"):
        interop.explain(pair, to="jax")
    x, y = interop.convert_tree(pair, "jax")
    assert x.shape == (2,) and y.shape == (2,)
    # Lists of Python numbers still convert as one array, and to NumPy convert is
    # to_numpy, which builds one array from the items as np.asarray does.
    assert interop.convert([1, 2], "jax").tolist() == [1, 2]
    assert interop.convert(pair, "numpy").shape == (2, 2)


def test_iter_convert_feeds_a_framework_and_iterates_again() -> None:
    torch = pytest.importorskip("torch")
    batches = [{"x": np.full(2, i), "i": i} for i in range(3)]
    feed = interop.iter_convert(batches, "torch")
    assert len(feed) == 3
    for _ in range(2):
        got = [(b["x"].tolist(), b["i"]) for b in feed]
        assert got == [([0, 0], 0), ([1, 1], 1), ([2, 2], 2)]
        assert all(isinstance(b["x"], torch.Tensor) for b in feed)
    with pytest.raises(TypeError, match="expected an iterable"):
        interop.iter_convert(42, "torch")  # type: ignore[arg-type]


def test_iter_convert_to_numpy_is_iter_numpy() -> None:
    out = interop.iter_convert([np.arange(2)], "numpy", prefetch=0)
    assert type(out).__name__ == "NumpyBatches"
    assert [b.tolist() for b in out] == [[0, 1]]


def test_a_block_reaches_convert_tree_and_iter_convert_as_it_reaches_convert() -> None:
    # convert follows copy and allow_transfer of a block, and keeps the dtype, to
    # NumPy as to any target; so do the structure functions, on every path.
    ml_dtypes = pytest.importorskip("ml_dtypes")
    half = np.arange(3).astype(ml_dtypes.bfloat16)
    ints = np.arange(3)
    for block in ({"dtype": np.float32}, {"upcast": True}, {"float_dtype": np.float16}):
        with interop.options(**block):
            for x in (half, ints):
                expected = interop.convert(x, "numpy")
                assert expected.dtype == x.dtype
                assert interop.convert_tree({"x": x}, "numpy")["x"].dtype == x.dtype
                assert interop.convert_tree({"x": x}, "numpy", device="cpu")["x"].dtype == x.dtype
                (batch,) = interop.iter_convert([{"x": x}], "numpy")
                assert batch["x"].dtype == x.dtype


def test_iter_convert_takes_the_block_in_force_when_it_is_made() -> None:
    torch = pytest.importorskip("torch")
    source = [np.zeros(3)]
    with interop.options(copy=True):
        batches = {to: interop.iter_convert(source, to) for to in ("numpy", "torch")}
    for to, made in batches.items():
        (out,) = made
        source[0][0] = 7.0
        assert interop.to_numpy(out)[0] == 0.0, to  # a copy: the write does not show
        source[0][0] = 0.0
    inside = interop.iter_convert(source, "torch")
    with interop.options(copy=True):
        (out,) = inside
    assert isinstance(out, torch.Tensor) and np.shares_memory(out.numpy(), source[0])


@pytest.mark.parametrize("to", ["numpy", "torch"])
def test_iter_convert_checks_prefetch_for_every_target(to: str) -> None:
    load_framework(to)
    with pytest.raises(ValueError, match="prefetch to be an int >= 0"):
        interop.iter_convert([np.zeros(2)], to, prefetch=-1)
    with pytest.raises(TypeError, match="prefetch to be an int >= 0"):
        interop.iter_convert([np.zeros(2)], to, prefetch="2")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected an iterable of batches"):
        interop.iter_convert(3, to)  # type: ignore[arg-type]


@pytest.mark.parametrize("to", ["numpy", "torch"])
@pytest.mark.parametrize("tree", [[np.ones(1)], [], {"n": None}], ids=["array", "empty", "none"])
def test_wrong_arguments_are_refused_at_the_call_whatever_the_leaves(to: str, tree: Any) -> None:
    # Named as the arguments they are, not by the path of a first leaf, and raised
    # where no leaf is an array too; iter_convert raises before any batch is taken.
    load_framework(to)
    for call in (interop.convert_tree, interop.iter_convert):
        with pytest.raises(TypeError, match=r"^expected copy to be None, True or False, got 'x'"):
            call(tree, to, copy="x")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"^expected (a )?device .*got 'bogus-device'"):
            call(tree, to, device="bogus-device")


@pytest.mark.parametrize("to", ["numpy", "torch", "jax", "tensorflow"])
def test_iter_convert_passes_end_as_iter_numpy_passes_do(to: str) -> None:
    # Left early, a pass closes its source; a batch that fails raises in its turn,
    # and the pass goes on with the next one. Every target alike.
    load_framework(to)
    torch = pytest.importorskip("torch")
    closed: list[bool] = []

    def source() -> Iterator[Any]:
        try:
            yield np.arange(2.0)
            yield torch.empty(2, device="meta")  # shape and dtype, no values
            yield np.arange(3.0)
        finally:
            closed.append(True)

    feed = interop.iter_convert(source(), to)
    for _ in feed:
        break
    assert closed == [True]
    closed.clear()
    it = iter(interop.iter_convert(source(), to))
    assert interop.to_numpy(next(it)).tolist() == [0.0, 1.0]
    with pytest.raises(interop.ConversionError, match="meta"):
        next(it)
    assert interop.to_numpy(next(it)).tolist() == [0.0, 1.0, 2.0]
    assert interop.framework_of(next(iter(interop.iter_convert([np.zeros(1)], to)))) == to
    with pytest.raises(StopIteration):
        next(it)
    assert closed == [True]
