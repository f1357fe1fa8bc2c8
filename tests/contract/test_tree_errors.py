"""Errors inside trees: the same error, at the same path, from both walks of a tree.

:func:`interop.to_numpy_tree` walks a tree recursively up to a depth, and a deeper
tree iteratively (see ``interop/_tree/walk.py``). Each case below fails at a known
place inside a small tree; the tree is converted as it is (the recursive walk) and
below a hundred levels of lists, dicts, dataclasses and registered containers (the
iterative walk), and each time the error must be of the same class, with the same
message behind the same path.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pytest

import interop
from interop._tree import containers
from tests.support.trees import Box, BrokenArray, Pair

DEPTH = 100  # deeper than the recursive walk goes


class Node:
    """A container the tree functions know only through ``register_container``."""

    def __init__(self, *children: Any) -> None:
        self.children = list(children)


class Grower:
    """An array-like whose conversion adds a key to the dict that holds it."""

    def __init__(self, holder: dict[str, Any]) -> None:
        self.holder = holder

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        self.holder["grown"] = None
        return np.zeros(1)


class Strict(collections.namedtuple("Strict", "a b")):
    """A namedtuple whose constructor wants more than its fields."""

    def __new__(cls, a: Any, b: Any, *, required: bool) -> Strict:
        return super().__new__(cls, a, b)


class Exploding:
    """A registered container whose ``flatten`` fails."""


def _explode(x: Exploding) -> tuple[list[Any], None]:
    raise ValueError("flatten boom")


class Refusing(Mapping[str, Any]):
    """A mapping that lists keys its ``__getitem__`` then refuses, after ``good`` ones."""

    def __init__(self, good: int) -> None:
        self.good = good

    def __getitem__(self, key: str) -> Any:
        if key == "bad":
            raise ValueError("no item bad")
        return np.ones(1)

    def __iter__(self) -> Iterator[str]:
        return iter([*(f"k{i}" for i in range(self.good)), "bad"])

    def __len__(self) -> int:
        return self.good + 1


class Named(dict):  # type: ignore[type-arg]
    """A dict subclass whose constructor takes a name first: ``Named(items)`` loses them."""

    def __init__(self, name: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.name = name


def _grown_dict() -> dict[str, Any]:
    holder: dict[str, Any] = {"first": np.ones(1)}
    holder["second"] = Grower(holder)
    holder["third"] = np.ones(1)
    return holder


# (the tree, the path of the failure in it, the error's class, a phrase of its message)
CASES: dict[str, tuple[Callable[[], Any], str, type[Exception], str]] = {
    "leaf in dict and list": (
        lambda: {"x": [1, {"y": BrokenArray()}]},
        "['x'][1]['y']",
        interop.ConversionError,
        "broken __array__",
    ),
    "leaf in namedtuple": (
        lambda: Pair(None, BrokenArray()),
        ".right",
        interop.ConversionError,
        "broken",
    ),
    "leaf in nested dataclasses": (
        lambda: Box(Box(BrokenArray())),
        ".value.value",
        interop.ConversionError,
        "broken",
    ),
    "leaf in mapping in namedtuple": (
        lambda: Pair(collections.OrderedDict(z=(0, BrokenArray())), None),
        ".left['z'][1]",
        interop.ConversionError,
        "broken",
    ),
    "leaf in registered containers": (
        lambda: Node(np.ones(1), Node(BrokenArray())),
        "[1][0]",
        interop.ConversionError,
        "broken",
    ),
    "copy=False refused in a tuple": (
        lambda: {"t": (np.zeros(1), np.float32(1))},
        "['t'][1]",
        interop.CopyRequiredError,
        "copy=False",
    ),
    "namedtuple that cannot be rebuilt": (
        lambda: {"s": [Strict(np.zeros(1), 1, required=True)]},
        "['s'][0]",
        interop.ConversionError,
        "hint: convert it to a tuple",
    ),
    "dict changed by its own leaf": (
        lambda: [0, {"d": _grown_dict()}],
        "[1]['d']",
        interop.ConversionError,
        "got a `dict` that changed meanwhile",
    ),
    # The container's own code failing, not a leaf: named by the container's path,
    # with the class of its error.
    "registered flatten that fails": (
        lambda: {"a": [np.ones(1), Exploding()]},
        "['a'][1]",
        ValueError,
        "flatten boom",
    ),
    "mapping failing on its first item": (
        lambda: {"m": Refusing(0)},
        "['m']",
        ValueError,
        "no item bad",
    ),
    "mapping failing after a leaf": (
        lambda: [{"m": Refusing(2)}],
        "[0]['m']",
        ValueError,
        "no item bad",
    ),
    "dict subclass rebuilt without its items": (
        lambda: {"b": (Named("train", x=np.ones(1)),)},
        "['b'][0]",
        interop.ConversionError,
        "register it with interop.register_container",
    ),
}


def _wrap(tree: Any, how: str) -> tuple[Any, str]:
    """``tree`` below ``DEPTH`` containers of one kind, and the path down to it."""
    if how == "as it is":
        return tree, ""
    wrap: Callable[[Any], Any] = {
        "lists": lambda t: [t],
        "dicts": lambda t: {"k": t},
        "dataclasses": Box,
        "registered": Node,
    }[how]
    step = {"lists": "[0]", "dicts": "['k']", "dataclasses": ".value", "registered": "[0]"}[how]
    for _ in range(DEPTH):
        tree = wrap(tree)
    return tree, step * DEPTH


@pytest.fixture(autouse=True)
def _node_registered() -> Iterator[None]:
    interop.register_container(Node, lambda n: (n.children, None), lambda _, c: Node(*c))
    interop.register_container(Exploding, _explode, lambda _, c: Exploding())
    yield
    containers._unregister(Node)
    containers._unregister(Exploding)


@pytest.mark.parametrize("how", ["as it is", "lists", "dicts", "dataclasses", "registered"])
@pytest.mark.parametrize("case", list(CASES))
def test_an_error_names_its_path_in_both_walks(case: str, how: str) -> None:
    make, where, error, phrase = CASES[case]
    tree, above = _wrap(make(), how)
    copy = False if error is interop.CopyRequiredError else None
    with pytest.raises(error) as info:
        interop.to_numpy_tree(tree, copy=copy)
    message = str(info.value)
    path = f"tree{above}{where}"
    assert message.startswith(f"{path}: "), message[:300]
    assert phrase in message
    assert info.value.__cause__ is not None
    # The error behind the path is the one of the failing piece itself, whichever walk.
    assert info.value.__interop_path__ == path  # type: ignore[attr-defined]


@pytest.mark.parametrize("how", ["lists", "dicts", "dataclasses", "registered"])
def test_both_walks_give_the_same_message(how: str) -> None:
    for make, _, error, _ in CASES.values():
        copy = False if error is interop.CopyRequiredError else None
        with pytest.raises(error) as shallow:
            interop.to_numpy_tree(make(), copy=copy)
        deep, above = _wrap(make(), how)
        with pytest.raises(error) as info:
            interop.to_numpy_tree(deep, copy=copy)
        assert str(info.value) == str(shallow.value).replace("tree", f"tree{above}", 1)


@pytest.mark.parametrize("how", ["as it is", "lists", "dicts", "dataclasses", "registered"])
def test_an_error_class_that_wants_more_than_a_message_is_kept(how: str) -> None:
    # UnicodeDecodeError(encoding, object, start, end, reason): the same class as
    # to_numpy raises, its own message, and the path as a note.
    leaf = np.array([b"\xff"])
    with pytest.raises(UnicodeDecodeError) as alone:
        interop.to_numpy(leaf, dtype="U")
    tree, above = _wrap({"s": [leaf]}, how)
    with pytest.raises(UnicodeDecodeError) as info:
        interop.to_numpy_tree(tree, dtype="U")
    path = f"tree{above}['s'][0]"
    assert str(info.value) == str(alone.value)
    assert info.value.__notes__ == [f"at {path}"]
    assert info.value.__interop_path__ == path  # type: ignore[attr-defined]
    assert type(info.value.__cause__) is UnicodeDecodeError


@pytest.mark.parametrize("how", ["as it is", "lists"])
def test_a_tensordict_that_cannot_stack_is_named_by_its_path(how: str) -> None:
    torch = pytest.importorskip("torch")
    tensordict = pytest.importorskip("tensordict")
    ragged = tensordict.LazyStackedTensorDict.lazy_stack(
        [tensordict.TensorDict({"x": torch.ones(2)}), tensordict.TensorDict({"x": torch.ones(3)})]
    )
    tree, above = _wrap({"batch": [ragged]}, how)
    with pytest.raises(RuntimeError) as info:
        interop.to_numpy_tree(tree)
    assert str(info.value).startswith(f"tree{above}['batch'][0]: ")
    assert "stack" in str(info.value) and type(info.value.__cause__) is RuntimeError
