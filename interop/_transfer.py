"""Batched device-to-host transfers: start every copy, then wait once for each.

Converting leaf by leaf with ``.cpu().numpy()`` waits for each copy before the
next one starts, and on CUDA each wait is a full device synchronization. A
:class:`Batch` instead starts the copy of every accelerator leaf of a tree as it
is met, and waits only when the whole tree has been walked. How a copy starts is
the backend's own :meth:`~interop.Backend.start_copy` hook, which returns a
:class:`~interop._copies.Copy`: PyTorch and CuPy fill a pinned host buffer on the
array's current stream and record an event right after the copy; JAX starts
``copy_to_host_async()``, after which reading each array waits only for its own copy.

A batch waits for each copy's own event, never for a whole stream: a stream also
carries the copies started later (the batches :func:`interop.iter_numpy` prefetches)
and the caller's own kernels, which the batch must not wait for. Each pending copy
holds what the copy reads until it is complete, so that the device never reads
memory that was freed and reused meanwhile; a batch dropped early (an error in a
later leaf, an interrupt, a pipeline closed) waits for the copies in flight first.

Pinned memory is bounded: the results of one batch hold at most
:data:`~interop._copies.PINNED_BATCH_BYTES` of it; the leaves beyond that are
copied when the batch is waited for, through a reused staging buffer into pageable
memory (:class:`~interop._copies.Staged`).

Each leaf is converted with its backend's own :class:`~interop.Plan`: the steps
before ``to_host`` (detach, a cast on the device that makes the copy smaller, ...)
run when the copy is started, the asynchronous copy stands for ``to_host`` (or
``to_host`` still runs and waits for its own copy), and the steps after it run
once the data is complete. A backend without the hook (TensorFlow, Array-API
devices, ...) converts its leaves at once, blocking.

Nothing here runs for data already in host memory: the tree walk asks
:func:`device_checks` once per call which backends may hold accelerator data right
now (none, on a machine without an accelerator), so the CPU path pays nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from interop import _core, _registry
from interop._backend import Backend, is_builtin
from interop._copies import PINNED_BATCH_BYTES
from interop._errors import InteropError
from interop._options import Options
from interop._plan import Plan

__all__ = ["Batch", "Pending", "device_checks"]

DeviceCheck = Callable[[Any], bool]
_ndarray = np.ndarray
_NONE: dict[Backend, DeviceCheck] = {}
# The last list of active backends met (the registry's, see active()) and those of
# them that override Backend.accelerator_check.
_asked: tuple[list[Backend] | None, tuple[Backend, ...]] = (None, ())


def device_checks(active: list[Backend], /) -> dict[Backend, DeviceCheck]:
    """The backends whose arrays may live on an accelerator right now, each with a test.

    ``active``: the active backends (:func:`interop._registry.active`). Cheap
    enough to call once per tree: on a machine with no accelerator in use every
    backend answers ``None`` (see :meth:`Backend.accelerator_check`), and a shared
    empty dict comes back, which callers must not modify.
    """
    global _asked
    seen, asked = _asked
    if seen is not active:
        # Only backends with a check of their own can answer anything but None.
        base = Backend.accelerator_check
        asked = tuple(b for b in active if type(b).accelerator_check is not base)
        _asked = (active, asked)
    checks: dict[Backend, DeviceCheck] | None = None
    for backend in asked:
        # (Asked per tree: the library's own backends directly, without consult's call.)
        check = (
            backend.accelerator_check()
            if is_builtin(backend)
            else _registry.consult(backend, "accelerator_check()", backend.accelerator_check)
        )
        if check is not None and check is not _registry.SKIPPED:
            if checks is None:
                checks = {}
            checks[backend] = check
    return _NONE if checks is None else checks


class Pending:
    """One leaf whose device-to-host copy was started; :attr:`value` once finished."""

    __slots__ = (
        "backend",
        "deferred",
        "done",
        "leaf",
        "obj",
        "options",
        "path",
        "plan",
        "resume",
        "source",
        "value",
    )

    def __init__(
        self,
        backend: Backend,
        plan: Plan,
        obj: Any,
        resume: int,
        path: str,
        done: Any,
        source: Any,
        deferred: bool,
        leaf: Any,
        options: Options,
    ) -> None:
        self.backend = backend
        self.plan = plan
        # The array converted and the options, for the backend's check of the result
        # and its translation of an error (the caller's tree holds the array anyway).
        self.leaf = leaf
        self.options = options
        # What the remaining steps start from: a host object still being filled,
        # or (JAX) the device array whose copy is under way.
        self.obj = obj
        # Index of the first step of plan.steps still to run.
        self.resume = resume
        self.path = path
        # Waits for this copy alone (None: the remaining steps wait by themselves).
        self.done = done
        # What the copy reads, held until the copy is complete.
        self.source = source
        self.deferred = deferred
        self.value: Any = None

    def wait(self) -> None:
        """Wait until this copy is complete (at most once), then let go of its source."""
        done = self.done
        if done is not None:
            done.synchronize()
            self.done = None
        self.source = None

    def finish(self) -> None:
        """Run the steps after the copy (:meth:`wait` first), and check the result.

        As :meth:`Backend.run` and :func:`interop._core.run` do: a NumPy scalar becomes
        a 0-d array, anything else a third-party backend gives is refused naming it,
        the backend's ``check_result`` is asked, and its errors are translated.
        """
        self.wait()
        backend = self.backend
        plan = self.plan
        try:
            obj = self.obj
            steps = backend.steps
            for name in plan.steps[self.resume :]:
                obj = steps[name](obj, plan)
            out = obj if type(obj) is _ndarray else backend._other_result(obj, plan)
            backend.check_result(self.leaf, out, self.options)
        except (InteropError, MemoryError):
            raise
        except Exception as exc:
            _core.raise_translated(self.leaf, backend, exc)
        self.value = out
        self.obj = None
        self.leaf = None

    def cancel(self) -> None:
        """Wait for the copy if it is in flight, and drop it."""
        done = self.done
        self.done = None
        self.obj = None
        if done is not None and not self.deferred:
            done.synchronize()
        self.source = None


class Batch:
    """The device-to-host copies of one tree: all started before any is waited for."""

    __slots__ = ("pending", "pinned_left")

    def __init__(self) -> None:
        self.pending: list[Pending] = []
        # Pinned host memory the results of this batch may still take.
        self.pinned_left = PINNED_BATCH_BYTES

    def start(self, backend: Backend, x: Any, options: Options, path: str) -> Any:
        """Start converting the accelerator leaf ``x``.

        Returns a :class:`Pending`, whose value is complete after :meth:`synchronize`
        and :meth:`Pending.finish`, or, where the backend has no asynchronous copy,
        the finished NumPy array.
        """
        plan = _core.plan(x, backend, options)
        steps = plan.steps
        if not plan.transfer or "to_host" not in steps:
            return _core.run(x, backend, plan, options)
        plan.check(options)
        index = steps.index("to_host")
        try:
            obj = x
            for name in steps[:index]:
                obj = backend.steps[name](obj, plan)
            copy = backend.start_copy(obj, self.pinned_left)
        except (InteropError, MemoryError):
            raise
        except Exception as exc:
            _core.raise_translated(x, backend, exc)
        if copy is None:  # no asynchronous copy for this array: copy now
            return _core.run(x, backend, plan, options)
        self.pinned_left -= copy.pinned
        pending = Pending(
            backend,
            plan,
            copy.result,
            index + copy.skip,
            path,
            copy.done,
            copy.source,
            copy.deferred,
            x,
            options,
        )
        self.pending.append(pending)
        return pending

    def synchronize(self) -> None:
        """Wait until every copy of the batch is complete, each on its own event.

        After this, each :meth:`Pending.finish` runs the steps that follow its copy;
        for JAX, that step waits only for the copy of its own array.
        """
        for pending in self.pending:
            pending.wait()

    def cancel(self) -> None:
        """Wait for the copies already in flight, and drop every result."""
        pending = self.pending
        self.pending = []
        error: BaseException | None = None
        for item in pending:
            try:
                item.cancel()
            except BaseException as exc:  # the other copies are waited for first
                error = error or exc
        if error is not None:
            raise error
