"""The device-to-host copies that a backend starts for a batch: :class:`Copy` and :class:`Staged`.

A backend's :meth:`~interop._backend.Backend.start_copy` returns a :class:`Copy`;
:mod:`interop._transfer` starts the copies of one batch (one tree, one batch of
``iter_numpy``) before it waits for any, within :data:`PINNED_BATCH_BYTES` of pinned
memory, and a copy beyond that bound goes through a :class:`Staged` buffer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["PINNED_BATCH_BYTES", "STAGING_BYTES", "Copy", "Staged"]


#: The most bytes of pinned (page-locked) host memory that the results of one batch
#: of device-to-host copies (one tree, one batch of ``iter_numpy``) may hold. Pinned
#: memory is what lets a copy run asynchronously, but the allocators of PyTorch and
#: CuPy round it up and keep it cached: a leaf that does not fit in what is left of
#: this bound is copied instead through one reused staging buffer of
#: :data:`STAGING_BYTES` into new pageable memory, when the batch is waited for.
PINNED_BATCH_BYTES = 64 << 20
#: The size of the pinned staging buffer of a :class:`Staged` copy, in two halves: one
#: is filled by the device while the other is read into pageable memory.
STAGING_BYTES = 16 << 20


class Copy:
    """A device-to-host copy started by :meth:`Backend.start_copy`.

    Attributes:
        result: What ``to_host`` gives once the copy is complete (``skip`` is 1), or
            the object ``to_host`` still runs on (``skip`` is 0).
        skip: 1 where ``result`` replaces the ``to_host`` step, 0 where ``to_host``
            still runs and waits for its own copy.
        done: An object whose ``synchronize()`` returns once this copy is complete,
            and waits for nothing queued after it: an event recorded right after the
            copy on the stream that runs it (or a :class:`Staged` copy). ``None``
            where ``to_host`` waits by itself.
        source: What the copy reads (the device array, or the temporary made by a
            cast on the device): held until the copy is complete, so that its memory
            cannot be freed and reused while the device still reads it.
        pinned: Bytes of pinned host memory that ``result`` holds.
        deferred: Nothing is in flight until ``done.synchronize()`` runs (a
            :class:`Staged` copy): dropping the copy needs no wait.
    """

    __slots__ = ("deferred", "done", "pinned", "result", "skip", "source")

    def __init__(
        self,
        result: Any,
        skip: int,
        done: Any,
        source: Any,
        pinned: int = 0,
        deferred: bool = False,
    ) -> None:
        self.result = result
        self.skip = skip
        self.done = done
        self.source = source
        self.pinned = pinned
        self.deferred = deferred


class Staged:
    """A copy into pageable memory through a bounded, reused pinned staging buffer.

    The copy runs when :meth:`synchronize` is called: chunks of at most half of the
    staging buffer alternate between its two halves, so that the device fills one
    while the host copies the other into ``out``. The result never shows the staging
    buffer, which the next chunk (or the next copy) reuses.

    Args:
        out: The flat ``uint8`` array the bytes land in (new pageable memory).
        chunk: The size of one half of the staging buffer, in bytes.
        copy_chunk: ``copy_chunk(half, start, stop)`` queues the copy of the source's
            bytes ``[start, stop)`` into the given half and returns an object whose
            ``synchronize()`` waits for that copy alone.
        read_chunk: ``read_chunk(half, n)``: the first ``n`` bytes of a half, as a
            NumPy ``uint8`` array.
    """

    __slots__ = ("chunk", "copy_chunk", "out", "read_chunk")

    def __init__(
        self,
        out: np.ndarray[Any, Any],
        chunk: int,
        copy_chunk: Callable[[int, int, int], Any],
        read_chunk: Callable[[int, int], np.ndarray[Any, Any]],
    ) -> None:
        self.out = out
        self.chunk = chunk
        self.copy_chunk = copy_chunk
        self.read_chunk = read_chunk

    def synchronize(self) -> None:
        """Run the copy; returns once every byte is in ``out``."""
        out = self.out
        n = out.size
        chunk = self.chunk
        # (half, start, stop, done) of the chunks in flight, oldest first: at most two.
        flight: list[tuple[int, int, int, Any]] = []
        try:
            for index, start in enumerate(range(0, n, chunk)):
                half = index & 1
                if len(flight) == 2:
                    self._drain(flight.pop(0))
                stop = min(start + chunk, n)
                flight.append((half, start, stop, self.copy_chunk(half, start, stop)))
            while flight:
                self._drain(flight.pop(0))
        finally:
            # An error (or an interrupt) while copying: a chunk still in flight must
            # land before its half of the buffer can be freed or reused.
            for _, _, _, done in flight:
                done.synchronize()

    def _drain(self, item: tuple[int, int, int, Any]) -> None:
        half, start, stop, done = item
        done.synchronize()
        self.out[start:stop] = self.read_chunk(half, stop - start)
