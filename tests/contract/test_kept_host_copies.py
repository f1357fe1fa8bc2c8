"""Device data read through a host copy its source keeps (JAX's and TensorFlow's way).

JAX and TensorFlow copy device data to host memory once and keep that copy with the
array for every later reader, read-only. Reading it is the one-copy path; a second
copy (``np.array(jax.device_get(x))``, ``Tensor.numpy()``) doubles the time and the
host memory. The plan of such a read is a copy (``zero_copy`` false: nothing is shared
with the device data) that is read-only, and no entry point may hand a caller a
writable alias of the kept copy, or write into it. Tested on the strict simulated
device, whose arrays made with ``keeps_host_copy=True`` behave so (the real
frameworks on a GPU: tests/frameworks/test_gpu_routes.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

import interop
from tests.support.simdevice import SimArray, SimBackend, registered

DATA = np.arange(12, dtype=np.float32).reshape(3, 4) + 0.25


@pytest.fixture
def simdevice(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimBackend]:
    yield from registered(monkeypatch)


def _kept(name: str = "k", late: bool = True) -> SimArray:
    return SimArray(DATA, name, keeps_host_copy=True, late=late)


def _assert_kept_view(out: np.ndarray, x: SimArray) -> None:
    """``out`` is a read-only view of the host copy ``x`` keeps, which stays intact."""
    np.testing.assert_array_equal(out, DATA)
    assert x.host_copy is not None and out is not x.host_copy
    assert np.shares_memory(out, x.host_copy)
    assert not out.flags.writeable
    np.testing.assert_array_equal(x.host_copy, DATA)


def test_plan_is_a_read_only_copy(simdevice: SimBackend) -> None:
    x = _kept()
    plan = interop.explain(x)
    assert plan.transfer and not plan.zero_copy and plan.readonly
    assert plan.steps == ("to_host", "check")
    assert "read-only" in str(plan)
    with pytest.raises(interop.CopyRequiredError, match="must be copied to host"):
        interop.to_numpy(x, copy=False)
    assert simdevice.log == []  # refused from the plan, before any copy


def test_to_numpy_reads_the_kept_copy_once(simdevice: SimBackend) -> None:
    x = _kept()
    first = interop.to_numpy(x)
    second = interop.to_numpy(x)
    _assert_kept_view(first, x)
    _assert_kept_view(second, x)
    # One copy to the host for both reads (a second copy of the device data, or a
    # copy of the kept host copy, would show as a second start or as unshared memory).
    assert simdevice.log.count("start k") == 1
    assert np.shares_memory(first, second)
    assert simdevice.device.errors == []


def test_copy_true_and_casts_give_writable_copies(simdevice: SimBackend) -> None:
    x = _kept()
    plan = interop.explain(x, copy=True)
    assert plan.steps[-1] == "copy" and not plan.readonly
    copied = interop.to_numpy(x, copy=True)
    assert copied.flags.writeable and not np.shares_memory(copied, x.host_copy)
    copied[...] = -1
    wider = interop.to_numpy(x, dtype=np.float64)  # cast on the host, after the copy
    assert wider.flags.writeable and not interop.explain(x, dtype=np.float64).readonly
    wider[...] = -1
    # Narrower: cast on the device; the host copy is a temporary's, and the result
    # is writable without a second copy.
    narrow_plan = interop.explain(x, dtype=np.float16)
    assert narrow_plan.steps[0] == "cast_on_device" and not narrow_plan.readonly
    narrow = interop.to_numpy(x, dtype=np.float16)
    assert narrow.flags.writeable
    np.testing.assert_array_equal(narrow, DATA.astype(np.float16))
    np.testing.assert_array_equal(interop.to_numpy(x), DATA)


def test_tree_leaves_read_the_kept_copies(simdevice: SimBackend) -> None:
    a, b = _kept("a"), _kept("b")
    out = interop.to_numpy_tree({"a": a, "b": [b, a]})
    _assert_kept_view(out["a"], a)
    _assert_kept_view(out["b"][0], b)
    _assert_kept_view(out["b"][1], a)
    # Both copies started before either was waited for, each once.
    log = simdevice.log
    assert log.index("start b") < log.index("wait a")
    assert log.count("start a") == 1 and log.count("start b") == 1
    again = interop.to_numpy_tree({"a": a})
    _assert_kept_view(again["a"], a)
    assert log.count("start a") == 1
    assert simdevice.device.errors == []


def test_pipeline_and_function_arguments_are_read_only(simdevice: SimBackend) -> None:
    xs = [_kept(f"x{i}") for i in range(3)]
    batches = list(interop.iter_numpy(iter(xs), prefetch=1))
    for batch, x in zip(batches, xs, strict=True):
        _assert_kept_view(batch, x)

    seen: list[np.ndarray] = []

    @interop.numpy_function
    def total(a: np.ndarray) -> float:
        seen.append(a)
        return float(a.sum())

    x = _kept("f")
    assert total(x) == pytest.approx(float(DATA.sum()))
    _assert_kept_view(seen[0], x)


def test_convert_to_a_writable_framework_copies_the_kept_copy(simdevice: SimBackend) -> None:
    x = _kept()
    t = interop.convert(x, "torch")
    assert isinstance(t, torch.Tensor)
    np.testing.assert_array_equal(t.numpy(), DATA)
    assert not np.shares_memory(t.numpy(), x.host_copy)
    t += 1  # the caller's tensor is theirs to write
    np.testing.assert_array_equal(x.host_copy, DATA)
    np.testing.assert_array_equal(interop.to_numpy(x), DATA)
    as_numpy = interop.convert(x, "numpy")
    _assert_kept_view(as_numpy, x)
