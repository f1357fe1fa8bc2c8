"""``to_numpy_tree``: every container kind, every framework, errors with paths, no mutation."""

from __future__ import annotations

import collections
import dataclasses
import threading
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np
import pytest

import interop
from interop import _registry
from interop._tree import walk as tree_walk
from tests.conftest import Framework, load_framework
from tests.support.simdevice import SimArray, SimBackend, registered

DATA = np.arange(6, dtype=np.float32).reshape(2, 3)


class Point(NamedTuple):
    x: Any
    y: Any


@dataclasses.dataclass
class Output:
    logits: Any
    loss: Any
    name: str = "step"
    derived: Any = dataclasses.field(init=False, default=None)
    post_inits: int = dataclasses.field(init=False, default=0)

    def __post_init__(self) -> None:
        self.post_inits += 1


@dataclasses.dataclass(frozen=True)
class Frozen:
    a: Any
    b: Any = None


@dataclasses.dataclass(frozen=True, slots=True)
class FrozenSlots:
    a: Any
    tag: str = "t"


class ReadOnlyMapping(Mapping[str, Any]):
    """A Mapping that is not a dict, built from a dict."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


class MyList(list):  # type: ignore[type-arg]
    pass


class MyDict(dict):  # type: ignore[type-arg]
    pass


@pytest.fixture(params=["recursive", "iterative"], autouse=True)
def walk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs through both walks of ``to_numpy_tree``.

    The recursive walk takes the common case; the iterative one takes deep or cyclic
    trees, errors and accelerator data, and must give the same results.
    """
    if request.param == "iterative":

        def refuse(*args: Any) -> Any:
            return tree_walk._GIVE_UP  # as for a tree too deep for the recursive walk

        monkeypatch.setattr(tree_walk, "_walk_fast", refuse)
    return str(request.param)


def same_conversion(out: Any, x: Any, **kw: Any) -> None:
    """``out`` is exactly what ``to_numpy(x, **kw)`` gives: values, dtype, flags, aliasing."""
    ref = interop.to_numpy(x, **kw)
    assert type(out) is np.ndarray
    assert out.dtype == ref.dtype and out.shape == ref.shape
    np.testing.assert_array_equal(out, ref)
    assert out.flags.writeable == ref.flags.writeable
    assert np.shares_memory(out, ref) == np.shares_memory(ref, interop.to_numpy(x, **kw))


def snapshot(tree: Any) -> Any:
    """Structure, identities and array contents of ``tree``, comparable with ``==``."""
    if isinstance(tree, (dict, Mapping)):
        factory = getattr(tree, "default_factory", None)
        return (type(tree), id(tree), factory, [(k, snapshot(v)) for k, v in tree.items()])
    if isinstance(tree, (list, tuple)):
        return (type(tree), id(tree), [snapshot(v) for v in tree])
    if dataclasses.is_dataclass(tree) and not isinstance(tree, type):
        return (
            type(tree),
            id(tree),
            [(f.name, snapshot(getattr(tree, f.name))) for f in dataclasses.fields(tree)],
        )
    if interop.framework_of(tree) not in (None, "python"):
        a = np.array(interop.to_numpy(tree), copy=True)
        return ("array", id(tree), a.dtype.str, a.shape, a.tobytes())
    return ("leaf", id(tree), repr(tree))


def children(x: Any) -> list[tuple[Any, Any]]:
    if isinstance(x, Mapping):
        return list(x.items())
    if dataclasses.is_dataclass(x):
        return [(f.name, getattr(x, f.name)) for f in dataclasses.fields(x)]
    return list(enumerate(x))


# -- leaves ------------------------------------------------------------------------


def test_leaves_convert_like_to_numpy(fw: Framework) -> None:
    x = fw.make(DATA)
    out = interop.to_numpy_tree({"a": x, "b": [x, (x,)]})
    for leaf in (out["a"], out["b"][0], out["b"][1][0]):
        same_conversion(leaf, x)
    assert np.shares_memory(out["a"], fw.native(x))


def test_keywords_apply_to_every_leaf(fw: Framework) -> None:
    x = fw.make(DATA)
    out = interop.to_numpy_tree({"a": x, "b": [x]}, copy=True, dtype=np.float64)
    for leaf in (out["a"], out["b"][0]):
        same_conversion(leaf, x, copy=True, dtype=np.float64)
        assert leaf.dtype == np.float64 and leaf.flags.writeable
        assert not np.shares_memory(leaf, fw.native(x))
        leaf[0, 0] = -1
    assert fw.native(x)[0, 0] == 0


def test_root_leaf_and_non_containers(fw: Framework) -> None:
    x = fw.make(DATA)
    same_conversion(interop.to_numpy_tree(x), x)
    marker = object()
    for leaf in (None, "text", b"bytes", 3, 2.5, True, 1j, marker, {1, 2}, frozenset()):
        assert interop.to_numpy_tree(leaf) is leaf


def test_non_array_leaves_keep_identity() -> None:
    marker, text, big = object(), "label", 10**30
    tree = {"m": marker, "t": text, "n": None, "i": big, "f": 0.5, "s": {1}, "fn": len}
    out = interop.to_numpy_tree(tree)
    assert out == tree and out is not tree
    for key, value in tree.items():
        assert out[key] is value


