"""100,000 conversions per framework keep the process's memory flat.

For every framework (and every generic protocol), the conversions alternate over
that framework's cases from ``tests/support/cases.py`` and over the zero-copy and the copy
path (``copy=None``, ``copy=True``), with a fresh input every ``FRESH_EVERY``
conversions so that anything holding on to inputs would grow too. After a
warm-up (first-use caches, allocator pools), the resident set size may grow by at
most ``RSS_BOUND`` (native memory: a buffer of ~100 bytes kept per conversion
exceeds it) and the number of memory blocks Python's allocator holds by at most
``BLOCK_BOUND`` (``sys.getallocatedblocks()``: one small object of any kind kept
per conversion exceeds it fifty times over).
"""

from __future__ import annotations

import gc
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import interop
from tests.support.cases import OPERATIONS, Case, cases

CONVERSIONS = 100_000
WARMUP = 3_000
FRESH_EVERY = 8
RSS_BOUND = 8 * 2**20  # bytes
BLOCK_BOUND = 2_000

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else resource.getpagesize()


def rss() -> int:
    """The resident set size of this process, in bytes (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def _group(case: Case) -> str:
    """The framework or protocol a case exercises."""
    if case.name.startswith("dlpack"):
        return "dlpack"
    if case.name in ("array.array", "bytearray"):
        return "buffer"
    if case.name.startswith(("list", "python")):
        return "python"
    return case.module


GROUPS: dict[str, list[Case]] = {}
for _case in cases():
    GROUPS.setdefault(_group(_case), []).append(_case)


class _Hostile:
    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        raise RuntimeError("broken __array__")


def _error_stream() -> list[tuple[Callable[[], Any], dict[str, Any], type[Exception]]]:
    """Conversions that fail, each with its documented exception (chained causes too)."""
    return [
        (lambda: {"a": 1}, {}, interop.UnsupportedTypeError),
        (lambda: np.float64(1.0), {"copy": False}, interop.CopyRequiredError),
        (_Hostile, {}, interop.ConversionError),
        (lambda: [[1], [1, 2]], {}, interop.ConversionError),
        (lambda: [1, None], {}, interop.ConversionError),
    ]


def _measure(step: Callable[[int], None]) -> tuple[int, int, float]:
    for i in range(WARMUP):
        step(i)
    gc.collect()
    rss0, blocks0 = rss(), sys.getallocatedblocks()
    start = time.perf_counter()
    for i in range(CONVERSIONS):
        step(i)
    elapsed = time.perf_counter() - start
    gc.collect()
    return rss() - rss0, sys.getallocatedblocks() - blocks0, elapsed


@pytest.fixture(autouse=True, scope="module")
def _frozen_heap() -> Any:
    # Keeps each gc.collect() to the objects these tests create (see test_lifetimes).
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.mark.slow
@pytest.mark.parametrize("op", OPERATIONS)
@pytest.mark.parametrize("group", sorted(GROUPS))
def test_conversions_do_not_leak(group: str, op: str) -> None:
    convert = OPERATIONS[op]
    group_cases = GROUPS[group]
    inputs = [case.make() for case in group_cases]
    n = len(group_cases)

    def step(i: int) -> None:
        k = i % n
        if i % FRESH_EVERY == 0:
            inputs[k] = group_cases[k].make()
        # Alternate the zero-copy path (copy=None) and the copy path (copy=True).
        out = convert(inputs[k], copy=True) if (i // n) % 2 else convert(inputs[k])
        assert out.shape == group_cases[k].expected.shape

    grown, blocks, elapsed = _measure(step)
    print(f"{group}: {CONVERSIONS} in {elapsed:.1f} s, +{grown / 2**20:.2f} MiB, +{blocks} blocks")
    assert grown < RSS_BOUND, f"{group}: RSS grew by {grown / 2**20:.1f} MiB"
    assert blocks < BLOCK_BOUND, f"{group}: {blocks} more allocated blocks"


@pytest.mark.slow
def test_failed_conversions_do_not_leak() -> None:
    stream = _error_stream()
    made = [(make(), kwargs, exc) for make, kwargs, exc in stream]

    def step(i: int) -> None:
        x, kwargs, exc = made[i % len(made)]
        try:
            interop.to_numpy(x, **kwargs)
        except exc:
            return
        raise AssertionError(f"{x!r} converted")

    grown, blocks, elapsed = _measure(step)
    print(f"errors: {CONVERSIONS} in {elapsed:.1f} s, +{grown / 2**20:.2f} MiB, +{blocks} blocks")
    assert grown < RSS_BOUND, f"RSS grew by {grown / 2**20:.1f} MiB"
    assert blocks < BLOCK_BOUND, f"{blocks} more allocated blocks"


@pytest.mark.slow
def test_classes_made_on_the_fly_are_not_kept() -> None:
    # A namedtuple class per call (as some loaders make): the per-type tables are
    # bounded, so the classes they saw are freed once they are cleared.
    import collections
    import weakref

    torch = pytest.importorskip("torch")
    t = torch.ones(2)
    alive: list[weakref.ref[type]] = []
    for i in range(20_000):
        cls = collections.namedtuple(f"Batch{i}", "x y")  # type: ignore[misc]
        interop.to_numpy_tree(cls(t, [t]))
        interop.to_numpy(cls(1.0, 2.0))
        alive.append(weakref.ref(cls))
        del cls
    gc.collect()
    kept = sum(ref() is not None for ref in alive)
    # At most what the bounded tables hold (a few thousand), never all 20,000.
    assert kept <= 6_200, kept
