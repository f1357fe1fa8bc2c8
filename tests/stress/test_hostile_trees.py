"""Hostile and malformed trees for :func:`interop.to_numpy_tree`, and NaN/inf payloads
through :func:`interop.convert`.

Each test ends in a documented exception with the leaf's path (the original error
kept as ``__cause__``) or a correct result; never a ``RecursionError``, a consumed
generator or a changed caller container.
"""

from __future__ import annotations

import collections
import dataclasses
import sys
from typing import Any

import numpy as np
import pytest

import interop
from tests.support.cases import SPECIAL, SPECIAL_BITS, installed, same_bits
from tests.support.trees import Box, BrokenArray, Pair

DEPTH = 10_000
FRAMEWORKS = [name for name in ("torch", "tensorflow", "jax") if installed(name)]


def make(framework: str, a: np.ndarray) -> Any:
    if framework == "numpy":
        return a.copy()
    if framework == "torch":
        import torch

        return torch.from_numpy(a.copy())
    if framework == "tensorflow":
        import tensorflow as tf

        return tf.constant(a)
    import jax.numpy as jnp

    return jnp.asarray(a)


def snapshot(x: Any) -> Any:
    """Everything about ``x`` a conversion could change: types, identities, array bytes.

    Iterative, so that it also takes the deep trees.
    """
    out: list[Any] = []
    stack = [x]
    while stack:
        node = stack.pop()
        cls = type(node)
        if cls in (dict, collections.OrderedDict, collections.defaultdict):
            out.append((cls, id(node), list(node.keys())))
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            out.append((cls, id(node), len(node)))
            stack.extend(node)
        elif dataclasses.is_dataclass(node) and not isinstance(node, type):
            fields = {f.name: getattr(node, f.name) for f in dataclasses.fields(node)}
            out.append((cls, id(node), {k: id(v) for k, v in fields.items()}))
            stack.extend(fields.values())
        else:
            payload = None
            if cls is np.ndarray:
                payload = (node.tobytes(), node.flags.writeable)
            elif hasattr(node, "numpy") or hasattr(node, "__array__"):
                try:
                    payload = np.array(node).tobytes()
                except Exception:
                    payload = None
            out.append((cls, id(node), payload))
    return out


def mixed_tree() -> dict[str, Any]:
    leaves = [make(fw, SPECIAL) for fw in ["numpy", *FRAMEWORKS]]
    return {
        "leaves": leaves,
        "pair": Pair(np.arange(3), (None, "text", b"bytes", 1.5)),
        "box": Box(np.ones(2, np.float16)),
        "ordered": collections.OrderedDict(b=np.zeros(1), a=[1, 2]),
        "default": collections.defaultdict(list, k=np.int32(7)),
    }


# -- cycles and depth --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dict", "list", "nested"])
def test_a_tree_that_contains_itself_is_a_clear_error(kind: str) -> None:
    tree: Any
    if kind == "dict":
        tree = {"a": np.ones(2)}
        tree["self"] = tree
        where = "tree['self']"
    elif kind == "list":
        tree = [np.ones(2)]
        tree.append(tree)
        where = "tree[1]"
    else:
        inner: list[Any] = [np.ones(2)]
        tree = {"outer": (inner,)}
        inner.append(tree)
        where = "tree['outer'][0][1]"
    before = snapshot_shallow(tree)
    with pytest.raises(interop.ConversionError, match="cycle") as info:
        interop.to_numpy_tree(tree)
    assert where in str(info.value)
    assert "hint:" in str(info.value)
    assert snapshot_shallow(tree) == before


def snapshot_shallow(tree: Any) -> Any:
    # A cyclic tree has no finite deep snapshot: its top level and the ids below.
    if isinstance(tree, dict):
        return {k: (type(v), id(v)) for k, v in tree.items()}
    return [(type(v), id(v)) for v in tree]


def test_a_shared_subtree_is_no_cycle() -> None:
    shared = [np.arange(2)]
    out = interop.to_numpy_tree({"a": shared, "b": shared})
    assert same_bits(out["a"][0], np.arange(2)) and same_bits(out["b"][0], np.arange(2))


@pytest.mark.parametrize("container", ["dict", "list", "tuple"])
def test_trees_ten_thousand_levels_deep_convert(container: str) -> None:
    leaf = np.arange(3, dtype=np.float32)
    tree: Any = leaf
    for _ in range(DEPTH):
        if container == "dict":
            tree = {"k": tree, "n": None}
        elif container == "list":
            tree = [tree]
        else:
            tree = (tree,)
    assert sys.getrecursionlimit() < DEPTH
    before = snapshot(tree)
    out = interop.to_numpy_tree(tree, copy=True)
    assert snapshot(tree) == before
    node, src = out, tree
    for _ in range(DEPTH):
        assert type(node) is type(src) and node is not src
        if container == "dict":
            assert node["n"] is None
            node, src = node["k"], src["k"]
        else:
            node, src = node[0], src[0]
    assert same_bits(node, leaf) and not np.shares_memory(node, leaf)