def test_python_numbers_and_lists_are_not_arrays() -> None:
    out = interop.to_numpy_tree({"ints": [1, 2, 3], "pair": (1.0, 2.0), "flag": True})
    assert out == {"ints": [1, 2, 3], "pair": (1.0, 2.0), "flag": True}
    assert type(out["ints"]) is list and type(out["ints"][0]) is int


def test_numpy_leaves_stay_the_same_object() -> None:
    a = np.arange(3)
    out = interop.to_numpy_tree({"a": a, "l": [a]})
    assert out["a"] is a and out["l"][0] is a
    copied = interop.to_numpy_tree({"a": a}, copy=True)
    assert copied["a"] is not a and not np.shares_memory(copied["a"], a)


def test_numpy_scalars_become_arrays() -> None:
    out = interop.to_numpy_tree({"loss": np.float32(0.25)})
    assert type(out["loss"]) is np.ndarray and out["loss"].dtype == np.float32
    assert out["loss"] == np.float32(0.25)


def test_keys_are_not_converted() -> None:
    key = np.int64(3)
    out = interop.to_numpy_tree({key: np.arange(2)})
    assert next(iter(out)) is key


def test_mixed_framework_tree() -> None:
    fws = {name: load_framework(name) for name in ("numpy", "torch", "tensorflow", "jax")}
    leaves = {name: f.make(DATA + i) for i, (name, f) in enumerate(fws.items())}
    tree = {"leaves": leaves, "list": list(leaves.values()), "meta": {"step": 3, "tag": None}}
    out = interop.to_numpy_tree(tree)
    for i, name in enumerate(fws):
        for leaf in (out["leaves"][name], out["list"][i]):
            same_conversion(leaf, leaves[name])
            np.testing.assert_array_equal(leaf, DATA + i)
    assert out["meta"] == {"step": 3, "tag": None}


# -- containers --------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda a, b: {"a": a, "b": b}, id="dict"),
        pytest.param(lambda a, b: collections.OrderedDict([("b", b), ("a", a)]), id="OrderedDict"),
        pytest.param(lambda a, b: MyDict(a=a, b=b), id="dict-subclass"),
        pytest.param(lambda a, b: ReadOnlyMapping({"a": a, "b": b}), id="Mapping"),
        pytest.param(lambda a, b: types.MappingProxyType({"a": a, "b": b}), id="mappingproxy"),
        pytest.param(lambda a, b: [a, b], id="list"),
        pytest.param(lambda a, b: MyList([a, b]), id="list-subclass"),
        pytest.param(lambda a, b: (a, b), id="tuple"),
        pytest.param(lambda a, b: Point(a, b), id="namedtuple"),
        pytest.param(
            lambda a, b: collections.namedtuple("P", "x y")(a, b), id="collections.namedtuple"
        ),
        pytest.param(lambda a, b: Frozen(a, b), id="frozen-dataclass"),
    ],
)
def test_container_kinds_keep_their_type(build: Any, fw: Framework) -> None:
    a, b = fw.make(DATA), fw.make(DATA + 1)
    tree = build(a, b)
    before = snapshot(tree)
    out_a, out_b = interop.to_numpy(a), interop.to_numpy(b)
    out = build(out_a, out_b)
    got = interop.to_numpy_tree(tree)
    assert type(got) is type(tree) and got is not tree
    assert [k for k, _ in children(got)] == [k for k, _ in children(out)]
    for (_, g), (_, e) in zip(children(got), children(out), strict=True):
        assert type(g) is np.ndarray
        same_conversion(g, a if e is out_a else b)
    assert snapshot(tree) == before


def test_defaultdict_keeps_its_factory() -> None:
    tree: collections.defaultdict[str, list[Any]] = collections.defaultdict(list)
    tree["a"].append(np.arange(2))
    out = interop.to_numpy_tree(tree)
    assert type(out) is collections.defaultdict and out.default_factory is list
    assert out["missing"] == [] and "missing" not in tree


def test_order_of_keys_is_kept() -> None:
    tree = {"z": np.zeros(1), "a": np.ones(1), "m": 2}
    assert list(interop.to_numpy_tree(tree)) == ["z", "a", "m"]


def test_dataclass_fields() -> None:
    torch = pytest.importorskip("torch")
    out_in = Output(logits=torch.ones(2), loss=torch.tensor(0.5), name="train")
    out_in.derived = torch.zeros(1)
    before = snapshot(out_in)
    out = interop.to_numpy_tree(out_in)
    assert type(out) is Output and out is not out_in
    assert isinstance(out.logits, np.ndarray) and isinstance(out.derived, np.ndarray)
    assert out.loss == np.float32(0.5) and out.name is out_in.name
    # __init__ and __post_init__ do not run again: other fields are untouched.
    assert out.post_inits == 1
    assert snapshot(out_in) == before
    assert isinstance(out_in.logits, torch.Tensor)


def test_frozen_and_slotted_dataclasses() -> None:
    tree = [Frozen(np.float64(1.5)), FrozenSlots(np.int8(3), tag="x")]
    out = interop.to_numpy_tree(tree)
    assert type(out[0]) is Frozen and type(out[1]) is FrozenSlots
    assert type(out[0].a) is np.ndarray and out[0].a == 1.5
    assert type(out[1].a) is np.ndarray and out[1].tag == "x"
    assert type(tree[0].a) is np.float64 and type(tree[1].a) is np.int8
    with pytest.raises(dataclasses.FrozenInstanceError):
        out[0].a = 1  # type: ignore[misc]


