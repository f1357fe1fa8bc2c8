"""Every public entry point gives ``to_numpy``'s answer, for every input of the catalogue.

One catalogue of inputs (``tests.support.cases.catalogue``), each with its expected result
(bits, dtype, shape, writeable flag, memory shared with the source) or the error it
must raise, runs through every way a user reaches a conversion: ``to_numpy``, a leaf
of a dict and of a list in ``to_numpy_tree``, ``convert(x, "numpy")``, an argument of
a ``numpy_function`` and a batch of ``iter_numpy``. Each entry point is called three
times in a row on the same input, so that a cache filled by the first call (a fast
path, a backend found once per type, a framework's own cached NumPy value) cannot
change the answer of the next.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pytest

import interop
from tests.support.cases import Case, catalogue, installed
from tests.support.dtype_sources import INT_FORMATS


def _only(batches: Iterable[Any]) -> Any:
    [batch] = list(batches)
    return batch


def _argument_of_numpy_function(x: Any) -> Any:
    """What a ``numpy_function`` receives for ``x``."""
    received: list[Any] = []

    @interop.numpy_function
    def f(a: Any) -> None:
        received.append(a)

    f(x)
    [argument] = received
    return argument


ENTRY_POINTS: dict[str, Callable[[Any], Any]] = {
    "to_numpy": interop.to_numpy,
    "tree-dict": lambda x: interop.to_numpy_tree({"a": x})["a"],
    "tree-list": lambda x: interop.to_numpy_tree([x])[0],
    "convert": lambda x: interop.convert(x, "numpy"),
    "numpy_function": _argument_of_numpy_function,
    "iter_numpy": lambda x: _only(interop.iter_numpy([x])),
    "iter_numpy-dict": lambda x: _only(interop.iter_numpy([{"a": x}]))["a"],
}

# The kinds of input each entry point converts (see ``Case.kind``): trees, pipelines
# and numpy_function keep Python values as structure, and numpy_function hands
# buffer-protocol objects to the function as they are.
CONVERTS = {
    "to_numpy": {"array", "buffer", "value"},
    "tree-dict": {"array", "buffer"},
    "tree-list": {"array", "buffer"},
    "convert": {"array", "buffer", "value"},
    "numpy_function": {"array"},
    "iter_numpy": {"array", "buffer"},
    "iter_numpy-dict": {"array", "buffer"},
}

CASES = catalogue()
PARAMS = [
    pytest.param(case, entry, id=f"{case.name}-{entry}")
    for case in CASES
    for entry in ENTRY_POINTS
    if case.kind in CONVERTS[entry]
]
CALLS = 3


def _calls(case: Case, op: Callable[[Any], Any]) -> Iterable[tuple[Any, Callable[[], Any]]]:
    """(input, its conversion) ``CALLS`` times: the same input, or one built inside."""
    if case.inside is not None:
        for _ in range(CALLS):
            yield None, lambda: case.inside(op)  # type: ignore[misc]
        return
    assert case.make is not None
    x = case.make()
    for _ in range(CALLS):
        yield x, lambda: op(x)


def _bits(a: np.ndarray) -> Any:
    """The values of ``a`` as bytes; sub-byte formats without the unused high bits."""
    if a.dtype.kind == "O":
        return [(type(v), v) for v in a.ravel().tolist()]
    a = np.ascontiguousarray(a)
    if a.dtype.itemsize not in (1, 2, 4, 8):
        return a.tobytes()
    u = a.view(f"u{a.dtype.itemsize}")
    if a.dtype.name in INT_FORMATS:
        u = u & ((1 << INT_FORMATS[a.dtype.name]) - 1)
    return u.tobytes()


def _differences(result: Any, case: Case, x: Any) -> list[str]:
    """What differs between ``result`` and the answer ``case`` expects."""
    expected = case.expected
    assert expected is not None
    if type(result) is not np.ndarray:
        return [f"a `{type(result).__name__}`, not a NumPy array: {result!r}"]
    found = []
    if result.dtype != expected.dtype:
        found.append(f"dtype {result.dtype}, expected {expected.dtype}")
    if result.shape != expected.shape:
        found.append(f"shape {result.shape}, expected {expected.shape}")
    if not found and _bits(result) != _bits(expected):
        found.append("different bits")
    if result.flags.writeable is not case.writeable:
        found.append(f"writeable={result.flags.writeable}, expected {case.writeable}")
    elif not case.writeable and _made_writable(result):
        found.append("read-only, but NumPy lets it be made writable again")
    if case.native is not None:
        shares = np.shares_memory(result, case.native(x))
        if shares is not case.zero_copy:
            found.append(f"shares memory with the source: {shares}, expected {case.zero_copy}")
    return found


def _made_writable(a: np.ndarray) -> bool:
    """Whether ``setflags(write=True)`` succeeds on a view of ``a`` (which it undoes)."""
    view = a.view()  # (``a`` itself may be a framework's cached array: left alone)
    try:
        view.setflags(write=True)
    except ValueError:
        return False
    return True


def _write(a: np.ndarray) -> None:
    """Change every element of ``a``."""
    if a.dtype.kind == "O":
        a[...] = None
    elif a.dtype.itemsize in (1, 2, 4, 8):
        u = a.view(f"u{a.dtype.itemsize}")
        u[...] = ~u
    else:
        a[...] = 1 + a


@pytest.mark.parametrize(("case", "entry"), PARAMS)
def test_entry_point_gives_the_catalogue_answer(case: Case, entry: str) -> None:
    op = ENTRY_POINTS[entry]
    if case.error is not None:
        for _, call in _calls(case, op):
            with pytest.raises(case.error, match=case.match):
                call()
        return
    results = []
    calls = list(_calls(case, op))
    for i, (x, call) in enumerate(calls):
        result = call()
        found = _differences(result, case, x)
        assert not found, f"call {i + 1} of {CALLS}: " + "; ".join(found)
        results.append(result)
    if case.zero_copy:
        return
    # A copy is new on every call: writing into one changes neither the others nor
    # the next conversion of the same input.
    first, *others = results
    assert not any(np.shares_memory(first, other) for other in others)
    if first.size:
        _write(first)
        for other in [*others, calls[-1][1]()]:
            assert _bits(other) == _bits(case.expected)  # type: ignore[arg-type]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_explain_agrees_with_the_catalogue(case: Case) -> None:
    """``explain`` plans what every entry point does, and refuses what they refuse."""
    for _, call in _calls(case, interop.explain):
        if case.error is not None:
            with pytest.raises(case.error, match=case.match):
                call()
            continue
        plan = call()
        assert plan.zero_copy is case.zero_copy
        assert plan.readonly is (not case.writeable)


# -- Single behaviours the catalogue does not express ---------------------------------


def test_tf_data_dataset_from_a_graph_is_a_conversion_error() -> None:
    if not installed("tensorflow"):
        pytest.skip("tensorflow is not installed")
    import tensorflow as tf

    with tf.Graph().as_default():
        dataset = tf.data.Dataset.range(3)
        with pytest.raises(interop.ConversionError):
            list(interop.iter_numpy(dataset))


def test_misaligned_numpy_array_is_copied_for_torch() -> None:
    if not installed("torch"):
        pytest.skip("torch is not installed")
    x = np.lib.stride_tricks.as_strided(np.arange(3.0), shape=(3,), strides=(3,))
    out = interop.convert(x, "torch")
    assert out.numpy().tobytes() == np.array(x).tobytes()
    assert not np.shares_memory(out.numpy(), x)
    with pytest.raises(interop.CopyRequiredError):
        interop.convert(x, "torch", copy=False)
    assert interop.explain(x, to="torch").zero_copy is False


@pytest.mark.parametrize("kind", ["requires_grad", "parameter"])
def test_writing_through_a_tensor_that_requires_grad_is_impossible(kind: str) -> None:
    if not installed("torch"):
        pytest.skip("torch is not installed")
    import torch

    w = torch.ones(3, requires_grad=True)
    if kind == "parameter":
        w = torch.nn.Parameter(torch.ones(3))
    out = interop.to_numpy(w)
    assert np.shares_memory(out, w.detach().numpy())
    with pytest.raises(ValueError, match="read-only"):
        out[0] = 5.0
    (w * w).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.full(3, 2.0, np.float32))
    np.testing.assert_array_equal(w.detach().numpy(), np.ones(3, np.float32))


def _stacked(op: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``op`` of a list of three of the same input."""
    return lambda x: op([x, x, x])


