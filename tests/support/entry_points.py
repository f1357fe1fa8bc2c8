"""Every public entry point that converts one array, as a function of that array.

A behaviour of a conversion holds at every entry point or it does not hold: each
function here takes an array and returns what its entry point hands out for it
under the default options (``to_numpy``; a leaf of ``to_numpy_tree``, in a dict and
a list; ``convert(x, "numpy")``; the argument a ``numpy_function`` receives; a batch
of ``iter_numpy``). :func:`results` calls each one several times in a row, because
the first call of a kind of array takes the planned path and the later ones the
host view, and both must agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import interop


def _via_function(x: Any) -> Any:
    received: list[Any] = []

    @interop.numpy_function
    def record(a: Any) -> None:
        received.append(a)

    record(x)
    return received[0]


ENTRY_POINTS: dict[str, Callable[[Any], Any]] = {
    "to_numpy": interop.to_numpy,
    "to_numpy_tree": lambda x: interop.to_numpy_tree({"a": [x]})["a"][0],
    "convert": lambda x: interop.convert(x, "numpy"),
    "numpy_function": _via_function,
    "iter_numpy": lambda x: next(iter(interop.iter_numpy([x]))),
}


def results(make: Callable[[], Any], calls: int = 3) -> list[tuple[str, Any, Any]]:
    """``(entry point, input, result)`` for ``calls`` calls in a row of each entry point.

    Each entry point gets an input of its own from ``make``, converted ``calls``
    times; the inputs are returned too, so that the caller can check aliasing.
    """
    out = []
    for name, entry in ENTRY_POINTS.items():
        x = make()
        out.extend((f"{name} (call {i + 1})", x, entry(x)) for i in range(calls))
    return out


def assert_raises_everywhere(
    make: Callable[[], Any], error: type[Exception], *fragments: str, calls: int = 3
) -> None:
    """Every entry point raises ``error``, with every one of ``fragments``, every call."""
    for name, entry in ENTRY_POINTS.items():
        x = make()
        for i in range(calls):
            with pytest.raises(error) as info:
                entry(x)
            for fragment in fragments:
                assert fragment in str(info.value), f"{name} (call {i + 1}): {info.value}"


def assert_sealed(a: np.ndarray) -> None:
    """``a`` is read-only for good: neither a write nor setting the flag back works."""
    assert not a.flags.writeable
    with pytest.raises(ValueError):
        a.flags.writeable = True
    with pytest.raises(ValueError):
        a[...] = 0