def test_dataclass_field_not_set_is_skipped() -> None:
    @dataclasses.dataclass
    class Lazy:
        a: Any
        later: Any = dataclasses.field(init=False)

    out = interop.to_numpy_tree(Lazy(np.float32(1)))
    assert type(out.a) is np.ndarray and not hasattr(out, "later")


def test_structseq_and_tuple_subclasses() -> None:
    torch = pytest.importorskip("torch")
    result = torch.max(torch.tensor([[1.0, 5.0], [3.0, 2.0]]), dim=0)
    out = interop.to_numpy_tree({"max": result, "size": torch.Size([2, 3])})
    assert type(out["max"]) is type(result)
    np.testing.assert_array_equal(out["max"].values, [3.0, 5.0])
    np.testing.assert_array_equal(out["max"].indices, [1, 0])
    assert out["size"] == torch.Size([2, 3]) and type(out["size"]) is torch.Size


def test_deep_nesting_of_every_kind() -> None:
    leaf = np.arange(3)
    tree = {"a": [(Point(x=Frozen(a={"deep": [leaf]}), y=None),)]}
    out = interop.to_numpy_tree(tree)
    assert out["a"][0][0].x.a["deep"][0] is leaf
    assert type(out["a"][0][0]) is Point and type(out["a"][0][0].x) is Frozen


def test_very_deep_tree() -> None:
    depth = 10_000
    tree: Any = np.float32(7)
    for i in range(depth):
        tree = [tree] if i % 2 else {"k": tree}
    out = interop.to_numpy_tree(tree)
    node = out
    for _ in range(depth):
        node = node[0] if isinstance(node, list) else node["k"]
    assert type(node) is np.ndarray and node == 7


def test_shared_subtrees_are_not_cycles() -> None:
    shared = [np.arange(2)]
    out = interop.to_numpy_tree({"a": shared, "b": shared, "c": (shared, shared)})
    assert out["a"] == out["b"] and out["a"] is not shared


@pytest.mark.parametrize("kind", ["dict", "list", "indirect", "dataclass"])
def test_cycles_raise_a_clear_error(kind: str) -> None:
    tree: Any
    if kind == "dict":
        tree = {"a": np.arange(2)}
        tree["self"] = tree
        where = r"tree\['self'\]"
    elif kind == "list":
        tree = [np.arange(2)]
        tree.append(tree)
        where = r"tree\[1\]"
    elif kind == "indirect":
        inner: list[Any] = []
        tree = {"x": [inner]}
        inner.append(tree)
        where = r"tree\['x'\]\[0\]\[0\]"
    else:
        tree = Output(logits=None, loss=None)
        tree.logits = [tree]
        where = r"tree\.logits\[0\]"
    with pytest.raises(interop.ConversionError, match=rf"without cycles.*{where}.*hint"):
        interop.to_numpy_tree(tree)


def test_input_is_never_mutated(fw: Framework) -> None:
    x = fw.make(DATA)
    tree = {
        "a": [x, (x, None)],
        "b": collections.OrderedDict(c=x, d="s"),
        "e": Output(logits=x, loss=[x]),
        "p": Point(x, [x]),
    }
    before = snapshot(tree)
    out = interop.to_numpy_tree(tree, copy=True)
    assert snapshot(tree) == before
    # The result shares no container with the input: changing it leaves the input alone.
    out["a"].append(1)
    out["b"]["new"] = 1
    out["p"].y.clear()
    out["e"].loss.append(2)
    out["a"][0][0, 0] = -1
    assert snapshot(tree) == before


# -- JAX pytree nodes ----------------------------------------------------------------


def _jax_node_classes() -> tuple[type, type]:
    jax = pytest.importorskip("jax")

    @jax.tree_util.register_pytree_node_class
    class Params:
        def __init__(self, weights: Any, bias: Any, name: str) -> None:
            self.weights, self.bias, self.name = weights, bias, name

        def tree_flatten(self) -> tuple[tuple[Any, Any], str]:
            return (self.weights, self.bias), self.name

        @classmethod
        def tree_unflatten(cls, name: str, children: Any) -> Params:
            return cls(*children, name)

    @jax.tree_util.register_dataclass
    @dataclasses.dataclass
    class State:
        step: Any
        params: Any
        label: str = dataclasses.field(default="s", metadata={"static": True})

    return Params, State


def test_jax_registered_nodes_are_traversed() -> None:
    jnp = pytest.importorskip("jax.numpy")
    Params, State = _jax_node_classes()
    weights, bias, step = jnp.ones((2, 2)), jnp.zeros(2), jnp.asarray(3)
    params = Params(weights, bias, "dense")
    state = State(step=step, params=params, label="ema")
    out = interop.to_numpy_tree({"state": state})
    got = out["state"]
    assert type(got) is State and type(got.params) is Params
    assert got.label == "ema" and got.params.name == "dense"
    for leaf, x in [(got.step, state.step), (got.params.weights, params.weights)]:
        same_conversion(leaf, x)
    assert got.params is not params and got is not state
    assert state.params is params and state.step is step
    assert params.weights is weights and params.bias is bias
    assert isinstance(params.weights, type(weights))


def test_jax_node_error_names_the_field() -> None:
    torch = pytest.importorskip("torch")
    _, State = _jax_node_classes()
    meta = torch.empty(2, device="meta")
    with pytest.raises(interop.ConversionError, match=r"tree\['s'\]\.params\[1\]: .*meta"):
        interop.to_numpy_tree({"s": State(step=1, params=[0, meta])})


