"""A strict simulated accelerator, to test batched device-to-host copies without one.

Not a stand-in for any framework: a third-party backend (registered with the public
``register_backend``) for an array type whose data can only be read after a copy.
It is strict where a real device is, so that the mistakes a real device punishes
only now and then fail a test every time:

* **One queue per stream.** Kernels (the write that produces an array, a cast) and
  copies of an array are queued on its stream, the one current when it was made
  (:meth:`SimDevice.use` switches it; several streams in one tree stand for the
  current streams of several devices), and run only when something waits for them:
  ``stream.synchronize()`` runs its whole queue, ``event.synchronize()`` the queue up
  to where the event was recorded. Nothing completes by itself, and waiting for one
  stream completes nothing on another.
* **Deliberate delays.** An array made with ``late=True`` is written by a kernel still
  queued on its stream: until that kernel runs, its memory holds garbage, and a copy
  queued on another stream without a wait reads the garbage. Host buffers of copies
  are filled with garbage until the copy lands, so a result read before its wait
  shows it.
* **The log** records every start, wait (``wait <event>``, ``sync <stream>``), the
  copies each wait completes (``done <name>``), blocking copies and frees, in order:
  over-waiting (a wait that completes copies of later batches) and missing waits are
  visible in it.
* **Lifetimes.** The queued operations hold the device memory, never the array
  object (a DMA engine holds an address, not a reference). When the last reference
  to an array goes, its memory is freed and poisoned at once; a copy that reads it
  afterwards records the error in :attr:`SimDevice.errors` and delivers garbage. So
  a source that the pending copy did not keep alive is detected.
* **Kept host copies.** An array made with ``keeps_host_copy=True`` is read as JAX and
  TensorFlow read device data: its copy lands in a host copy the array keeps and
  hands to every later reader, read-only (the plan says ``readonly`` without being
  zero-copy). A conversion that gives a caller a writable alias of it, or writes
  into it, shows in :attr:`SimArray.host_copy`.
* **Pinned memory** is counted (:attr:`SimDevice.pinned`, :attr:`SimDevice.peak`), so
  that the bound on it can be checked, and copies beyond what the batch may still
  pin go through :class:`interop._copies.Staged`.
"""

from __future__ import annotations

import collections
import contextlib
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import interop
from interop import _plan
from interop._copies import Copy, Staged

#: The byte garbage fills memory with: NaN in every float, -1 in every signed integer.
GARBAGE = 0xFF


class Block:
    """Device memory: the bytes of one array, freed (and poisoned) with its last owner."""

    __slots__ = ("data", "freed", "name")

    def __init__(self, data: np.ndarray, name: str) -> None:
        self.data = data
        self.name = name
        self.freed = False


class SimStream:
    """One queue of operations; they run only when something waits for them."""

    def __init__(self, device: SimDevice, name: str) -> None:
        self.device = device
        self.name = name
        # (sequence number, label, operation), oldest first.
        self.queue: collections.deque[tuple[int, str, Callable[[], None]]] = collections.deque()

    def enqueue(self, label: str, op: Callable[[], None]) -> int:
        seq = self.device.next_seq()
        self.queue.append((seq, label, op))
        return seq

    def run_until(self, seq: float) -> None:
        queue = self.queue
        while queue and queue[0][0] <= seq:
            _, label, op = queue.popleft()
            op()
            if label:
                self.device.log.append(f"done {label}")

    def synchronize(self) -> None:
        """Run the whole queue of this stream (and of no other)."""
        self.device.log.append(f"sync {self.name}")
        self.run_until(float("inf"))

    def __repr__(self) -> str:
        return f"SimStream({self.name!r})"


