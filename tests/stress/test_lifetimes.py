"""Zero-copy results outlive their sources; DLPack capsules are consumed exactly once.

A zero-copy result is a view into another library's memory. It must keep that
memory alive by itself: after the source object is deleted and ``gc.collect()``
has run, and after fresh arrays of the same size (which would reuse freed memory)
were allocated and filled with other bytes, the result still reads its own values.
"""

from __future__ import annotations

import array
import ctypes
import gc
from typing import Any

import numpy as np
import pytest

import interop
from tests.support.cases import OPERATIONS, Case, DLPackProducer, cases, same_bits

ZERO_COPY = [c for c in cases() if c.zero_copy and c.native is not None]
JUNK = 0xAB


@pytest.fixture(autouse=True, scope="module")
def _frozen_heap() -> Any:
    # With every framework loaded a full gc.collect() walks ~600,000 objects (about a
    # second); frozen, it walks only what these tests create, sources included.
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


def _churn(module: str, nbytes: int) -> list[Any]:
    """Allocate fresh same-sized buffers in ``module``'s allocator, filled with junk."""
    n = max(nbytes, 1)
    held: list[Any] = [np.full(n, JUNK, np.uint8) for _ in range(16)]
    held += [bytearray([JUNK]) * n for _ in range(16)]
    if module == "torch":
        import torch

        held += [torch.full((n,), JUNK, dtype=torch.uint8) for _ in range(16)]
    elif module == "tensorflow":
        import tensorflow as tf

        held += [tf.fill([n], tf.constant(JUNK, tf.uint8)) for _ in range(16)]
    elif module == "jax":
        import jax.numpy as jnp

        held += [jnp.full((n,), JUNK, dtype=jnp.uint8) for _ in range(16)]
    elif module == "array_api_strict":
        import array_api_strict as xp

        held += [xp.full((n,), JUNK, dtype=xp.uint8) for _ in range(16)]
    return held


@pytest.mark.parametrize("op", OPERATIONS)
@pytest.mark.parametrize("case", ZERO_COPY, ids=lambda c: c.name)
def test_zero_copy_result_outlives_its_source(case: Case, op: str) -> None:
    x = case.make()
    out = OPERATIONS[op](x)
    copied = OPERATIONS[op](x, copy=True)
    assert np.shares_memory(out, case.native(x)), "the case must really be zero-copy"
    nbytes = out.nbytes
    del x
    gc.collect()
    junk = _churn(case.module, nbytes)
    gc.collect()
    assert same_bits(out, case.expected)
    assert same_bits(copied, case.expected)
    del junk


def test_torch_view_keeps_storage_after_the_tensor_and_its_views_die() -> None:
    import torch

    t = torch.arange(1000, dtype=torch.float64)
    view = t[10:20]
    out = interop.to_numpy(view)
    del t, view
    gc.collect()
    _churn("torch", 8000)
    np.testing.assert_array_equal(out, np.arange(10, 20, dtype=np.float64))


@pytest.mark.parametrize("to", ["numpy", "jax", "tensorflow"])
@pytest.mark.parametrize("swap", ["data", "set_"])
@pytest.mark.parametrize("planned", [False, True])
def test_a_torch_alias_keeps_its_storage_when_the_tensor_takes_new_data(
    to: str, swap: str, planned: bool
) -> None:
    # `t.data = ...` (or t.set_(...)) gives the tensor object new storage, and the old
    # one goes unless something holds it: a result that aliases it must, as
    # Tensor.numpy()'s array does. (planned: the route of an options block.)
    import torch

    pytest.importorskip(to)
    for _ in range(10):
        t = torch.full((1024,), 5.0)
        if planned:
            with interop.options(allow_transfer=True):
                out = interop.convert(t, to)
        else:
            out = interop.convert(t, to)
        if swap == "data":
            t.data = torch.zeros(4)
        else:
            t.set_(torch.zeros(4))
        gc.collect()
        _churn("torch", 4096)
        np.testing.assert_array_equal(interop.to_numpy(out), np.full(1024, 5.0, np.float32))