# Arrays of Python objects (text) are refused inside a list, whose values must be numbers.
LISTED = [
    case
    for case in CASES
    if case.kind == "array" and (case.expected is None or case.expected.dtype.kind != "O")
]


@pytest.mark.parametrize("case", LISTED, ids=lambda case: case.name)
def test_a_list_of_an_input_is_the_stack_of_its_answers(case: Case) -> None:
    # A list is built from its items' answers, whether its items' backend stacks them
    # in one copy (PyTorch) or each is converted by itself: a new, writable array.
    op = _stacked(interop.to_numpy)
    if case.inside is not None:
        calls: list[tuple[Any, Callable[[], Any]]] = [(None, lambda: case.inside(op))]  # type: ignore[misc]
    else:
        assert case.make is not None
        x = case.make()
        calls = [(x, lambda: op(x))] * CALLS
    for x, call in calls:
        if case.error is not None:
            with pytest.raises(case.error, match=case.match):
                call()
            continue
        result = call()
        expected = np.stack([case.expected] * 3)  # type: ignore[list-item]
        assert type(result) is np.ndarray
        assert (result.dtype, result.shape) == (expected.dtype, expected.shape)
        assert _bits(result) == _bits(expected)
        assert result.flags.writeable
        if case.native is not None:
            assert not np.shares_memory(result, case.native(x))
