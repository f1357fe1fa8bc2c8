"""Batched device-to-host copies on the strict simulated device (tests/support/simdevice.py).

Each test names the mistake it catches: a wait on the wrong stream, a wait for more
than the batch (over-waiting), a missing wait, a source released while its copy is
in flight, copies dropped by an interrupted walk, and pinned memory without bound.
The device runs nothing until it is waited for, so each mistake shows every time,
as garbage in a result, copies completed too early in the log, or an entry in
``device.errors``.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest

import interop
from interop import _copies, _transfer
from tests.support.simdevice import SimArray, SimBackend, SimEvent, registered

DATA = np.arange(12, dtype=np.float32).reshape(3, 4) + 0.25


@pytest.fixture
def simdevice(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimBackend]:
    yield from registered(monkeypatch)


# -- the device itself -----------------------------------------------------------------


def test_device_completes_a_copy_only_on_its_own_stream(simdevice: SimBackend) -> None:
    sim = simdevice.device
    with sim.use(sim.stream("s1")):
        x = SimArray(DATA, "x", late=True)
    copy = simdevice.start_copy(x, 1 << 20)
    assert np.isnan(copy.result).all()  # read before any wait: garbage
    sim.default.synchronize()  # another stream: completes nothing on s1
    assert np.isnan(copy.result).all() and sim.in_flight() == ["x"]
    copy.done.synchronize()
    np.testing.assert_array_equal(copy.result, DATA)
    assert sim.in_flight() == [] and sim.trace() == ["start x", "sync s0", "wait x"]


def test_device_event_completes_only_what_precedes_it(simdevice: SimBackend) -> None:
    sim = simdevice.device
    first = simdevice.start_copy(SimArray(DATA, "a"), 1 << 20)
    second = simdevice.start_copy(SimArray(DATA + 1, "b"), 1 << 20)
    first.done.synchronize()
    np.testing.assert_array_equal(first.result, DATA)
    assert np.isnan(second.result).all() and sim.in_flight() == ["b"]
    assert not second.done.query()
    second.done.synchronize()
    assert second.done.query()


def test_device_detects_a_source_freed_in_flight(simdevice: SimBackend) -> None:
    sim = simdevice.device
    copy = simdevice.start_copy(SimArray(DATA, "t", late=True), 1 << 20)
    done = copy.done
    del copy  # nothing holds the array now
    gc.collect()
    done.synchronize()
    assert sim.errors == ["the copy t read memory freed while it was in flight"]


# -- the library on it ---------------------------------------------------------------


def test_each_copy_is_waited_for_on_its_own_stream(simdevice: SimBackend) -> None:
    """Wrong-stream sync: a tree whose leaves' copies run on three streams (three devices).

    Waiting on one stream (the current one, the first met, the default) leaves the
    copies on the others unrun, their leaves garbage; waiting on each copy's own
    event completes exactly that copy.
    """
    sim = simdevice.device
    tree: dict[str, Any] = {}
    for i in range(3):
        with sim.use(sim.stream(f"s{i + 1}")):
            tree[f"x{i}"] = [SimArray(DATA + i, f"x{i}", late=True)]
    out = interop.to_numpy_tree(tree)
    for i in range(3):
        np.testing.assert_array_equal(out[f"x{i}"][0], DATA + i)
    trace = sim.trace()
    assert trace == ["start x0", "start x1", "start x2", "wait x0", "wait x1", "wait x2"]
    assert sim.in_flight() == [] and sim.errors == []


def test_a_stream_sync_elsewhere_is_no_wait(simdevice: SimBackend) -> None:
    sim = simdevice.device
    with sim.use(sim.stream("s1")):
        x = SimArray(DATA, "x", late=True)
    started = interop._tree.start([x], interop.Options())
    sim.default.synchronize()
    assert sim.in_flight() == ["x"]
    np.testing.assert_array_equal(started.result()[0], DATA)


def test_prefetch_waits_only_for_the_batch_handed_out(simdevice: SimBackend) -> None:
    """Over-waiting: handing out batch k must not complete the copies of k+1, k+2.

    A ``stream.synchronize()`` per batch (the earlier design) runs every copy queued
    on the stream, the prefetched ones included, so no copy would remain in flight
    here and the prefetch could never overlap with the consumer's work.
    """
    sim = simdevice.device
    batches = [{"x": SimArray(DATA + i, str(i), late=True), "i": i} for i in range(5)]
    it = iter(interop.iter_numpy(batches, prefetch=2))
    for i in range(5):
        batch = next(it)
        np.testing.assert_array_equal(batch["x"], DATA + i)
        assert sim.in_flight() == [str(k) for k in range(i + 1, min(i + 3, 5))]
    assert sim.trace() == [
        "start 0",
        "start 1",
        "start 2",
        "wait 0",
        "start 3",
        "wait 1",
        "start 4",
        "wait 2",
        "wait 3",
        "wait 4",
    ]


def test_every_batch_is_complete_when_handed_out(simdevice: SimBackend) -> None:
    """A missing wait: any result read before its copy landed is garbage (NaN) here."""
    batches = [
        (SimArray(DATA + i, str(i), late=True), [SimArray(-DATA, f"n{i}")]) for i in range(4)
    ]
    for i, (x, (n,)) in enumerate(interop.iter_numpy(batches, prefetch=3)):
        np.testing.assert_array_equal(x, DATA + i)
        np.testing.assert_array_equal(n, -DATA)
    out = interop.to_numpy_tree({"a": SimArray(DATA, "a", late=True), "b": [SimArray(DATA, "b")]})
    np.testing.assert_array_equal(out["a"], DATA)
    np.testing.assert_array_equal(out["b"][0], DATA)


def test_numpy_function_gets_complete_arguments(simdevice: SimBackend) -> None:
    @interop.numpy_function
    def total(a: np.ndarray, pair: tuple[np.ndarray, np.ndarray]) -> float:
        return float(a.sum() + pair[0].sum() + pair[1].sum())

    a = SimArray(DATA, "a", late=True)
    pair = (SimArray(DATA, "b", late=True), SimArray(DATA, "c", late=True))
    assert total(a, pair) == 3 * float(DATA.sum())


def test_cast_on_device_temporary_lives_until_its_copy_lands(simdevice: SimBackend) -> None:
    """A lifetime bug: the cast's result is read by the copy and by nothing else.

    The pending copy must hold it until the copy is complete. Keeping only the host
    buffer (as the earlier design did) frees the temporary as soon as the copy is
    queued: the device reads freed memory, recorded in ``device.errors``, and the
    result is garbage.
    """
    sim = simdevice.device
    tree = {"a": SimArray(DATA, "a", late=True), "b": [SimArray(DATA + 1, "b")]}
    out = interop.to_numpy_tree(tree, dtype=np.float16)
    assert sim.errors == []
    np.testing.assert_array_equal(out["a"], DATA.astype(np.float16))
    np.testing.assert_array_equal(out["b"][0], (DATA + 1).astype(np.float16))
    # The temporaries were freed once their copies had landed, not before.
    log = sim.log
    assert log.index("done a:cast") < log.index("free a:cast")
    assert log.index("done b:cast") < log.index("free b:cast")


def test_prefetched_sources_live_until_their_copies_land(simdevice: SimBackend) -> None:
    """The source iterator drops each batch once taken: the pending copies hold them."""
    sim = simdevice.device

    def batches() -> Iterator[Any]:
        for i in range(4):
            yield SimArray(DATA + i, str(i), late=True)

    got = list(interop.iter_numpy(batches(), prefetch=2, dtype=np.float16))
    for i, x in enumerate(got):
        np.testing.assert_array_equal(x, (DATA + i).astype(np.float16))
    assert sim.errors == []


def test_interrupted_walk_waits_for_the_copies_it_started(simdevice: SimBackend) -> None:
    """Ctrl-C during a walk: the copies already started land before they are dropped.

    ``except Exception`` does not catch ``KeyboardInterrupt``: a walk that cancels its
    batch only there leaves the copy of ``a`` in flight, its pinned buffer and its
    source released under it (CuPy's pool may hand the buffer out again).
    """
    sim = simdevice.device
    tree = [SimArray(DATA, "a", late=True), SimArray(DATA, "b", interrupt=True)]
    with pytest.raises(KeyboardInterrupt):
        interop.to_numpy_tree(tree)
    assert sim.in_flight() == [] and sim.errors == []
    assert sim.trace() == ["start a", "wait a"]
    gc.collect()
    assert sim.pinned == 0


def test_error_in_a_later_leaf_waits_for_the_copies_started(simdevice: SimBackend) -> None:
    sim = simdevice.device
    torch = pytest.importorskip("torch")
    tree = [SimArray(DATA, "a", late=True), {"m": torch.empty(1, device="meta")}]
    with pytest.raises(interop.ConversionError, match=r"^tree\[1\]\['m'\]: "):
        interop.to_numpy_tree(tree, dtype=np.float16)
    assert sim.in_flight() == [] and sim.errors == []


def test_closing_a_pipeline_waits_and_releases(simdevice: SimBackend) -> None:
    sim = simdevice.device
    batches = [SimArray(DATA + i, str(i), late=True) for i in range(6)]
    it = iter(interop.iter_numpy(batches, prefetch=3, dtype=np.float16))
    next(it)
    assert sim.in_flight() == ["1:cast", "2:cast", "3:cast"]
    it.close()
    assert sim.in_flight() == [] and sim.errors == []
    gc.collect()
    assert sim.pinned == 0


# -- pinned memory -------------------------------------------------------------------


def test_pinned_memory_is_bounded_and_large_leaves_are_staged(
    simdevice: SimBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pinned memory without bound: every leaf in its own pinned buffer pins the tree.

    With a bound of 1,000 bytes, small leaves fill it and the rest are staged
    through one reused buffer (two halves of 64 bytes) into pageable memory, which
    no result shares.
    """
    monkeypatch.setattr(_transfer, "PINNED_BATCH_BYTES", 1000)
    sim = simdevice.device
    small = [SimArray(np.full(24, i, dtype=np.float64), f"s{i}") for i in range(6)]  # 192 B
    large = [
        SimArray(np.arange(1000, dtype=np.int32).reshape(10, 100) * (i + 1), f"L{i}", late=True)
        for i in range(3)
    ]
    odd = SimArray(np.arange(77, dtype=np.uint8), "odd")  # not a whole number of chunks
    tree = {"small": small, "large": large, "odd": odd, "scalar": SimArray(np.float64(2.5), "z")}
    before_total = sum(x.nbytes for x in [*small, *large, odd])
    out = interop.to_numpy_tree(tree)
    for i, got in enumerate(out["small"]):
        np.testing.assert_array_equal(got, np.full(24, i, dtype=np.float64))
    for i, got in enumerate(out["large"]):
        np.testing.assert_array_equal(
            got, np.arange(1000, dtype=np.int32).reshape(10, 100) * (i + 1)
        )
        assert got.dtype == np.int32 and got.shape == (10, 100)
    np.testing.assert_array_equal(out["odd"], np.arange(77, dtype=np.uint8))
    assert out["scalar"].shape == () and out["scalar"] == 2.5
    assert sim.errors == [] and sim.in_flight() == []
    # At most the bound in results, plus the staging buffer, ever pinned at once.
    assert sim.peak <= 1000 + 2 * 64 < before_total
    staged = [*out["large"], out["odd"]]
    for got in staged:
        for buffer in sim.pinned_buffers.values():
            assert not np.shares_memory(got, buffer)
    # Results are the caller's own: writing one changes no other.
    out["large"][0][...] = -1
    np.testing.assert_array_equal(out["large"][1], np.arange(1000).reshape(10, 100) * 2)
    # The staging buffer went back once the batch was complete.
    gc.collect()
    # What stays pinned is the results that fit: five small leaves (the sixth no
    # longer did) and the scalar, met after the large ones while 40 bytes were left.
    assert sim.pinned == 5 * 192 + 8
    assert not any(np.shares_memory(out["small"][5], b) for b in sim.pinned_buffers.values())


def test_staged_copies_run_at_the_wait_after_every_pinned_copy_started(
    simdevice: SimBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_transfer, "PINNED_BATCH_BYTES", 100)
    sim = simdevice.device
    tree = [SimArray(np.arange(200, dtype=np.uint8), "big"), SimArray(np.arange(10.0), "s")]
    out = interop.to_numpy_tree(tree)
    np.testing.assert_array_equal(out[0], np.arange(200, dtype=np.uint8))
    np.testing.assert_array_equal(out[1], np.arange(10.0))
    trace = sim.trace()
    assert trace[:2] == ["start big", "start s"]
    # Four chunks of at most 64 bytes through two halves, after both copies started.
    assert trace[2:] == [
        "wait big[0:64]",
        "wait big[64:128]",
        "wait big[128:192]",
        "wait big[192:200]",
        "wait s",
    ]


def test_cancelled_staged_copy_never_runs(
    simdevice: SimBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_transfer, "PINNED_BATCH_BYTES", 10)
    sim = simdevice.device
    batches = [SimArray(np.arange(100, dtype=np.uint8) + i, str(i)) for i in range(4)]
    it = iter(interop.iter_numpy(batches, prefetch=2))
    np.testing.assert_array_equal(next(it), np.arange(100, dtype=np.uint8))
    it.close()
    # Batches 1 and 2 were prefetched; their staged copies had nothing in flight.
    assert not any(e.startswith(("wait 1", "wait 2")) for e in sim.trace())
    gc.collect()
    assert sim.pinned == 0


def test_interrupted_staged_copy_lets_its_chunks_land(simdevice: SimBackend) -> None:
    sim = simdevice.device
    source = SimArray(np.arange(300, dtype=np.uint8), "x")
    copy = simdevice.start_copy(source, 0)
    staged = copy.done
    assert isinstance(staged, _copies.Staged) and copy.deferred
    calls = []
    read = staged.read_chunk

    def interrupted(half: int, n: int) -> np.ndarray:
        calls.append(half)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return read(half, n)

    staged.read_chunk = interrupted
    with pytest.raises(KeyboardInterrupt):
        staged.synchronize()
    # The chunk queued into the other half landed before the buffer could go.
    assert sim.in_flight() == []


def test_start_copy_contract_of_the_base_class() -> None:
    assert interop.Backend().start_copy(object(), 1 << 20) is None
    copy = _copies.Copy("result", 1, SimEvent("e"), "source")
    assert copy.pinned == 0 and copy.deferred is False


class Interrupting(Mapping[str, Any]):
    """A mapping whose iteration is interrupted (Ctrl-C) after its first key."""

    def __init__(self, first: Any) -> None:
        self.first = first

    def __getitem__(self, key: str) -> Any:
        return self.first

    def __len__(self) -> int:
        return 2

    def __iter__(self) -> Iterator[str]:
        yield "first"
        raise KeyboardInterrupt


def test_walk_interrupted_inside_a_container_waits(simdevice: SimBackend) -> None:
    sim = simdevice.device
    tree = [SimArray(DATA, "a", late=True), Interrupting(SimArray(DATA, "b", late=True))]
    with pytest.raises(KeyboardInterrupt):
        interop.to_numpy_tree(tree)
    assert sim.trace() == ["start a", "start b", "wait a", "wait b"]
    assert sim.in_flight() == [] and sim.errors == []
