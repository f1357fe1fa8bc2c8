"""Containers rebuilt whole, and failing leaves named by their path, through every tree walk.

A list or tuple subclass is rebuilt with its own type and keeps its state: its
instance attributes and slots, and a structseq's fields beyond its items
(``os.stat_result.st_mtime_ns``, ``time.struct_time.tm_zone``); a type that
cannot be rebuilt so is refused, never rebuilt with less. A leaf that fails is named
by its path whatever the target, as :func:`interop.to_numpy_tree` names it.

Each behaviour runs through the walks that rebuild containers: the recursive and the
iterative walk of :func:`interop.to_numpy_tree`, and ``map_leaves`` (what
:func:`interop.convert_tree` uses for any target but NumPy).
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import interop
from interop._tree import map_leaves
from interop._tree import walk as tree_walk

Convert = Callable[[Any], Any]


@pytest.fixture(params=["recursive", "iterative", "torch"])
def convert(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Convert:
    """The tree conversions: each walk of ``to_numpy_tree``, and ``convert_tree`` to torch."""
    if request.param == "torch":
        return lambda tree: interop.convert_tree(tree, "torch")
    if request.param == "iterative":
        # As for a tree too deep for the recursive walk.
        monkeypatch.setattr(tree_walk, "_walk_fast", lambda *args: tree_walk._GIVE_UP)
    return interop.to_numpy_tree


def _array_type(convert: Convert) -> type:
    out = convert([np.zeros(1, np.float32)])[0]
    return type(out)


def _hidden(x: Any) -> dict[str, Any]:
    """A structseq's fields beyond its items, as its ``__reduce__`` gives them."""
    fields: dict[str, Any] = x.__reduce__()[1][1]
    return fields


# -- D07: sequence subclasses keep their state ------------------------------------------


@pytest.mark.parametrize(
    "make", [lambda: os.stat("."), time.localtime, time.gmtime], ids=["stat", "localtime", "gmtime"]
)
def test_a_structseq_keeps_the_fields_beyond_its_items(
    convert: Convert, make: Callable[[], Any]
) -> None:
    src = make()
    hidden = dict(_hidden(src))
    assert len(hidden) == type(src).n_fields - type(src).n_sequence_fields > 0
    # Beside a structseq of tensors only (torch.return_types), rebuilt with its arrays.
    maxed = torch.max(torch.arange(6.0).reshape(2, 3), 1)
    out = convert({"s": src, "max": maxed})
    assert type(out["s"]) is type(src)
    assert tuple(out["s"]) == tuple(src)
    kept = _hidden(out["s"])
    assert kept.keys() == hidden.keys()
    for name, value in hidden.items():
        assert kept[name] is value, name
    assert _hidden(src) == hidden  # the source as it was
    assert type(out["max"]) is type(maxed)
    assert isinstance(out["max"].values, _array_type(convert))
    np.testing.assert_array_equal(np.asarray(out["max"].indices), [2, 2])


class NoReduce(tuple):  # type: ignore[type-arg]
    """Says it holds a field beyond its items, but gives no structseq's ``__reduce__``."""

    n_fields = 3
    n_sequence_fields = 2


class DropsHidden(tuple):  # type: ignore[type-arg]
    """A structseq-like tuple whose constructor ignores the fields beyond its items."""

    n_fields = 3
    n_sequence_fields = 2
    hidden: Any = None

    def __new__(cls, items: Any, extra: Any = None) -> DropsHidden:
        return super().__new__(cls, items)

    def __reduce__(self) -> Any:
        return (type(self), (tuple(self), {"hidden": self.hidden}))


def _drops_hidden() -> DropsHidden:
    x = DropsHidden((np.ones(1), 2))
    x.hidden = "kept?"
    return x


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: NoReduce((np.ones(1), 2)), "__reduce__ does not give them"),
        (_drops_hidden, "constructor did not set hidden"),
    ],
    ids=["no-reduce", "drops-hidden"],
)
def test_a_structseq_that_cannot_be_rebuilt_whole_is_refused(
    convert: Convert, make: Callable[[], Any], reason: str
) -> None:
    with pytest.raises(interop.ConversionError, match=r"^tree\['s'\]\[1\]: expected") as info:
        convert({"s": [0, make()]})
    message = str(info.value)
    assert reason in message
    assert "beyond its 2 items" in message
    assert "hint: " in message and "interop.register_container" in message


class Batch(tuple):  # type: ignore[type-arg]
    pass


class Items(list):  # type: ignore[type-arg]
    pass


class Slotted(list):  # type: ignore[type-arg]
    __slots__ = ("split",)


class Counted(list):  # type: ignore[type-arg]
    """Sets an attribute of its own when built: the rebuilt one keeps what it set."""

    def __init__(self, items: Any = ()) -> None:
        super().__init__(items)
        self.built = "by __init__"


