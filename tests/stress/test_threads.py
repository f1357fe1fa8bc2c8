"""Eight threads converting a mixed stream of every installed framework's inputs at once.

Each thread converts every case of ``tests/support/cases.py`` in its own random order, for
a bounded number of passes, inside its own :func:`interop.options` block (one
thread per setting below), and checks every result exactly: values bit for bit,
dtype, and the memory it may or must not share. A thread whose options leaked into
another would make that other thread's sharing or dtype checks fail.

The main test runs in a fresh process that has imported every framework but never
called :mod:`interop`, released by a :class:`threading.Barrier`, so that the first
conversion of every type (building the backend list, loading each backend, filling
the dispatch cache) also happens concurrently. The same run, repeated in the test
process, covers the steady state. Run ``python -m tests.stress.test_threads`` to do the
fresh-process run by hand.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import traceback
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import interop
from tests.support.cases import OPERATIONS, Case, cases, expected_under, installed, same_bits

THREADS = 8
# Passes over the whole catalogue per thread; each pass converts every case once.
PASSES = 100
ROOT = Path(__file__).resolve().parents[2]

# One setting per thread: (outer options block, inner options block, call keywords).
SETTINGS: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    ({}, {}, {}),
    ({"copy": True}, {}, {}),
    ({"copy": False}, {}, {}),
    ({"dtype": np.complex128}, {}, {}),
    ({"upcast": True}, {}, {}),
    ({"copy": True}, {"upcast": True}, {}),
    ({"copy": False}, {}, {"copy": True}),
    ({"dtype": np.float64}, {}, {"dtype": np.complex64}),
]
assert len(SETTINGS) == THREADS


def effective(setting: tuple[dict[str, Any], dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
    """The options a conversion runs under: inner blocks, then call keywords, win."""
    merged = {"copy": None, "dtype": None, "upcast": False}
    for layer in setting:
        merged.update(layer)
    return merged


def check(
    case: Case, x: Any, result: Any, error: BaseException | None, eff: dict[str, Any]
) -> None:
    """Assert that converting ``x`` under ``eff`` gave what the contract says."""
    expected = expected_under(case, dtype=eff["dtype"], upcast=eff["upcast"])
    changes_dtype = expected.dtype != case.expected.dtype
    if eff["copy"] is False and (not case.zero_copy or changes_dtype):
        assert isinstance(error, interop.CopyRequiredError), f"{case.name}: got {error!r}"
        return
    assert error is None, f"{case.name} under {eff}: {error!r}"
    assert same_bits(result, expected), f"{case.name} under {eff}: {result!r} != {expected!r}"
    if case.native is None:
        return
    shares = np.shares_memory(result, case.native(x))
    if eff["copy"] is True or changes_dtype or not case.zero_copy:
        assert not shares, f"{case.name} under {eff}: the result shares the input's memory"
        assert result.flags.writeable, f"{case.name} under {eff}: a copy must be writable"
    else:
        assert shares, f"{case.name} under {eff}: expected a zero-copy view"
        if isinstance(x, np.ndarray):
            assert result is x, f"{case.name}: a NumPy array must come back as itself"


def _convert(op: Any, x: Any, call: dict[str, Any]) -> tuple[Any, BaseException | None]:
    try:
        return op(x, **call), None
    except interop.InteropError as exc:
        return None, exc


def worker(
    index: int,
    barrier: threading.Barrier,
    shared: dict[str, Any],
    all_cases: list[Case],
    passes: int,
    failures: list[str],
    counts: list[int],
) -> None:
    outer, inner, call = setting = SETTINGS[index]
    eff = effective(setting)
    block = effective((outer, inner, {}))
    # Casting a signalling NaN sets the invalid flag and NumPy warns, as its own
    # astype does; threads that cast ignore that flag (np.errstate is per thread).
    quiet = np.errstate(invalid="ignore") if eff["dtype"] is not None else nullcontext()
    rng = random.Random(index)
    order = list(all_cases)
    done = 0
    barrier.wait()
    try:
        with quiet:
            for i in range(passes):
                rng.shuffle(order)
                for case in order:
                    # Mostly the inputs every thread converts at once, sometimes a fresh one.
                    x = case.make() if (i + index) % 4 == 0 else shared[case.name]
                    for op in OPERATIONS.values():
                        with interop.options(**outer), interop.options(**inner) as active:
                            assert (active.copy, active.upcast) == (block["copy"], block["upcast"])
                            result, error = _convert(op, x, call)
                        check(case, x, result, error, eff)
                        done += 1
                    if index == THREADS - 1:
                        # explain() describes exactly what the same call does.
                        with interop.options(**outer), interop.options(**inner):
                            plan = interop.explain(x, **call)
                        want = expected_under(case, dtype=eff["dtype"], upcast=eff["upcast"])
                        same_dtype = want.dtype == case.expected.dtype
                        zero_copy = case.zero_copy and same_dtype and eff["copy"] is not True
                        assert plan.zero_copy is zero_copy, (case.name, plan)
                # Outside every block, this thread is back on the defaults.
                with interop.options() as active:
                    assert active == interop.Options(), active
    except BaseException:
        failures.append(f"thread {index} {setting}:\n{traceback.format_exc()}")
    counts[index] = done


def run(passes: int = PASSES) -> dict[str, Any]:
    """Run the threads; return what they did (failures listed, never raised)."""
    all_cases = cases()
    shared = {case.name: case.make() for case in all_cases}
    barrier = threading.Barrier(THREADS)
    failures: list[str] = []
    counts = [0] * THREADS
    threads = [
        threading.Thread(
            target=worker, args=(i, barrier, shared, all_cases, passes, failures, counts)
        )
        for i in range(THREADS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    return {
        "threads": THREADS,
        "passes": passes,
        "cases": [c.name for c in all_cases],
        "conversions": sum(counts),
        "alive": sum(t.is_alive() for t in threads),
        "failures": failures,
    }


def _import_frameworks() -> list[str]:
    names = ["torch", "tensorflow", "jax", "jax.numpy", "array_api_strict", "ml_dtypes"]
    found = [n for n in names if installed(n.split(".")[0])]
    for name in found:
        __import__(name)
    return found


def main() -> int:
    """The fresh-process run: import the frameworks, never convert, then race."""
    passes = int(sys.argv[1]) if len(sys.argv) > 1 else PASSES
    imported = _import_frameworks()
    from interop import _registry

    # Nothing converted yet: the backend list is not even built.
    fresh = not _registry._frameworks and not _registry._cache
    report = run(passes)
    names = [b.name for b in interop.backends()]
    loaded = sorted(b.name for b in interop.backends() if b.loaded)
    print(
        json.dumps(
            {**report, "fresh": fresh, "imported": imported, "loaded": loaded, "backends": names}
        )
    )
    return 0 if fresh and not report["failures"] and not report["alive"] else 1


@pytest.mark.slow
def test_threads_from_a_fresh_process() -> None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-m", "tests.stress.test_threads", str(PASSES)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["fresh"], "the subprocess converted something before the threads started"
    assert report["failures"] == [] and report["alive"] == 0
    n_cases = len(report["cases"])
    assert report["conversions"] == THREADS * PASSES * n_cases * len(OPERATIONS)
    # The racing threads built the backend list once (no backend twice) and loaded
    # every backend themselves.
    assert len(report["backends"]) == len(set(report["backends"])), report["backends"]
    for name in ("numpy", "torch", "tensorflow", "jax", "array_api", "dlpack", "python"):
        assert name in report["loaded"], report["loaded"]


@pytest.mark.slow
def test_threads_steady_state() -> None:
    report = run(passes=PASSES // 4)
    assert report["failures"] == [], "\n".join(report["failures"])
    assert report["alive"] == 0
    assert report["conversions"] == THREADS * (PASSES // 4) * len(cases()) * len(OPERATIONS)


def test_options_blocks_do_not_leak_into_other_threads() -> None:
    # One thread holds copy=True open while another converts: the other sees defaults.
    inside, release = threading.Event(), threading.Event()
    a = np.arange(3.0)
    seen: list[Any] = []

    def holder() -> None:
        with interop.options(copy=True, dtype=np.float32):
            inside.set()
            release.wait(10)
            seen.append(interop.to_numpy(a))

    t = threading.Thread(target=holder)
    t.start()
    assert inside.wait(10)
    try:
        assert interop.to_numpy(a) is a
        with interop.options() as active:
            assert active == interop.Options()
    finally:
        release.set()
        t.join(10)
    assert seen[0].dtype == np.float32 and not np.shares_memory(seen[0], a)


if __name__ == "__main__":
    sys.exit(main())


class _Node:
    """A container known to the tree functions through ``register_container`` only."""

    def __init__(self, *children: Any) -> None:
        self.children = list(children)


def _register_node() -> None:
    interop.register_container(_Node, lambda n: (n.children, None), lambda _, c: _Node(*c))


def test_registering_a_type_again_while_trees_of_it_are_walked() -> None:
    # Registering a type again used to drop the node functions recorded for it, which
    # a walk in another thread that had already classified the type then looked up
    # and did not find: a KeyError out of to_numpy_tree.
    from interop._tree import containers

    _register_node()
    tree = [_Node(np.float32(i), _Node(np.arange(2))) for i in range(200)]
    stop = threading.Event()

    def register_again() -> None:
        while not stop.is_set():
            _register_node()

    thread = threading.Thread(target=register_again)
    thread.start()
    try:
        for _ in range(100):
            out = interop.to_numpy_tree(tree)
            assert type(out[7]) is _Node and out[7].children[0] == np.float32(7)
            assert type(out[7].children[1].children[0]) is np.ndarray
    finally:
        stop.set()
        thread.join()
        containers._registered.pop(_Node)
        containers.kinds.pop(_Node, None)