def test_jax_delete_does_not_free_memory_a_result_still_uses() -> None:
    import jax.numpy as jnp

    x = jnp.arange(1000, dtype=jnp.float32)
    out = interop.to_numpy(x)
    x.delete()
    gc.collect()
    _churn("jax", 4000)
    np.testing.assert_array_equal(out, np.arange(1000, dtype=np.float32))
    # The deleted array itself is refused, with the reason.
    with pytest.raises(interop.ConversionError, match="deleted or donated"):
        interop.to_numpy(x)


@pytest.mark.parametrize(
    "make", [bytearray, lambda b: array.array("b", b)], ids=["bytearray", "array"]
)
def test_buffer_cannot_move_while_a_view_exists(make: Any) -> None:
    buf = make(b"\x01\x02\x03\x04")
    out = interop.to_numpy(buf)
    assert np.shares_memory(out, np.frombuffer(buf, np.uint8))
    # The exporter refuses to resize (and so to move) memory a view still reads.
    with pytest.raises(BufferError):
        buf.extend(make(b"\x05") * 4096)
    assert out.tolist() == [1, 2, 3, 4]
    del out
    gc.collect()
    buf.extend(make(b"\x05"))  # the export was released with the view
    assert len(buf) == 5


def _capsule_name(capsule: Any) -> bytes:
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype = ctypes.c_char_p
    get_name.argtypes = [ctypes.py_object]
    return get_name(capsule)  # type: ignore[no-any-return]


def _dlpack_source(name: str) -> Any:
    if name == "torch":
        import torch

        return torch.arange(6.0, dtype=torch.float64)
    return np.arange(6.0)


@pytest.mark.parametrize("copy", [None, True, False])
@pytest.mark.parametrize("name", ["numpy", "torch"])
def test_dlpack_capsule_is_consumed_exactly_once(name: str, copy: bool | None) -> None:
    producer = DLPackProducer(_dlpack_source(name), keep=True)
    out = interop.to_numpy(producer, copy=copy)
    assert producer.calls == 1
    assert producer.capsules is not None and len(producer.capsules) == 1
    # A consumer renames the capsule it took ownership of: consumed, and only once.
    assert _capsule_name(producer.capsules[0]).startswith(b"used_dltensor")
    np.testing.assert_array_equal(out, np.arange(6.0))
    del producer
    gc.collect()
    _churn(name, 48)
    np.testing.assert_array_equal(out, np.arange(6.0))


def test_dlpack_explain_and_refusals_consume_at_most_one_capsule() -> None:
    producer = DLPackProducer(np.arange(6.0), keep=True)
    interop.explain(producer)
    with pytest.raises(interop.CopyRequiredError):
        interop.to_numpy(producer, copy=False, dtype=np.float32)
    # Each call takes at most one capsule and every capsule it took was consumed.
    assert producer.calls <= 2
    assert producer.capsules is not None
    for capsule in producer.capsules:
        assert _capsule_name(capsule).startswith(b"used_dltensor")


AT_EXIT = """
import tensorflow  # (it changes the order in which modules are torn down)
import numpy as np
import interop

open_pass = iter(interop.iter_numpy([np.ones(3), np.ones(3)]))
next(open_pass)
closed_pass = iter(interop.iter_numpy([np.ones(3)]))
closed_pass.close()
"""


@pytest.mark.slow
def test_a_pass_alive_at_interpreter_exit_ends_quietly() -> None:
    import os
    import subprocess
    import sys

    pytest.importorskip("tensorflow")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(
        [sys.executable, "-c", AT_EXIT], capture_output=True, text=True, timeout=300, env=env
    )
    assert out.returncode == 0, out.stderr
    assert "Exception ignored" not in out.stderr and "Traceback" not in out.stderr, out.stderr
