"""Containers other registries know: torch pytree nodes, TensorDict, and the precedence order."""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

import numpy as np
import pytest

import interop

torch = pytest.importorskip("torch")
pytree = pytest.importorskip("torch.utils._pytree")


class Output:
    """Like a model output registered with torch's pytree registry (ModelOutput, ...)."""

    def __init__(self, logits: Any, loss: Any, note: str = "") -> None:
        self.logits, self.loss, self.note = logits, loss, note


pytree.register_pytree_node(
    Output,
    lambda o: ([o.logits, o.loss], o.note),
    lambda children, note: Output(*children, note=note),
)


def test_a_torch_pytree_node_comes_back_as_the_same_type() -> None:
    out = interop.to_numpy_tree({"out": Output(torch.ones(2), torch.tensor(0.5), note="eval")})
    node = out["out"]
    assert type(node) is Output and node.note == "eval"
    assert isinstance(node.logits, np.ndarray) and node.loss.shape == ()


def test_every_entry_point_walks_torch_pytree_nodes() -> None:
    tree = Output(torch.ones(2), torch.zeros(1))
    batch = next(iter(interop.iter_numpy([tree])))
    assert type(batch) is Output and isinstance(batch.logits, np.ndarray)
    seen: list[Any] = []

    @interop.numpy_function
    def f(x: Any) -> Any:
        seen.append(x)
        return x.logits.sum()

    f(tree)
    assert type(seen[0]) is Output and isinstance(seen[0].logits, np.ndarray)


@dataclasses.dataclass
class DictOutput(collections.OrderedDict[str, Any]):
    """Like a Hugging Face ModelOutput: an OrderedDict of its fields that are not None.

    Its constructor, given one dict, binds the dict to its first field (``loss``).
    """

    loss: Any = None
    logits: Any = None

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is not None:
                self[field.name] = value


pytree.register_pytree_node(
    DictOutput,
    lambda o: (list(o.values()), list(o.keys())),
    lambda values, keys: DictOutput(**dict(zip(keys, values, strict=True))),
)


@pytest.mark.parametrize(
    "call",
    [
        lambda t: interop.to_numpy_tree(t),
        lambda t: interop.convert_tree(t, "numpy"),
        lambda t: next(iter(interop.iter_numpy([t]))),
    ],
)
def test_a_dict_subclass_a_pytree_registry_knows_is_rebuilt_by_it(call: Any) -> None:
    # Rebuilt by its constructor from a dict, loss would be that dict.
    out = call(DictOutput(logits=torch.ones(2)))
    assert type(out) is DictOutput and list(out) == ["logits"]
    assert out.loss is None and isinstance(out.logits, np.ndarray)
    both = call(DictOutput(loss=torch.tensor(0.5), logits=torch.ones(2)))
    assert list(both) == ["loss", "logits"] and float(both.loss) == 0.5


def test_an_error_inside_a_registered_dict_subclass_names_the_key() -> None:
    # The registration names no keys: the path takes the mapping's own.
    bad = DictOutput(loss=torch.ones(1), logits=torch.empty(1, device="meta"))
    with pytest.raises(interop.ConversionError, match=r"^tree\['out'\]\['logits'\]"):
        interop.to_numpy_tree({"out": bad})


def test_standard_mappings_keep_their_type_and_order_over_the_registries() -> None:
    tree = collections.OrderedDict([("b", torch.ones(1)), ("a", torch.zeros(1))])
    out = interop.to_numpy_tree(tree)
    assert type(out) is collections.OrderedDict and list(out) == ["b", "a"]
    counts = interop.to_numpy_tree(collections.defaultdict(list, {"z": torch.ones(1)}))
    assert counts.default_factory is list


def test_an_error_inside_a_torch_pytree_node_names_its_path() -> None:
    bad = Output(torch.ones(1), torch.empty(1, device="meta"))
    with pytest.raises(interop.ConversionError, match=r"^tree\['o'\]"):
        interop.to_numpy_tree({"o": bad})


def test_a_tensordict_becomes_a_nested_dict_of_arrays() -> None:
    tensordict = pytest.importorskip("tensordict")
    td = tensordict.TensorDict(
        {"obs": torch.arange(6.0).reshape(2, 3), "next": {"reward": torch.ones(2)}},
        batch_size=[2],
    )
    out = interop.to_numpy_tree({"td": td})["td"]
    expected = td.numpy()
    assert type(out) is dict and type(out["next"]) is dict
    np.testing.assert_array_equal(out["obs"], expected["obs"])
    np.testing.assert_array_equal(out["next"]["reward"], expected["next"]["reward"])
    # Zero-copy for CPU tensors, as for any tree leaf.
    assert np.shares_memory(out["obs"], td["obs"].numpy())
    assert isinstance(td["obs"], torch.Tensor)  # the caller's TensorDict is untouched


_TENSORDICT_HINT = (
    "expected an array or tensor, got `tensordict._td.TensorDict`: a TensorDict is a "
    "container of tensors, not one array. hint: interop.to_numpy_tree(td) gives a dict of "
    "NumPy arrays, one per key (a nested TensorDict as a nested dict), "
    "interop.convert_tree(td, to) one of another framework's arrays; or convert one "
    "tensor, as in interop.to_numpy(td[key])"
)


def test_a_tensordict_given_as_one_array_is_refused_with_what_converts_it() -> None:
    """The hint was "materialise iterables first, for example with list(...)", which fails."""
    tensordict = pytest.importorskip("tensordict")
    td = tensordict.TensorDict(
        {"obs": torch.arange(6.0).reshape(2, 3), "next": {"reward": torch.ones(2)}},
        batch_size=[2],
    )
    for call in (
        lambda: interop.to_numpy(td),
        lambda: interop.explain(td),
        lambda: interop.convert(td, "numpy"),
        lambda: interop.convert(td, "torch"),
    ):
        with pytest.raises(interop.UnsupportedTypeError) as info:
            call()
        assert str(info.value) == _TENSORDICT_HINT
    assert interop.framework_of(td) is None
    # What the hint says works.
    out = interop.to_numpy_tree(td)
    assert sorted(out) == ["next", "obs"] and type(out["next"]) is dict
    assert np.shares_memory(out["obs"], td["obs"].numpy())
    again = interop.convert_tree(td, "torch")
    assert type(again) is dict and torch.equal(again["next"]["reward"], torch.ones(2))
    assert np.shares_memory(interop.to_numpy(td["obs"]), td["obs"].numpy())


def test_precedence_registrations_then_mappings_then_framework_registries() -> None:
    # OrderedDict is registered with torch's pytree too; the walk's own mapping
    # handling comes first and keeps the key order and type.
    od = collections.OrderedDict([("b", torch.ones(1)), ("a", torch.zeros(1))])
    out = interop.to_numpy_tree(od)
    assert type(out) is collections.OrderedDict and list(out) == ["b", "a"]

    # An explicit registration beats a framework's registry for the same type.
    @dataclasses.dataclass
    class Pair:
        a: Any
        b: Any

    pytree.register_pytree_node(Pair, lambda p: ([p.a, p.b], None), lambda c, _: Pair(*c))
    interop.register_container(Pair, lambda p: ([p.b], p.a), lambda a, children: Pair(a, *children))
    try:
        out = interop.to_numpy_tree(Pair(torch.ones(1), torch.zeros(1)))
    finally:
        from interop._tree import containers

        containers._registered.pop(Pair)
        containers.kinds.pop(Pair, None)
    assert isinstance(out.a, torch.Tensor)  # kept: the registration leaves it out
    assert isinstance(out.b, np.ndarray)
