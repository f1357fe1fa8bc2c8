"""Batched device-to-host transfers: start every copy, then wait once.

Converting leaf by leaf with ``.cpu().numpy()`` waits for each copy before the
next one starts, and on CUDA each wait is a full device synchronization. A
:class:`Batch` instead starts the copy of every accelerator leaf of a tree as it
is met, and waits only when the whole tree has been walked. How a copy starts is
the backend's own :meth:`~interop.Backend.start_copy` hook (PyTorch and CuPy: a
pinned host buffer filled on the array's current stream, then one
``synchronize()`` per stream; JAX: ``copy_to_host_async()``, after which reading
each array waits only for its own copy).

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

from interop._backend import Backend
from interop._options import Options
from interop._plan import Plan

__all__ = ["Batch", "Pending", "device_checks"]

DeviceCheck = Callable[[Any], bool]
_NONE: dict[Backend, DeviceCheck] = {}


def device_checks(active: list[Backend], /) -> dict[Backend, DeviceCheck]:
    """The backends whose arrays may live on an accelerator right now, each with a test.

    ``active``: the active backends (:func:`interop._registry.active`). Cheap
    enough to call once per tree: on a machine with no accelerator in use every
    backend answers ``None`` (see :meth:`Backend.accelerator_check`), and a shared
    empty dict comes back, which callers must not modify.
    """
    checks: dict[Backend, DeviceCheck] | None = None
    for backend in active:
        check = backend.accelerator_check()
        if check is not None:
            if checks is None:
                checks = {}
            checks[backend] = check
    return _NONE if checks is None else checks


class Pending:
    """One leaf whose device-to-host copy was started; :attr:`value` once finished."""

    __slots__ = ("backend", "obj", "path", "plan", "resume", "value")

    def __init__(self, backend: Backend, plan: Plan, obj: Any, resume: int, path: str) -> None:
        self.backend = backend
        self.plan = plan
        # What the remaining steps start from: a host object still being filled,
        # or (JAX) the device array whose copy is under way.
        self.obj = obj
        # Index of the first step of plan.steps still to run.
        self.resume = resume
        self.path = path
        self.value: Any = None

    def finish(self) -> None:
        obj = self.obj
        steps = self.backend.steps
        plan = self.plan
        for name in plan.steps[self.resume :]:
            obj = steps[name](obj, plan)
        self.value = obj
        self.obj = None


class Batch:
    """The device-to-host copies of one tree: all started before any is waited for."""

    __slots__ = ("pending", "streams")

    def __init__(self) -> None:
        self.pending: list[Pending] = []
        # Streams (PyTorch or CuPy) that carry at least one copy, each synchronized once.
        self.streams: dict[Any, None] = {}

    def start(self, backend: Backend, x: Any, options: Options, path: str) -> Any:
        """Start converting the accelerator leaf ``x``.

        Returns a :class:`Pending`, whose value is complete after :meth:`synchronize`
        and :meth:`Pending.finish`, or, where the backend has no asynchronous copy,
        the finished NumPy array.
        """
        plan = backend.plan_for(x, options)
        plan.check(options)
        steps = plan.steps
        if not plan.transfer or "to_host" not in steps:
            return backend.run(x, plan)
        index = steps.index("to_host")
        obj = x
        for name in steps[:index]:
            obj = backend.steps[name](obj, plan)
        started = backend.start_copy(obj)
        if started is None:  # no asynchronous copy for this array: copy now
            return backend.run(x, plan)
        obj, resume, stream = started
        if stream is not None:
            self.streams[stream] = None
        pending = Pending(backend, plan, obj, index + resume, path)
        self.pending.append(pending)
        return pending

    def synchronize(self) -> None:
        """Wait until every copy of the batch is complete.

        After this, each :meth:`Pending.finish` runs the steps that follow its copy;
        for JAX, that step waits only for the copy of its own array.
        """
        streams = self.streams
        self.streams = {}
        for stream in streams:
            stream.synchronize()

    def cancel(self) -> None:
        """Wait for the copies already started, and drop their results."""
        streams = self.streams
        self.streams = {}
        for stream in streams:
            stream.synchronize()
        # A JAX copy lands in memory the JAX array owns, so dropping it is safe.
        for pending in self.pending:
            pending.obj = None
        self.pending = []