class SimEvent:
    """A point in one stream's queue: waiting for it runs the queue up to that point."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.stream: SimStream | None = None
        self.seq = -1

    def record(self, stream: SimStream) -> None:
        self.stream = stream
        self.seq = stream.queue[-1][0] if stream.queue else -1

    def query(self) -> bool:
        stream = self.stream
        return stream is None or not stream.queue or stream.queue[0][0] > self.seq

    def synchronize(self) -> None:
        stream = self.stream
        assert stream is not None, "waiting for an event that was never recorded"
        stream.device.log.append(f"wait {self.label}")
        stream.run_until(self.seq)


class SimDevice:
    """The simulated accelerator: streams, memory, pinned host buffers and a log."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.errors: list[str] = []
        self._seq = 0
        self.default = SimStream(self, "s0")
        self.current = self.default
        self.streams = [self.default]
        # Pinned host memory held now, and the most ever held at once.
        self.pinned = 0
        self.peak = 0
        # The pinned buffers made, by id, while they are alive.
        self.pinned_buffers: weakref.WeakValueDictionary[int, np.ndarray] = (
            weakref.WeakValueDictionary()
        )

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def stream(self, name: str) -> SimStream:
        """A new stream."""
        stream = SimStream(self, name)
        self.streams.append(stream)
        return stream

    @contextlib.contextmanager
    def use(self, stream: SimStream) -> Iterator[SimStream]:
        """Make ``stream`` the current stream inside the block."""
        before = self.current
        self.current = stream
        try:
            yield stream
        finally:
            self.current = before

    def trace(self) -> list[str]:
        """The log without its ``done`` and ``free`` lines: the starts and the waits."""
        return [e for e in self.log if not e.startswith(("done ", "free "))]

    def in_flight(self) -> list[str]:
        """The labels of the operations queued and not yet run, on every stream."""
        return [label for s in self.streams for _, label, _ in s.queue if label]

    def synchronize(self) -> None:
        """Run every stream's queue (for tests' own cleanup, never the library's)."""
        for stream in self.streams:
            stream.run_until(float("inf"))

    def allocate(self, owner: SimArray, data: np.ndarray, late: bool) -> Block:
        """Device memory for ``owner``, written now or (``late``) by a queued kernel."""
        data = np.array(data)
        if late:
            block = Block(_garbage(data.shape, data.dtype), owner.name)

            def write(block: Block = block, data: np.ndarray = data) -> None:
                if not block.freed:
                    block.data[...] = data

            self.current.enqueue("", write)
        else:
            block = Block(data, owner.name)
        weakref.finalize(owner, self._free, block)
        return block

    def _free(self, block: Block) -> None:
        self.log.append(f"free {block.name}")
        block.freed = True
        block.data = _garbage(block.data.shape, block.data.dtype)

    def pinned_empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A pinned host buffer, full of garbage until a copy fills it."""
        a = _garbage(shape, np.dtype(dtype))
        nbytes = a.nbytes
        self.pinned += nbytes
        self.peak = max(self.peak, self.pinned)
        self.pinned_buffers[id(a)] = a
        weakref.finalize(a, self._unpin, id(a), nbytes)
        return a

    def _unpin(self, key: int, nbytes: int) -> None:
        self.pinned -= nbytes
        self.pinned_buffers.pop(key, None)

    def copy(self, block: Block, dest: np.ndarray, label: str, stream: SimStream) -> None:
        """Queue a copy of ``block`` into ``dest`` (flat bytes or same shape) on ``stream``."""

        def run() -> None:
            if block.freed:
                self.errors.append(f"the copy {label} read memory freed while it was in flight")
            src = block.data
            if dest.dtype == np.uint8 and src.dtype != np.uint8:
                src = np.ascontiguousarray(src).reshape(-1).view(np.uint8)
            dest[...] = src.reshape(dest.shape)

        stream.enqueue(label, run)


def _garbage(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return np.full(size, GARBAGE, dtype=np.uint8).view(dtype).reshape(shape)


_DEVICE: list[SimDevice] = [SimDevice()]


def device() -> SimDevice:
    """The simulated device of the backend registered last."""
    return _DEVICE[0]


class SimArray:
    """An array on the simulated device.

    Args:
        data: Its values.
        name: The name the log knows it by.
        fail_after_copy: The step after its copy raises (a corrupt copy).
        late: Its values are written by a kernel still queued on the current stream.
        interrupt: Starting its copy raises ``KeyboardInterrupt`` (Ctrl-C mid-walk).
        keeps_host_copy: Its copy lands in a host copy it keeps and shares, read-only.
    """

    def __init__(
        self,
        data: Any,
        name: str = "",
        fail_after_copy: bool = False,
        *,
        late: bool = False,
        interrupt: bool = False,
        keeps_host_copy: bool = False,
    ) -> None:
        self.name = name
        self.keeps_host_copy = keeps_host_copy
        # The host copy it keeps, once a copy was started (read-only, filled when
        # that copy lands).
        self.host_copy: np.ndarray | None = None
        self.host_event: SimEvent | None = None
        self.fail_after_copy = fail_after_copy
        self.interrupt = interrupt
        # The stream current when the array was made: the current stream of its
        # device, which its kernels and copies run on (several streams in one tree
        # stand for several devices).
        self.stream = device().current
        self.block = device().allocate(self, np.asarray(data), late)

    @property
    def data(self) -> np.ndarray:
        """The device memory as it is now (garbage while a write is queued)."""
        return self.block.data

    @property
    def shape(self) -> tuple[int, ...]:
        return self.block.data.shape  # type: ignore[no-any-return]

    @property
    def dtype(self) -> np.dtype:
        return self.block.data.dtype

    @property
    def nbytes(self) -> int:
        return int(self.block.data.nbytes)


class SimBackend(interop.Backend):
    name = "simdevice"

    def __init__(self, sim: SimDevice) -> None:
        super().__init__()
        self.device = sim
        self.log = sim.log
        self.steps.update(
            to_host=self._to_host, check=self._check, cast_on_device=self._cast_on_device
        )

    def matches(self, cls: type) -> bool:
        return cls is SimArray

    def plan(self, x: Any, options: interop.Options, /) -> interop.Plan:
        source = x.dtype
        steps = ["to_host", "check"]
        target = options.dtype
        kept = x.keeps_host_copy
        if target is not None and target.itemsize < source.itemsize:
            kept = False  # the host copy of a temporary: no one else reads it
            # As the frameworks do: cast on the device first, into a temporary array
            # that only the copy reads.
            steps.insert(0, "cast_on_device")
            source = target
        return _plan.finish(
            "simdevice",
            "sim:0",
            steps,
            source_dtype=source,
            options=options,
            copy_reason="the data is on sim:0 and must be copied to host memory",
            transfer=True,
            readonly=kept,
            kept=kept,
            prepared=(x.name, x.fail_after_copy),
        )

    def _cast_on_device(self, x: SimArray, plan: interop.Plan) -> SimArray:
        sim = self.device
        with sim.use(x.stream):
            out = SimArray(np.zeros(x.shape, dtype=plan.dtype), f"{x.name}:cast", late=True)
        source = x.block
        block = out.block

        # The cast kernel, queued after the write: it reads x's memory when it runs.
        def cast(source: Block = source, block: Block = block) -> None:
            if source.freed:
                sim.errors.append(f"the cast of {source.name} read freed memory")
            if not block.freed:
                block.data[...] = source.data.astype(block.data.dtype)

        x.stream.enqueue("", cast)
        return out

    def _to_host(self, x: SimArray, plan: interop.Plan) -> np.ndarray:
        if plan.readonly:
            # The host copy the array keeps (made now, or by a copy already started):
            # waits for that copy, and hands out a read-only view of it.
            event = x.host_event or self._start_kept(x)
            x.stream.run_until(event.seq)  # (waits for nothing queued after it)
            return x.host_copy.view()  # type: ignore[union-attr]
        # A blocking copy: the current stream runs up to it.
        sim = self.device
        self.log.append(f"blocking {x.name}")
        out = _garbage(x.shape, x.dtype)
        sim.copy(x.block, out, "", x.stream)
        x.stream.run_until(float("inf"))
        return out

    def _check(self, a: np.ndarray, plan: interop.Plan) -> np.ndarray:
        name, fail = plan.prepared
        if fail:
            raise RuntimeError(f"corrupt data in {name}")
        return a

    def accelerator_check(self) -> Any:
        return _always

    def _start_kept(self, x: SimArray) -> SimEvent:
        """Start the copy into the host copy ``x`` keeps; the event recorded after it."""
        self.log.append(f"start {x.name}")
        cache = _garbage(x.shape, x.dtype)
        x.host_copy = cache
        self.device.copy(x.block, cache, x.name, x.stream)
        # Read-only once it has landed, as JAX's: an array that owns its memory, so
        # that no view of it can be made writable.
        x.stream.enqueue("", lambda: cache.setflags(write=False))
        event = SimEvent(x.name)
        event.record(x.stream)
        x.host_event = event
        return event

    def start_copy(self, x: SimArray, pinned_left: int, /) -> Copy:
        if x.interrupt:
            raise KeyboardInterrupt
        if x.keeps_host_copy:
            # As JAX's copy_to_host_async (which starts no second copy): the to_host
            # step still runs, and reads the host copy.
            return Copy(x, 0, x.host_event or self._start_kept(x), x)
        sim = self.device
        self.log.append(f"start {x.name}")
        stream = x.stream
        if x.nbytes > pinned_left:
            return self._staged(x, stream)
        buffer = sim.pinned_empty(x.shape, x.dtype)
        sim.copy(x.block, buffer, x.name, stream)
        event = SimEvent(x.name)
        event.record(stream)
        return Copy(buffer, 1, event, x, pinned=x.nbytes)

    def _staged(self, x: SimArray, stream: SimStream) -> Copy:
        sim = self.device
        nbytes = x.nbytes
        out = np.empty(nbytes, dtype=np.uint8)
        chunk = STAGING_CHUNK
        buffers: list[np.ndarray] = []
        block = x.block

        def copy_chunk(half: int, start: int, stop: int) -> SimEvent:
            if not buffers:
                buffers.append(sim.pinned_empty((2 * min(chunk, nbytes),), np.uint8))
            base = half * chunk
            dest = buffers[0][base : base + stop - start]
            # The copy of a range of bytes: a view of the source's bytes when it runs.
            piece = _Range(block, start, stop)
            sim.copy(piece, dest, f"{x.name}[{start}:{stop}]", stream)  # type: ignore[arg-type]
            event = SimEvent(f"{x.name}[{start}:{stop}]")
            event.record(stream)
            return event

        def read_chunk(half: int, n: int) -> np.ndarray:
            base = half * chunk
            return buffers[0][base : base + n]

        result = out.view(x.dtype).reshape(x.shape)
        return Copy(result, 1, Staged(out, chunk, copy_chunk, read_chunk), x, deferred=True)


class _Range:
    """Bytes ``[start, stop)`` of a block, read when the copy runs."""

    def __init__(self, block: Block, start: int, stop: int) -> None:
        self.block = block
        self.start = start
        self.stop = stop
        self.name = block.name

    @property
    def freed(self) -> bool:
        return self.block.freed

    @property
    def data(self) -> np.ndarray:
        flat = np.ascontiguousarray(self.block.data).reshape(-1).view(np.uint8)
        return flat[self.start : self.stop]


#: The size of one half of the simulated device's staging buffer (small, so that tests
#: see several chunks).
STAGING_CHUNK = 64


def _always(x: Any) -> bool:
    return True


def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimBackend]:
    """The simulated device's backend, registered while the generator is open.

    Test modules wrap this in a fixture; the backend's ``log`` records every event,
    and ``backend.device`` is the device (also :func:`device`) the tests' arrays live on.
    """
    sim = SimDevice()
    _DEVICE[0] = sim
    backend = SimBackend(sim)
    interop.register_backend(backend)
    try:
        yield backend
    finally:
        from interop import _registry

        _registry.unregister_backend("simdevice")
        sim.synchronize()