class Row(collections.namedtuple("Row", "x y")):
    pass


def _with(x: Any, **attributes: Any) -> Any:
    for name, value in attributes.items():
        setattr(x, name, value)
    return x


SEQUENCES: dict[str, tuple[Callable[[], Any], dict[str, Any]]] = {
    "tuple-subclass": (lambda: _with(Batch([np.ones(2), 3]), split="train"), {"split": "train"}),
    "list-subclass": (lambda: _with(Items([np.ones(2), 3]), split="val"), {"split": "val"}),
    "list-slots": (lambda: _with(Slotted([np.ones(2), 3]), split="test"), {"split": "test"}),
    "namedtuple-subclass": (lambda: _with(Row(np.ones(2), 3), source="db"), {"source": "db"}),
    "init-sets-one": (
        lambda: _with(Counted([np.ones(2), 3]), built="changed", tag="t"),
        {"built": "by __init__", "tag": "t"},
    ),
}


@pytest.mark.parametrize("case", SEQUENCES)
def test_a_sequence_subclass_keeps_its_attributes(convert: Convert, case: str) -> None:
    make, expected = SEQUENCES[case]
    src = make()
    before = {name: getattr(src, name) for name in expected}
    out = convert({"batch": src})["batch"]
    assert type(out) is type(src) and out is not src
    assert isinstance(out[0], _array_type(convert)) and out[1] == 3
    for name, value in expected.items():
        assert getattr(out, name) == value, name
    assert {name: getattr(src, name) for name in expected} == before  # never written into
    assert type(src[0]) is np.ndarray


class Named(list):  # type: ignore[type-arg]
    """A list whose constructor takes a name first: ``Named(items)`` has no items."""

    def __init__(self, name: Any = "", items: Any = ()) -> None:
        super().__init__(items)
        self.name = name


def test_a_sequence_rebuilt_without_its_items_is_refused(convert: Convert) -> None:
    with pytest.raises(interop.ConversionError, match=r"^tree\['x'\]: expected") as info:
        convert({"x": Named("n", [np.ones(1), 2])})
    assert "built a sequence of 0" in str(info.value)
    assert "interop.register_container" in str(info.value)


# -- D10: a failing leaf is named by its path, whatever the target ----------------------


@pytest.mark.parametrize(
    ("tree", "path"),
    [
        ({"params": {"w": np.ones(2, np.float32), "b": np.float32(1)}}, "tree['params']['b']"),
        (
            [np.ones(1, np.float32), (None, Row(np.ones(1, np.float32), np.float32(1)))],
            "tree[1][1].y",
        ),
        (np.float32(1), "tree"),
    ],
    ids=["dict", "namedtuple", "root"],
)
def test_convert_tree_names_the_failing_leaf(tree: Any, path: str) -> None:
    # A NumPy scalar has no memory to share: copy=False fails for it, to any target.
    with pytest.raises(interop.CopyRequiredError) as numpy_info:
        interop.convert_tree(tree, "numpy", copy=False)
    with pytest.raises(interop.CopyRequiredError) as info:
        interop.convert_tree(tree, "torch", copy=False)
    assert type(info.value) is interop.CopyRequiredError
    assert str(info.value).startswith(f"{path}: copy=False")
    assert str(numpy_info.value).startswith(f"{path}: ")  # as to NumPy
    assert type(info.value.__cause__) is interop.CopyRequiredError
    assert info.value.__interop_path__ == path  # type: ignore[attr-defined]


class Foreign(Exception):
    """An error class neither the library's nor a built-in one."""


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (interop.TransferError("no route"), interop.TransferError),
        (KeyError("the leaf's own"), KeyError),
        (Foreign("odd"), interop.ConversionError),
    ],
    ids=["library", "builtin", "foreign"],
)
@pytest.mark.parametrize(
    ("tree", "path"),
    [({"a": [1, "bad"]}, "tree['a'][1]"), ("bad", "tree")],
    ids=["nested", "root"],
)
def test_map_leaves_names_a_leafs_error(
    error: Exception, expected: type, tree: Any, path: str
) -> None:
    def leaf(x: Any) -> Any:
        if x == "bad":
            raise error
        return x

    with pytest.raises(Exception) as info:
        map_leaves(tree, leaf)
    assert type(info.value) is expected
    assert info.value.args[0].startswith(f"{path}: ")
    assert info.value.__cause__ is error


def test_numpy_function_names_a_result_that_cannot_go_back() -> None:
    wide = getattr(np, "complex256", None)
    if wide is None:
        pytest.skip("no complex256 on this platform")

    @interop.numpy_function
    def split(x: Any) -> Any:
        return {"a": [x, np.ones(2, dtype=wide)]}

    with pytest.raises(interop.ConversionError) as info:
        split(torch.ones(2))
    assert str(info.value).startswith("split(): result['a'][1]: expected a dtype PyTorch can hold")