def test_a_type_registered_with_a_pytree_after_a_walk_met_it_becomes_a_node() -> None:
    # The kind decided at the first meeting (a leaf; a dataclass walked by fields)
    # was kept after the type's registration with PyTorch's or JAX's own registry.
    torch = pytest.importorskip("torch")
    jax = pytest.importorskip("jax")
    pytree = pytest.importorskip("torch.utils._pytree")

    class Output:
        def __init__(self, logits: Any) -> None:
            self.logits = logits

    assert type(interop.to_numpy_tree(Output(torch.ones(2))).logits) is torch.Tensor
    pytree.register_pytree_node(Output, lambda o: ([o.logits], None), lambda c, _: Output(*c))
    assert type(interop.to_numpy_tree(Output(torch.ones(2))).logits) is np.ndarray

    @dataclasses.dataclass
    class Step:
        x: Any
        meta: Any

    assert (
        type(interop.to_numpy_tree(Step(jax.numpy.ones(1), jax.numpy.ones(1))).meta) is np.ndarray
    )
    jax.tree_util.register_dataclass(Step, data_fields=["x"], meta_fields=["meta"])
    out = interop.to_numpy_tree(Step(jax.numpy.ones(1), jax.numpy.ones(1)))
    assert type(out.x) is np.ndarray and type(out.meta) is not np.ndarray  # meta: kept


# -- errors --------------------------------------------------------------------------


def test_errors_name_the_leaf_and_keep_the_cause() -> None:
    torch = pytest.importorskip("torch")
    meta = torch.empty(2, device="meta")
    tree = {"outputs": [torch.ones(1), None, meta]}
    with pytest.raises(interop.ConversionError) as info:
        interop.to_numpy_tree(tree)
    assert str(info.value).startswith("tree['outputs'][2]: expected a tensor with data")
    assert type(info.value.__cause__) is interop.ConversionError
    with pytest.raises(interop.ConversionError) as direct:
        interop.to_numpy(meta)
    assert str(info.value.__cause__) == str(direct.value)


@pytest.mark.parametrize(
    ("tree", "where"),
    [
        (lambda m: Point(1, m), "tree.y"),
        (lambda m: Output(logits=[m], loss=None), r"tree.logits[0]"),
        (lambda m: {1: {"k": (0, m)}}, "tree[1]['k'][1]"),
        (lambda m: m, "tree"),
    ],
)
def test_error_paths_of_every_container(tree: Any, where: str) -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(interop.ConversionError) as info:
        interop.to_numpy_tree(tree(torch.empty(1, device="meta")))
    assert str(info.value).startswith(f"{where}: ")


def test_copy_false_error_keeps_its_class() -> None:
    with pytest.raises(interop.CopyRequiredError, match=r"^tree\['x'\]\[1\]: copy=False"):
        interop.to_numpy_tree({"x": [np.zeros(2), np.float32(1)]}, copy=False)


def test_framework_errors_keep_their_class() -> None:
    jax = pytest.importorskip("jax")
    key = jax.random.key(0)
    with pytest.raises(Exception) as direct:
        interop.to_numpy(key)
    with pytest.raises(type(direct.value)) as info:
        interop.to_numpy_tree({"rng": key})
    assert str(info.value).startswith("tree['rng']: ")
    assert info.value.__cause__ is not None


def test_foreign_exception_class_is_wrapped() -> None:
    class Odd(Exception):
        def __init__(self, a: int, b: int) -> None:
            super().__init__(a, b)

    class Weird:
        def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
            raise Odd(1, 2)

    with pytest.raises(interop.ConversionError) as info:
        interop.to_numpy_tree([Weird()])
    cause = info.value.__cause__
    # The leaf's error is to_numpy's own, naming the protocol, behind the leaf's path;
    # the foreign exception stays at the end of the chain.
    with pytest.raises(interop.ConversionError) as direct:
        interop.to_numpy(Weird())
    message = str(direct.value)
    assert str(info.value) == f"tree[0]: {message}"
    assert "through `__array__`" in message and "failed with Odd: (1, 2)" in message
    assert isinstance(cause, interop.ConversionError) and type(cause.__cause__) is Odd


def test_mapping_that_cannot_be_rebuilt() -> None:
    class Strict(ReadOnlyMapping):
        def __init__(self, data: dict[str, Any], *, required: int) -> None:
            super().__init__(data)

    with pytest.raises(interop.ConversionError, match=r"^tree\['m'\]: expected a mapping.*hint"):
        interop.to_numpy_tree({"m": Strict({"a": 1}, required=1)})


def test_options_block_applies() -> None:
    a = np.arange(3, dtype=np.int32)
    with interop.options(copy=True, dtype=np.float64):
        out = interop.to_numpy_tree({"a": a})
        explicit = interop.to_numpy_tree({"a": a}, dtype=np.int16)
    assert out["a"].dtype == np.float64 and not np.shares_memory(out["a"], a)
    assert explicit["a"].dtype == np.int16 and not np.shares_memory(explicit["a"], a)
    assert interop.to_numpy_tree({"a": a})["a"] is a