def test_an_error_ten_thousand_levels_deep_names_its_path() -> None:
    tree: Any = BrokenArray()
    for _ in range(DEPTH):
        tree = [tree]
    with pytest.raises(interop.ConversionError) as info:
        interop.to_numpy_tree(tree)
    assert str(info.value).startswith("tree" + "[0]" * DEPTH + ":")


# -- leaves that are not arrays ----------------------------------------------------------


def test_generators_are_leaves_returned_unconsumed() -> None:
    gen = (i for i in range(3))
    out = interop.to_numpy_tree({"g": gen, "a": [np.ones(1), gen]})
    assert out["g"] is gen and out["a"][1] is gen
    assert interop.to_numpy_tree(gen) is gen
    assert list(gen) == [0, 1, 2], "the generator was consumed"


def test_none_inside_and_outside_trees() -> None:
    assert interop.to_numpy_tree(None) is None
    out = interop.to_numpy_tree({"a": None, "b": [None, np.arange(2)], "c": (None,)})
    assert out["a"] is None and out["b"][0] is None and out["c"] == (None,)
    assert same_bits(out["b"][1], np.arange(2))
    # to_numpy itself refuses None with its documented error, not a crash.
    with pytest.raises(interop.UnsupportedTypeError):
        interop.to_numpy(None)


def test_strings_bytes_and_objects_are_the_same_objects() -> None:
    leaves = ["text", b"bytes", 10**40, 1.5, 2j, True, object(), range(3), frozenset({1})]
    out = interop.to_numpy_tree({"x": leaves})
    assert all(a is b for a, b in zip(out["x"], leaves, strict=True))


# -- errors name the leaf, keep the cause --------------------------------------------------


def _causes(exc: BaseException) -> list[type[BaseException]]:
    found = []
    while exc is not None:
        found.append(type(exc))
        exc = exc.__cause__  # type: ignore[assignment]
    return found


@pytest.mark.parametrize(
    ("tree", "where"),
    [
        ({"x": [1, {"y": BrokenArray()}]}, "tree['x'][1]['y']"),
        (Pair(None, BrokenArray()), "tree.right"),
        (Box(BrokenArray()), "tree.value"),
        (collections.OrderedDict(z=(BrokenArray(),)), "tree['z'][0]"),
    ],
    ids=["dict-list", "namedtuple", "dataclass", "ordereddict"],
)
def test_errors_name_the_leaf_and_keep_the_cause(tree: Any, where: str) -> None:
    before = snapshot(tree)
    with pytest.raises(interop.ConversionError) as info:
        interop.to_numpy_tree(tree)
    assert str(info.value).startswith(where + ":"), str(info.value)
    assert "broken __array__" in str(info.value)
    causes = _causes(info.value)
    assert causes[1] is interop.ConversionError and RuntimeError in causes, causes
    assert snapshot(tree) == before


def test_the_errors_class_is_kept_with_the_path() -> None:
    with pytest.raises(interop.CopyRequiredError) as info:
        interop.to_numpy_tree({"a": [np.arange(2), np.float64(1.0)]}, copy=False)
    assert str(info.value).startswith("tree['a'][1]:")
    assert isinstance(info.value.__cause__, interop.CopyRequiredError)


# -- the caller's containers ------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"copy": True}, {"dtype": np.float64}, {"upcast": True}],
    ids=["default", "copy", "dtype", "upcast"],
)
def test_the_callers_containers_are_unchanged(kwargs: dict[str, Any]) -> None:
    tree = mixed_tree()
    before = snapshot(tree)
    with np.errstate(invalid="ignore"):
        out = interop.to_numpy_tree(tree, **kwargs)
    assert snapshot(tree) == before
    assert out is not tree and out["leaves"] is not tree["leaves"]
    assert type(out["pair"]) is Pair and type(out["box"]) is Box
    assert type(out["default"]) is collections.defaultdict
    assert out["default"].default_factory is list
    assert list(out["ordered"]) == ["b", "a"]
    # Containers are rebuilt; the leaves that are no arrays are the same objects.
    assert all(a is b for a, b in zip(out["pair"].right, tree["pair"].right, strict=True))
    assert out["box"].label is tree["box"].label


