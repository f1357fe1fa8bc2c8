"""``iter_numpy``: loaders, datasets, generators; prefetch, early close, re-iteration."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pytest

import interop
from tests.conftest import Framework
from tests.support.simdevice import SimArray, SimBackend, registered

DATA = np.arange(12, dtype=np.float32).reshape(6, 2)


class Source:
    """A re-iterable source that records what was taken from it and what was closed."""

    def __init__(self, items: list[Any], fail_at: int | None = None) -> None:
        self.items = items
        self.fail_at = fail_at
        self.taken = 0
        self.closed = 0
        self.passes = 0

    def __iter__(self) -> Iterator[Any]:
        self.passes += 1
        return self._gen()

    def _gen(self) -> Iterator[Any]:
        try:
            for i, item in enumerate(self.items):
                if i == self.fail_at:
                    raise OSError(f"cannot read item {i}")
                self.taken += 1
                yield item
        finally:
            self.closed += 1

    def __len__(self) -> int:
        return len(self.items)


def test_list_source_has_length_and_iterates_again(fw: Framework) -> None:
    batches = [(fw.make(DATA[i : i + 2]), i) for i in range(0, 6, 2)]
    it = interop.iter_numpy(batches)
    assert len(it) == 3
    for _ in range(2):
        got = list(it)
        assert len(got) == 3
        for (x, label), (src, i) in zip(got, batches, strict=True):
            assert type(x) is np.ndarray and label == i
            np.testing.assert_array_equal(x, DATA[i : i + 2])
            assert np.shares_memory(x, fw.native(src))


def test_generator_of_jax_arrays_is_one_shot() -> None:
    jnp = pytest.importorskip("jax.numpy")

    def gen() -> Iterator[dict[str, Any]]:
        for i in range(3):
            yield {"x": jnp.full((2,), i), "step": i}

    it = interop.iter_numpy(gen())
    with pytest.raises(TypeError, match="expected a source with a length, got `generator`"):
        len(it)
    got = list(it)
    assert [b["step"] for b in got] == [0, 1, 2]
    for b in got:
        assert type(b["x"]) is np.ndarray and not b["x"].flags.writeable
        np.testing.assert_array_equal(b["x"], [b["step"]] * 2)
    assert list(it) == []


def test_torch_dataloader() -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, TensorDataset

    dataset = TensorDataset(torch.arange(10.0).reshape(5, 2), torch.arange(5))
    loader = DataLoader(dataset, batch_size=2)
    it = interop.iter_numpy(loader, prefetch=2)
    assert len(it) == len(loader) == 3
    first = list(it)
    second = list(it)
    assert len(first) == len(second) == 3
    for (x, y), (tx, ty) in zip(first, loader, strict=True):
        assert type(x) is np.ndarray and type(y) is np.ndarray
        np.testing.assert_array_equal(x, tx.numpy())
        np.testing.assert_array_equal(y, ty.numpy())
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a[0], b[0])


def test_dataloader_iterator_is_released_on_break() -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    loader = DataLoader(torch.arange(20.0), batch_size=2)
    iterators: list[weakref.ref[Any]] = []

    class Tracked:
        def __iter__(self) -> Iterator[Any]:
            inner = iter(loader)
            iterators.append(weakref.ref(inner))
            return inner

    for batch in interop.iter_numpy(Tracked(), prefetch=3):
        assert type(batch) is np.ndarray
        break
    gc.collect()
    assert len(iterators) == 1 and iterators[0]() is None


def test_tf_data_dataset_like_as_numpy() -> None:
    tf = pytest.importorskip("tensorflow")
    dataset = tf.data.Dataset.from_tensor_slices(
        {"x": DATA, "label": np.arange(6), "name": [b"a", b"b", b"c", b"d", b"e", b"f"]}
    ).batch(4)
    it = interop.iter_numpy(dataset)
    assert len(it) == 2
    passes = [list(it), list(it)]
    for got in passes:
        assert [b["label"].tolist() for b in got] == [[0, 1, 2, 3], [4, 5]]
        np.testing.assert_array_equal(got[0]["x"], DATA[:4])
        assert got[0]["x"].dtype == np.float32 and not got[0]["x"].flags.writeable
        assert list(got[1]["name"]) == [b"e", b"f"]
    # The same values tfds.as_numpy gives: the tensors' own NumPy values.
    for ours, theirs in zip(passes[0], dataset, strict=True):
        for key in ("x", "label"):
            np.testing.assert_array_equal(ours[key], theirs[key].numpy())


def test_host_batches_are_not_pulled_ahead() -> None:
    # Host data has no copy to overlap: the source is asked for a batch only once the
    # one before it was handed out, whatever the prefetch.
    source = Source([np.full(2, i) for i in range(6)])
    for prefetch, expected in [(0, [1, 2, 3]), (1, [1, 2, 3]), (3, [1, 2, 3])]:
        source.taken = 0
        it = iter(interop.iter_numpy(source, prefetch=prefetch))
        assert source.taken == 0
        seen = []
        for _ in range(3):
            np.testing.assert_array_equal(next(it), np.full(2, len(seen)))
            seen.append(source.taken)
        assert seen == expected
        it.close()


@pytest.mark.parametrize("depth", [1, 100])
@pytest.mark.parametrize("prefetch", [0, 1, 3])
def test_a_refilled_buffer_never_changes_a_batch_handed_out(prefetch: int, depth: int) -> None:
    # A ring-buffer loader refills one buffer for every batch; a batch converted
    # zero-copy shows that buffer, so the next batch must not be pulled before the
    # consumer has this one. Also for a batch deeper than the recursive walk goes.
    torch = pytest.importorskip("torch")
    buf = torch.zeros(3)

    def nested(x: Any) -> Any:
        for _ in range(depth):
            x = [x]
        return x

    def ring() -> Any:
        for i in range(4):
            buf.fill_(i)
            yield {"x": nested(buf)}

    def leaf(x: Any) -> Any:
        while isinstance(x, list):
            (x,) = x
        return x

    batches = interop.iter_numpy(ring(), prefetch=prefetch)
    seen = [float(leaf(batch["x"])[0]) for batch in batches]
    assert seen == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("prefetch", [0, 1, 3])
def test_batches_without_arrays_pass_through(prefetch: int) -> None:
    # Batches with nothing to convert, falsy ones included, come out as they are.
    marker = object()
    items: list[Any] = [None, 0, "", (), [], {}, marker, {"n": None, "a": np.arange(2)}]
    got = list(interop.iter_numpy(items, prefetch=prefetch))
    assert got[:7] == items[:7] and got[6] is marker
    assert got[7]["n"] is None and got[7]["a"] is items[7]["a"]


def test_creating_takes_nothing() -> None:
    source = Source([np.zeros(1)])
    batches = interop.iter_numpy(source, prefetch=4)
    assert source.passes == 0 and source.taken == 0
    assert "NumpyBatches(" in repr(batches) and "prefetch=4" in repr(batches)


@pytest.mark.parametrize("how", ["close", "with", "break", "del"])
def test_closing_early_releases_the_source(how: str) -> None:
    source = Source([np.full(1, i) for i in range(10)])
    batches = interop.iter_numpy(source, prefetch=2)
    if how == "close":
        it = iter(batches)
        next(it)
        it.close()
        it.close()
        with pytest.raises(StopIteration):
            next(it)
    elif how == "with":
        with iter(batches) as it:
            next(it)
    elif how == "break":
        for _ in batches:
            break
    else:
        it = iter(batches)
        next(it)
        del it
        gc.collect()
    # One batch taken: host batches are not pulled ahead (see the ring-buffer test).
    assert source.closed == 1 and source.taken == 1


def test_exhaustion_closes_the_source() -> None:
    source = Source([np.zeros(1), np.ones(1)])
    assert len(list(interop.iter_numpy(source))) == 2
    assert source.closed == 1


def test_source_error_comes_after_the_batches_before_it() -> None:
    source = Source([np.full(1, i) for i in range(5)], fail_at=2)
    it = iter(interop.iter_numpy(source, prefetch=3))
    assert next(it)[0] == 0
    assert next(it)[0] == 1
    with pytest.raises(OSError, match="cannot read item 2"):
        next(it)
    assert list(it) == []


def test_conversion_error_names_the_leaf_in_its_batch() -> None:
    torch = pytest.importorskip("torch")
    batches = [{"x": torch.ones(1)}, {"x": torch.empty(1, device="meta")}, {"x": torch.zeros(1)}]
    it = iter(interop.iter_numpy(batches, prefetch=2))
    assert next(it)["x"] == 1
    with pytest.raises(interop.ConversionError, match=r"^tree\['x'\]: "):
        next(it)
    assert next(it)["x"] == 0


def test_options_are_captured_at_creation() -> None:
    a = np.arange(3, dtype=np.int32)
    with interop.options(copy=True, dtype=np.float64):
        inside = interop.iter_numpy([a])
    outside = interop.iter_numpy([a])
    (got,) = list(inside)
    assert got.dtype == np.float64 and not np.shares_memory(got, a)
    with interop.options(dtype=np.int8):
        (same,) = list(outside)
    assert same is a
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.extend(inside))
    thread.start()
    thread.join()
    assert results[0].dtype == np.float64


def test_keywords_apply_to_every_batch() -> None:
    batches = interop.iter_numpy([np.arange(2), (np.arange(3),)], dtype=np.float16, copy=True)
    first, (second,) = list(batches)
    assert first.dtype == second.dtype == np.float16


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"prefetch": -1}, ValueError, "expected prefetch to be an int >= 0, got -1"),
        ({"prefetch": 1.5}, TypeError, "got `float`"),
        ({"prefetch": True}, TypeError, "got `bool`"),
        ({"copy": "yes"}, TypeError, "expected copy"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        interop.iter_numpy([], **kwargs)


def test_non_iterable_source() -> None:
    with pytest.raises(TypeError, match=r"expected an iterable of batches, got `int`.*hint"):
        interop.iter_numpy(3)  # type: ignore[arg-type]


# -- prefetch on the simulated device ----------------------------------------------------


@pytest.fixture
def simdevice(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimBackend]:
    yield from registered(monkeypatch)


def sim_batches(n: int) -> list[dict[str, Any]]:
    return [{"x": SimArray(DATA + i, name=str(i)), "i": i} for i in range(n)]


def test_prefetch_starts_copies_before_handing_out(simdevice: SimBackend) -> None:
    it = iter(interop.iter_numpy(sim_batches(5), prefetch=2))
    first = next(it)
    # The copies of batches 1 and 2 were started before batch 0 was waited for, and
    # are still in flight: handing out batch 0 waited for its own copy only.
    assert simdevice.device.trace() == ["start 0", "start 1", "start 2", "wait 0"]
    assert simdevice.device.in_flight() == ["1", "2"]
    np.testing.assert_array_equal(first["x"], DATA)
    rest = list(it)
    assert [b["i"] for b in rest] == [1, 2, 3, 4]
    for b in rest:
        np.testing.assert_array_equal(b["x"], DATA + b["i"])


def test_prefetch_zero_is_lazy(simdevice: SimBackend) -> None:
    it = iter(interop.iter_numpy(sim_batches(3), prefetch=0))
    next(it)
    assert simdevice.device.trace() == ["start 0", "wait 0"]
    next(it)
    assert simdevice.device.trace() == ["start 0", "wait 0", "start 1", "wait 1"]


def test_close_waits_for_copies_in_flight(simdevice: SimBackend) -> None:
    sim = simdevice.device
    batches = []
    for i in range(6):  # each batch on a stream of its own
        with sim.use(sim.stream(f"s{i + 1}")):
            batches.append({"x": SimArray(DATA + i, name=str(i)), "i": i})
    source = Source(batches)
    it = iter(interop.iter_numpy(source, prefetch=3))
    next(it)
    # Batches 1 to 3 are prefetched, their copies queued on their own streams.
    assert sim.in_flight() == ["1", "2", "3"]
    it.close()
    assert not sim.in_flight() and not sim.errors
    assert sim.trace()[-3:] == ["wait 1", "wait 2", "wait 3"] and source.closed == 1


def test_iterables_used_as_sources(simdevice: SimBackend) -> None:
    class Dataset(Iterable[Any]):
        def __iter__(self) -> Iterator[Any]:
            return iter(sim_batches(2))

    got = [b["x"] for b in interop.iter_numpy(Dataset())]
    np.testing.assert_array_equal(got[1], DATA + 1)


@pytest.mark.gpu
def test_cuda_batches_with_prefetch() -> None:
    import torch

    def batches() -> Iterator[tuple[Any, Any]]:
        x = torch.linspace(-3, 3, 512 * 512, device="cuda").reshape(512, 512)
        for i in range(8):
            yield (x * (i + 1)).sin().cumsum(0), {"step": i, "mask": x[i] > 0}

    expected = [(f.cpu().numpy(), extra["mask"].cpu().numpy()) for f, extra in batches()]
    got = list(interop.iter_numpy(batches(), prefetch=3))
    assert [extra["step"] for _, extra in got] == list(range(8))
    for (features, extra), (want, mask) in zip(got, expected, strict=True):
        assert type(features) is np.ndarray and extra["mask"].dtype == np.bool_
        np.testing.assert_array_equal(features, want)
        np.testing.assert_array_equal(extra["mask"], mask)


@pytest.mark.parametrize("prefetch", [0, 1, 2])
def test_batches_kept_from_a_refilled_buffer_need_copy_true(prefetch: int) -> None:
    def ring() -> Iterator[dict[str, Any]]:
        buffer = np.zeros(3)
        for i in range(3):
            buffer[:] = i  # the same memory for every batch
            yield {"x": buffer}

    seen, kept = [], []
    for batch in interop.iter_numpy(ring(), prefetch=prefetch):
        seen.append(batch["x"].tolist())  # handed out before the source refills it
        kept.append(batch["x"])
    assert seen == [[0.0] * 3, [1.0] * 3, [2.0] * 3]
    # Zero-copy: a kept batch shows what the source wrote later ...
    assert [k.tolist() for k in kept] == [[2.0] * 3] * 3
    # ... unless it is a copy.
    copies = [batch["x"] for batch in interop.iter_numpy(ring(), prefetch=prefetch, copy=True)]
    assert [c.tolist() for c in copies] == [[0.0] * 3, [1.0] * 3, [2.0] * 3]


def test_threads_sharing_one_pass_get_every_batch_once() -> None:
    # Between one thread's taking a batch and handing it out, another found the queue
    # empty and ended the pass (the source closed, batches lost without an error).
    import sys
    import threading

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        for _ in range(5):
            source = [np.full(2, i) for i in range(200)]
            batches = iter(interop.iter_numpy(source))
            got: list[int] = []

            def consume(it: Any = batches, out: list[int] = got) -> None:
                out.extend(int(b[0]) for b in it)

            workers = [threading.Thread(target=consume) for _ in range(2)]
            for w in workers:
                w.start()
            for w in workers:
                w.join(30)
            assert sorted(got) == list(range(200))
    finally:
        sys.setswitchinterval(interval)