def test_options_alternating_between_calls(fw: Framework) -> None:
    # The recursive walk is kept between calls for the options it was made for: a
    # call under other options must never reuse what the last one set up.
    x = fw.make(DATA)
    tree = {"layer": {"w": x, "b": [x]}}
    for _ in range(2):
        for kw in ({}, {"copy": True}, {"dtype": np.float64}, {}):
            out = interop.to_numpy_tree(tree, **kw)
            for leaf in (out["layer"]["w"], out["layer"]["b"][0]):
                same_conversion(leaf, x, **kw)
        with interop.options(copy=True):
            leaf = interop.to_numpy_tree(tree)["layer"]["w"]
        assert not np.shares_memory(leaf, fw.native(x)) and leaf.flags.writeable
        assert np.shares_memory(interop.to_numpy_tree(tree)["layer"]["w"], fw.native(x))


@pytest.mark.slow
def test_threads_with_other_options_at_once(tensor_fw: Framework) -> None:
    x = tensor_fw.make(DATA)
    tree = {f"k{i}": {"w": x, "l": [x, x]} for i in range(50)}
    barrier = threading.Barrier(3)
    failures: list[BaseException] = []

    def work(kw: dict[str, Any]) -> None:
        try:
            barrier.wait()
            for _ in range(30):
                out = interop.to_numpy_tree(tree, **kw)
                for sub in out.values():
                    for leaf in (sub["w"], *sub["l"]):
                        same_conversion(leaf, x, **kw)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [
        threading.Thread(target=work, args=(kw,))
        for kw in ({}, {"copy": True}, {"dtype": np.float64})
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures


# -- GPU: batched device-to-host copies -----------------------------------------------


@pytest.mark.gpu
def test_cuda_tree_is_complete_and_batched(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    syncs: list[Any] = []
    original = torch.cuda.Stream.synchronize

    def counting(self: Any) -> None:
        syncs.append(self)
        original(self)

    x = torch.randn(2048, 2048, device="cuda")
    torch.cuda.synchronize()
    # Kernels still queued when the copies are: returning before the copies are
    # complete would hand out incomplete data.
    tree: dict[str, Any] = {f"t{i}": (x @ x)[i] for i in range(64)}
    tree["nested"] = [(x @ x).sum(dim=0), Point(x[0], "meta")]
    with monkeypatch.context() as patch:
        patch.setattr(torch.cuda.Stream, "synchronize", counting)

        def blocking(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("a blocking copy was used")

        patch.setattr(torch.Tensor, "cpu", blocking)
        out = interop.to_numpy_tree(tree)
    # Each copy is waited for on its own event; no stream is synchronized as a whole
    # (that would also wait for whatever else the stream carries).
    assert syncs == []
    for key, value in tree.items():
        if key != "nested":
            np.testing.assert_array_equal(out[key], value.cpu().numpy())
    np.testing.assert_array_equal(out["nested"][0], tree["nested"][0].cpu().numpy())
    np.testing.assert_array_equal(out["nested"][1].x, x[0].cpu().numpy())
    assert type(out["nested"][1]) is Point and out["nested"][1].y == "meta"
    assert all(type(v) is np.ndarray for k, v in out.items() if k != "nested")


@pytest.mark.gpu
def test_cuda_cast_before_transfer_per_leaf() -> None:
    import torch

    x = torch.randn(1000, device="cuda", dtype=torch.float64)
    y = torch.randn(1000, device="cuda", dtype=torch.float16, requires_grad=True)
    out = interop.to_numpy_tree({"x": x, "y": (y,)}, dtype=np.float32)
    assert out["x"].dtype == np.float32 and out["y"][0].dtype == np.float32
    np.testing.assert_allclose(out["x"], x.float().cpu().numpy())
    np.testing.assert_allclose(out["y"][0], y.detach().float().cpu().numpy())
    assert interop.explain(x, dtype=np.float32).steps[0] == "cast_on_device"


@pytest.mark.gpu
def test_cuda_transfer_refused_names_the_leaf() -> None:
    import torch

    with pytest.raises(interop.TransferError, match=r"^tree\['b'\]\[0\]: "):
        interop.to_numpy_tree(
            {"a": torch.ones(2), "b": [torch.ones(2, device="cuda")]}, allow_transfer=False
        )


@pytest.mark.gpu
def test_cuda_mixed_host_and_device_leaves() -> None:
    import torch

    host = torch.arange(3.0)
    dev = torch.arange(3.0, device="cuda") * 2
    out = interop.to_numpy_tree((host, {"d": dev}, Frozen(dev, host)))
    assert np.shares_memory(out[0], host.numpy())
    np.testing.assert_array_equal(out[1]["d"], [0.0, 2.0, 4.0])
    assert type(out[2]) is Frozen
    np.testing.assert_array_equal(out[2].a, [0.0, 2.0, 4.0])


# -- batched device-to-host copies, on a simulated device -----------------------------


@pytest.fixture
def simdevice(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimBackend]:
    yield from registered(monkeypatch)


def test_every_copy_starts_before_any_wait(simdevice: SimBackend) -> None:
    jax = pytest.importorskip("jax")
    Params, _ = _jax_node_classes()
    leaves = [SimArray(DATA + i, name=str(i)) for i in range(7)]
    host = np.arange(3)
    tree = {
        "d": leaves[0],
        "nested": [(leaves[1], host), Point(leaves[2], "label")],
        "frozen": Frozen(leaves[3], b=host),
        "ordered": collections.OrderedDict(x=leaves[4]),
        "jax": Params(leaves[5], jax.numpy.ones(2), "p"),
        "deep": {"a": [[{"b": (leaves[6],)}]]},
    }
    out = interop.to_numpy_tree(tree)
    # Every copy started before the first wait; one wait per copy, each on its event.
    trace = simdevice.device.trace()
    assert trace == [f"start {i}" for i in range(7)] + [f"wait {i}" for i in range(7)]
    assert not simdevice.device.in_flight() and not simdevice.device.errors
    got = [
        out["d"],
        out["nested"][0][0],
        out["nested"][1].x,
        out["frozen"].a,
        out["ordered"]["x"],
        out["jax"].weights,
        out["deep"]["a"][0][0]["b"][0],
    ]
    for i, leaf in enumerate(got):
        assert type(leaf) is np.ndarray
        np.testing.assert_array_equal(leaf, DATA + i)
    assert type(out["nested"][1]) is Point and out["nested"][1].y == "label"
    assert type(out["frozen"]) is Frozen and out["frozen"].b is host
    assert type(out["ordered"]) is collections.OrderedDict
    assert type(out["jax"]) is Params and out["jax"].name == "p"
    assert out["nested"][0][1] is host


def test_device_root_leaf_and_cast_per_leaf(simdevice: SimBackend) -> None:
    out = interop.to_numpy_tree(SimArray(DATA, name="r"), dtype=np.float16)
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, DATA.astype(np.float16))
    assert simdevice.device.trace() == ["start r:cast", "wait r:cast"]


def test_device_transfer_refused_before_any_copy(simdevice: SimBackend) -> None:
    tree = {"host": np.zeros(1), "dev": [SimArray(DATA, name="a")]}
    with pytest.raises(interop.TransferError, match=r"^tree\['dev'\]\[0\]: expected data in host"):
        interop.to_numpy_tree(tree, allow_transfer=False)
    assert simdevice.log == []


def test_device_error_after_copy_names_the_leaf(simdevice: SimBackend) -> None:
    tree = {"ok": SimArray(DATA, name="a"), "bad": (1, SimArray(DATA, "b", fail_after_copy=True))}
    # The backend's own error, as to_numpy raises it (a generic protocol's failure is a
    # ConversionError naming the object), with the original at the end of the chain.
    with pytest.raises(
        interop.ConversionError, match=r"^tree\['bad'\]\[1\]: .*corrupt data in b"
    ) as info:
        interop.to_numpy_tree(tree)
    cause: BaseException | None = info.value
    while cause is not None and cause.__cause__ is not None:
        cause = cause.__cause__
    assert type(cause) is RuntimeError
    # Both copies were started, then each waited for, before the error surfaced.
    assert simdevice.device.trace() == ["start a", "start b", "wait a", "wait b"]
    with pytest.raises(interop.ConversionError, match="corrupt data in c"):
        interop.to_numpy(SimArray(DATA, "c", fail_after_copy=True))


def test_error_during_walk_waits_for_started_copies(simdevice: SimBackend) -> None:
    torch = pytest.importorskip("torch")
    tree = [SimArray(DATA, name="a"), torch.empty(1, device="meta")]
    with pytest.raises(interop.ConversionError, match=r"^tree\[1\]: "):
        interop.to_numpy_tree(tree)
    assert simdevice.device.trace() == ["start a", "wait a"]
    assert not simdevice.device.in_flight()


@pytest.mark.gpu
def test_jax_gpu_tree_uses_async_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    jax = pytest.importorskip("jax")
    if jax.default_backend() == "cpu":
        pytest.skip("JAX has no GPU backend here")
    x = jax.random.normal(jax.random.key(0), (1024, 1024))
    tree = {"a": x @ x, "b": [x.sum(0), (x * 2).astype("bfloat16")], "c": x[0]}
    started: list[Any] = []
    backend = _registry.by_name("jax")
    original = backend.start_copy

    def counting(x: Any, pinned_left: int) -> Any:
        started.append(x)
        return original(x, pinned_left)

    monkeypatch.setattr(backend, "start_copy", counting)
    out = interop.to_numpy_tree(tree, dtype=np.float32)
    assert len(started) == 4
    np.testing.assert_array_equal(out["a"], np.asarray(tree["a"]))
    np.testing.assert_array_equal(out["b"][1], np.asarray(tree["b"][1]).astype(np.float32))
    assert out["b"][1].dtype == np.float32 and out["c"].shape == (1024,)


@pytest.mark.gpu
def test_cupy_tree_is_complete() -> None:
    cupy = pytest.importorskip("cupy")
    x = cupy.random.standard_normal((1024, 1024), dtype=cupy.float32)
    tree = {"a": x @ x, "b": [x.T, x[::2]]}
    out = interop.to_numpy_tree(tree)
    np.testing.assert_array_equal(out["a"], cupy.asnumpy(tree["a"]))
    np.testing.assert_array_equal(out["b"][0], cupy.asnumpy(x).T)
    np.testing.assert_array_equal(out["b"][1], cupy.asnumpy(x)[::2])


# -- containers of other registries ------------------------------------------------------------


class _Encoding(collections.UserDict):  # type: ignore[type-arg]
    """Like a tokenizer's BatchEncoding: a UserDict with attributes of its own."""

    def __init__(self, data: Any = None, encodings: Any = None) -> None:
        super().__init__(data)
        self._encodings = encodings
        self._n_sequences = None if encodings is None else len(encodings)


def test_a_userdict_subclass_keeps_its_type_and_attributes() -> None:
    torch = pytest.importorskip("torch")
    enc = _Encoding({"input_ids": torch.arange(3)}, encodings=["a", "b"])
    out = interop.to_numpy_tree(enc)
    assert type(out) is _Encoding and out is not enc
    assert out._encodings == ["a", "b"] and out._n_sequences == 2
    assert isinstance(out["input_ids"], np.ndarray)
    assert isinstance(enc["input_ids"], torch.Tensor)  # the caller's object is untouched


def test_a_dict_subclass_keeps_its_attributes() -> None:
    class Tagged(dict):  # type: ignore[type-arg]
        pass

    d = Tagged(x=np.float32(1))
    d.tag = "train"
    out = interop.to_numpy_tree(d)
    assert type(out) is Tagged and out.tag == "train" and out["x"].shape == ()


def test_a_mapping_whose_attributes_would_be_lost_is_refused() -> None:
    class Keyed(ReadOnlyMapping):
        pass

    m = Keyed({"x": np.float32(1)})
    m.origin = "file"
    with pytest.raises(interop.ConversionError, match=r"origin.*register_container"):
        interop.to_numpy_tree(m)


def test_registered_containers_come_first() -> None:
    @dataclasses.dataclass
    class Box:
        inner: Any
        meta: str = "kept"

    calls: list[str] = []

    def flatten(box: Box) -> tuple[list[Any], str]:
        calls.append("flatten")
        return [box.inner], box.meta

    interop.register_container(Box, flatten, lambda meta, children: Box(children[0], meta))
    try:
        out = interop.to_numpy_tree([Box(np.float32(2))])
    finally:
        from interop._tree import containers

        containers._registered.pop(Box)
        containers.kinds.pop(Box, None)
    assert calls == ["flatten"] and out[0].meta == "kept" and out[0].inner.shape == ()
    with pytest.raises(TypeError, match="expected a type to register, got `str`"):
        interop.register_container("Box", flatten, flatten)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="functions, got `function` and `int`"):
        interop.register_container(Box, flatten, 1)  # type: ignore[arg-type]


def test_a_type_registered_after_use_and_again_takes_the_new_functions() -> None:
    from interop._tree import containers

    class Holder:
        def __init__(self, *items: Any) -> None:
            self.items = items

    holder = Holder(np.float32(1), np.float32(2))
    # Unregistered, a Holder is a leaf, returned as it is.
    assert interop.to_numpy_tree([holder])[0] is holder
    try:
        interop.register_container(Holder, lambda h: (list(h.items), None), lambda _, c: Holder(*c))
        out = interop.to_numpy_tree([holder])[0]
        assert type(out) is Holder and all(type(a) is np.ndarray for a in out.items)
        # Registered again: the new functions, which keep only the first item.
        interop.register_container(
            Holder, lambda h: ([h.items[0]], None), lambda _, c: Holder(*c, "second dropped")
        )
        again = interop.to_numpy_tree([holder])[0]
        assert again.items[1] == "second dropped" and type(again.items[0]) is np.ndarray
    finally:
        containers._registered.pop(Holder)
        containers.kinds.pop(Holder, None)
        containers._node_of.pop(Holder, None)


@pytest.mark.parametrize(
    ("flatten", "says"),
    [
        (lambda box: ({"w": box.inner}, None), "its children as a list or tuple, got `dict`"),
        (lambda box: (box.inner, None), "its children as a list or tuple, got `numpy.ndarray`"),
        (lambda box: [box.inner], "a pair \\(children, aux\\), got `list`"),
    ],
)
def test_a_flatten_that_answers_no_children_is_refused(
    flatten: Callable[[Any], Any], says: str
) -> None:
    # Iterated as it is, a dict of children would give its keys and an array its rows.
    from interop._tree import containers

    @dataclasses.dataclass
    class Box:
        inner: Any

    interop.register_container(Box, flatten, lambda aux, children: Box(children))
    try:
        for convert in (interop.to_numpy_tree, interop.numpy_function(lambda b: b)):
            with pytest.raises(TypeError, match=f"registered for `.*Box` to return {says}"):
                convert([Box(np.arange(4.0).reshape(2, 2))])
    finally:
        containers._unregister(Box)


@pytest.mark.parametrize("cls", [dict, list, tuple])
def test_the_containers_walked_as_they_are_cannot_be_registered(cls: type) -> None:
    with pytest.raises(TypeError, match=f"got `{cls.__name__}`, which the tree functions always"):
        interop.register_container(cls, lambda x: ([], None), lambda aux, children: cls())


# -- rebuilding dict subclasses, registrations, the tables of kinds -----------------------------
# (Each test runs through both walks: see the ``walk`` fixture.)


def test_a_dict_subclass_whose_constructor_loses_the_items_is_refused() -> None:
    class Batch(dict):  # type: ignore[type-arg]
        def __init__(self, name: str, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.name = name

    tree = {"b": Batch("train", x=np.float32(1))}
    with pytest.raises(interop.ConversionError, match=r"Batch`.*register_container") as info:
        interop.to_numpy_tree(tree)
    assert str(info.value).startswith("tree['b']: expected a mapping type")
    assert info.value.__interop_path__ == "tree['b']"  # type: ignore[attr-defined]
    # A constructor that binds the items to another argument: the items are lost.
    assert tree["b"] == {"x": np.float32(1)} and tree["b"].name == "train"


def test_a_dict_subclass_keeps_its_slots() -> None:
    class Tagged(dict):  # type: ignore[type-arg]
        __slots__ = ("tag", "unset")

    d = Tagged(x=np.float32(1))
    d.tag = "train"
    out = interop.to_numpy_tree(d)
    assert type(out) is Tagged and out is not d and out.tag == "train"
    assert not hasattr(out, "unset") and out["x"].shape == ()


class _Frame:
    """A container that also offers ``__array__`` (as a data frame does)."""

    def __init__(self, columns: dict[str, Any]) -> None:
        self.columns = columns

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        return np.stack([np.asarray(c) for c in self.columns.values()])


@pytest.fixture
def frame_registered() -> Iterator[None]:
    from interop._tree import containers

    interop.register_container(
        _Frame,
        lambda f: (list(f.columns.values()), list(f.columns)),
        lambda keys, children: _Frame(dict(zip(keys, children, strict=True))),
    )
    yield
    containers._unregister(_Frame)


@pytest.mark.parametrize("options", [{}, {"copy": True}], ids=["default", "copy"])
def test_a_registration_comes_before_the_array_protocols(
    frame_registered: None, options: dict[str, Any]
) -> None:
    frame = _Frame({"a": np.ones(2, np.float32), "b": np.zeros(2, np.float32)})
    out = interop.to_numpy_tree({"f": frame}, **options)
    assert type(out["f"]) is _Frame and out["f"] is not frame
    assert list(out["f"].columns) == ["a", "b"]
    # The root itself, and the other tree functions.
    assert type(interop.to_numpy_tree(frame, **options)) is _Frame
    assert type(interop.convert_tree([frame], "numpy")[0]) is _Frame
    # Outside the tree functions a registration changes nothing.
    assert interop.to_numpy(frame).shape == (2, 2)


def test_an_unregistered_array_like_is_still_one_array() -> None:
    frame = _Frame({"a": np.ones(2), "b": np.zeros(2)})
    out = interop.to_numpy_tree({"f": frame})
    assert type(out["f"]) is np.ndarray and out["f"].shape == (2, 2)


def test_classifying_past_the_tables_bound_never_loses_a_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from interop._tree import containers

    # Containers registered on the fly: the tables of kinds overflow and start afresh
    # while one of them is being classified.
    monkeypatch.setattr(containers, "_MAX_KINDS", 8)
    made = []
    try:
        for i in range(40):
            cls = type(f"Made{i}", (), {"__init__": lambda self, v: setattr(self, "v", v)})
            made.append(cls)
            interop.register_container(cls, lambda b: ([b.v], None), lambda _, c, k=cls: k(*c))
            out = interop.to_numpy_tree({"box": cls(np.float32(i))})
            assert type(out["box"]) is cls and out["box"].v == i
    finally:
        for cls in made:
            containers._unregister(cls)


def test_a_node_whose_tables_were_cleared_meanwhile_is_asked_again() -> None:
    from interop._tree import containers

    class Held:
        def __init__(self, v: Any) -> None:
            self.v = v

    interop.register_container(Held, lambda h: ([h.v], None), lambda _, c: Held(*c))
    try:
        tree = {"h": Held(np.float32(1))}
        interop.to_numpy_tree(tree)
        # Another thread cleared the nodes (the backends changed, or the tables
        # overflowed) after this one read the kind.
        containers._node_of.clear()
        assert containers.kinds[Held] == containers._NODE
        out = interop.to_numpy_tree(tree)
        assert type(out["h"]) is Held and out["h"].v.shape == ()
    finally:
        containers._unregister(Held)


def test_map_leaves_takes_deep_and_cyclic_trees() -> None:
    from interop._tree import map_leaves

    deep: Any = np.float32(1)
    for _ in range(3000):
        deep = {"k": [deep]}
    out = map_leaves(deep, lambda x: ("leaf", x))
    for _ in range(3000):
        out = out["k"][0]
    assert out == ("leaf", np.float32(1))
    cyclic: list[Any] = [np.float32(1)]
    cyclic.append({"c": cyclic})
    with pytest.raises(interop.ConversionError, match=r"without cycles.*at tree\[1\]\['c'\]"):
        map_leaves(cyclic, lambda x: x)
    with pytest.raises(interop.ConversionError, match=r"without cycles"):
        interop.to_numpy_tree(cyclic)


def test_map_leaves_names_a_containers_failure_and_a_leafs() -> None:
    from interop._tree import map_leaves

    class Refusing(Mapping[str, Any]):
        def __getitem__(self, key: str) -> Any:
            raise ValueError(f"no item {key}")

        def __iter__(self) -> Iterator[str]:
            return iter(["x"])

        def __len__(self) -> int:
            return 1

    with pytest.raises(ValueError, match=r"^tree\['a'\]\[1\]: no item x$") as info:
        map_leaves({"a": [1, Refusing()]}, lambda x: x)
    assert type(info.value.__cause__) is ValueError

    def leaf(x: Any) -> Any:
        raise KeyError("the leaf's own")

    # A leaf's own failure is named by its path too, keeping its class and cause.
    with pytest.raises(KeyError) as raw:
        map_leaves({"a": [1]}, leaf)
    assert raw.value.args[0].startswith("tree['a'][0]: ")
    assert type(raw.value.__cause__) is KeyError and raw.value.__cause__.args == ("the leaf's own",)