def test_a_failed_conversion_leaves_the_containers_unchanged() -> None:
    tree = mixed_tree()
    tree["leaves"].append(BrokenArray())
    before = snapshot(tree)
    with pytest.raises(interop.ConversionError):
        interop.to_numpy_tree(tree)
    assert snapshot(tree) == before


# -- NaN and inf payloads ----------------------------------------------------------------


@pytest.mark.parametrize("framework", ["numpy", *FRAMEWORKS])
@pytest.mark.parametrize("copy", [None, True])
def test_nan_payloads_are_bit_exact_through_trees(framework: str, copy: bool | None) -> None:
    tree = {"a": [make(framework, SPECIAL)], "b": (make(framework, SPECIAL.reshape(2, 4)),)}
    out = interop.to_numpy_tree(tree, copy=copy)
    assert out["a"][0].view(np.uint32).tobytes() == SPECIAL_BITS.tobytes()
    assert same_bits(out["b"][0], SPECIAL.reshape(2, 4))


@pytest.mark.parametrize("source", ["numpy", *FRAMEWORKS])
@pytest.mark.parametrize("target", ["numpy", *FRAMEWORKS])
@pytest.mark.parametrize("copy", [None, True])
def test_nan_payloads_are_bit_exact_through_convert(
    source: str, target: str, copy: bool | None
) -> None:
    x = make(source, SPECIAL)
    y = interop.convert(x, target, copy=copy)
    assert interop.framework_of(y) == target
    back = interop.to_numpy(y)
    assert back.view(np.uint32).tobytes() == SPECIAL_BITS.tobytes()
    assert interop.to_numpy(x).view(np.uint32).tobytes() == SPECIAL_BITS.tobytes()


# -- callers that race, and classes that copy themselves -----------------------------------


def test_a_list_changed_by_another_thread_is_read_as_one_snapshot() -> None:
    # Another thread appends to and pops from the list the whole time: every result
    # holds items the list really had (arrays, never a placeholder None), or the
    # error is the library's own.
    import threading

    shared = [np.zeros(2) for _ in range(64)]
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            shared.append(np.ones(2))
            shared.pop()

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        for _ in range(2000):
            try:
                out = interop.to_numpy_tree(shared)
            except interop.InteropError:
                continue
            assert all(isinstance(item, np.ndarray) for item in out)
    finally:
        stop.set()
        thread.join()


def test_a_dict_changed_by_another_thread_is_the_librarys_error() -> None:
    import threading

    shared = {f"k{i}": np.zeros(1) for i in range(512)}
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            shared[f"new{i}"] = np.ones(1)
            del shared[f"new{i}"]
            i += 1

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        for _ in range(500):
            try:
                out = interop.to_numpy_tree({"outer": shared})
            except interop.ConversionError as exc:
                assert "changed meanwhile" in str(exc) and "hint:" in str(exc)
                continue
            assert all(isinstance(v, np.ndarray) for v in out["outer"].values())
    finally:
        stop.set()
        thread.join()


@dataclasses.dataclass(frozen=True)
class _Immutable:
    value: Any

    def __copy__(self) -> _Immutable:
        return self  # the idiom of immutable values


def test_a_class_whose_copy_returns_itself_is_not_written_into() -> None:
    torch = pytest.importorskip("torch")
    t = torch.ones(2)
    original = _Immutable(t)
    out = interop.to_numpy_tree(original)
    assert original.value is t
    assert out is not original and isinstance(out.value, np.ndarray)


def test_a_namedtuple_that_cannot_be_rebuilt_is_the_librarys_error() -> None:
    class Strict(collections.namedtuple("Strict", "a b")):
        def __new__(cls, a: Any, b: Any, *, required: bool) -> Strict:
            return super().__new__(cls, a, b)

    with pytest.raises(interop.ConversionError, match=r"Strict.*hint: convert it to a tuple"):
        interop.to_numpy_tree({"s": Strict(np.zeros(1), 1, required=True)})


def test_a_deep_tree_computes_each_dask_leaf_once() -> None:
    # Deeper than the recursive walk goes: the iterative walk takes over and must
    # reuse what was converted already, not compute the graph a second time.
    da = pytest.importorskip("dask.array")
    calls = []

    def counted(block: np.ndarray) -> np.ndarray:
        calls.append(1)
        return block + 1

    leaf = da.from_array(np.zeros(4), chunks=4).map_blocks(counted, dtype=np.float64)
    calls.clear()  # (Dask may call the function once while building the graph)
    tree: Any = [leaf]
    for _ in range(200):
        tree = [tree]
    out = interop.to_numpy_tree(tree)
    for _ in range(200):
        out = out[0]
    np.testing.assert_array_equal(out[0], np.ones(4))
    assert len(calls) == 1
