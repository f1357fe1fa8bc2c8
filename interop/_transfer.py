"""Batched device-to-host transfers: start every copy, then wait once.

Converting leaf by leaf with ``.cpu().numpy()`` waits for each copy before the
next one starts, and on CUDA each wait is a full device synchronization. A
:class:`Batch` instead starts the copy of every accelerator leaf of a tree as it
is met, and waits only when the whole tree has been walked:

* PyTorch (CUDA): a pinned host buffer per tensor filled with
  ``copy_(non_blocking=True)`` on the tensor's current stream; then one
  ``synchronize()`` per stream used.
* JAX: ``copy_to_host_async()`` on every array; reading each one afterwards waits
  only for its own copy, which is already under way.
* CuPy: ``get(stream=..., out=<pinned buffer>, blocking=False)`` on the current
  stream of the array's device; then one ``synchronize()`` per stream.

Each leaf is converted with its backend's own :class:`~interop.Plan`: the steps
before ``to_host`` (detach, a cast on the device that makes the copy smaller, ...)
run when the copy is started, the asynchronous copy replaces ``to_host`` itself,
and the steps after it run once the data is complete. A backend without a starter
here (TensorFlow, Array-API devices, ...) converts its leaves at once, blocking.

Nothing here runs for data already in host memory: the tree walk asks
:func:`device_checks` once per call which backends may hold accelerator data right
now (none, on a machine without an accelerator), so the CPU path pays nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from interop import _registry
from interop._options import Options
from interop._plan import Plan
from interop._registry import Backend

__all__ = ["Batch", "Pending", "device_checks"]

DeviceCheck = Callable[[Any], bool]

# Whether CUDA is initialized in PyTorch, and whether JAX has an accelerator
# backend: once True, each stays True.
_torch_cuda = False
_jax_accelerated = False
# How many JAX backends were initialized when _jax_accelerated was last decided.
_jax_backends_seen = 0
# jax Sharding -> whether it places data outside host memory.
_jax_device_shardings: dict[Any, bool] = {}
_NONE: dict[Backend, DeviceCheck] = {}


def _torch_on_device(t: Any) -> bool:
    return bool(t.is_cuda)


def _jax_on_device(x: Any) -> bool:
    try:
        sharding = x.sharding
    except AttributeError:  # a tracer: its backend raises the right error
        return False
    found = _jax_device_shardings.get(sharding)
    if found is None:
        if len(_jax_device_shardings) > 256:
            _jax_device_shardings.clear()
        found = any(d.platform != "cpu" for d in sharding.device_set)
        _jax_device_shardings[sharding] = found
    return found


def _always(x: Any) -> bool:
    return True


def _jax_has_accelerator() -> bool:
    global _jax_accelerated, _jax_backends_seen
    if _jax_accelerated:
        return True
    # Asking JAX for its devices would initialize its backends (seconds, and on a
    # GPU machine most of the GPU memory) in a program that may never have created a
    # JAX array. The dict of backends already initialized answers without that; a
    # JAX array cannot exist before its backend is.
    bridge = sys.modules.get("jax._src.xla_bridge")
    initialized = getattr(bridge, "_backends", None)
    if initialized is None:  # pragma: no cover - a JAX without this dict
        return bridge is not None
    if len(initialized) != _jax_backends_seen:
        _jax_backends_seen = len(initialized)
        _jax_accelerated = any(name != "cpu" for name in tuple(initialized))
    return _jax_accelerated


def device_checks() -> dict[Backend, DeviceCheck]:
    """The backends whose arrays may live on an accelerator right now, each with a test.

    Cheap enough to call once per tree: on a machine with no accelerator in use
    (CUDA not initialized in PyTorch, no JAX accelerator backend, CuPy not
    imported) it returns a shared empty dict, which callers must not modify.
    """
    global _torch_cuda
    modules = sys.modules
    if not _torch_cuda:
        torch = modules.get("torch")
        _torch_cuda = torch is not None and bool(torch.cuda.is_initialized())
    jax_accelerated = "jax" in modules and _jax_has_accelerator()
    cupy = modules.get("cupy")
    if not (_torch_cuda or jax_accelerated or cupy is not None):
        return _NONE
    checks: dict[Backend, DeviceCheck] = {}
    if _torch_cuda:
        backend = _registry.lookup(modules["torch"].Tensor)
        if backend is not None and backend.name == "torch":
            checks[backend] = _torch_on_device
    if jax_accelerated:
        backend = _registry.lookup(modules["jax"].Array)
        if backend is not None and backend.name == "jax":
            checks[backend] = _jax_on_device
    if cupy is not None:
        backend = _registry.lookup(cupy.ndarray)
        if backend is not None and backend.name == "cupy":
            checks[backend] = _always
    return checks


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
        plan = backend.plan(x, options)
        plan.check(options)
        steps = plan.steps
        starter = _STARTERS.get(backend.name)
        if starter is None or not plan.transfer or "to_host" not in steps:
            return backend.run(x, plan)
        index = steps.index("to_host")
        obj = x
        for name in steps[:index]:
            obj = backend.steps[name](obj, plan)
        started = starter(obj, self)
        if started is None:  # a device this starter does not handle: copy now
            return backend.run(x, plan)
        obj, resume = started
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


# -- starters: begin one asynchronous copy, return (object, steps to skip) or None ----


def _start_torch(t: Any, batch: Batch) -> tuple[Any, int] | None:
    if not t.is_cuda:
        return None
    import torch

    # The copy runs on the current stream of the tensor's device, after the work
    # that produced the tensor; pinned memory is what lets it run asynchronously.
    stream = torch.cuda.current_stream(t.device)
    host = torch.empty(t.shape, dtype=t.dtype, device="cpu", pin_memory=True)
    host.copy_(t, non_blocking=True)
    batch.streams[stream] = None
    # The host tensor stands for what the `to_host` step returns: skip that step.
    return host, 1


def _start_jax(x: Any, batch: Batch) -> tuple[Any, int] | None:
    x.copy_to_host_async()
    # The `to_host` step itself still runs; it waits only for this array's copy.
    return x, 0


def _start_cupy(a: Any, batch: Batch) -> tuple[Any, int] | None:
    import importlib

    import cupy

    cupyx = importlib.import_module("cupyx")

    if not isinstance(a, cupy.ndarray):
        return None
    with a.device:
        stream = cupy.cuda.get_current_stream()
        src = cupy.ascontiguousarray(a)
        host = cupyx.empty_pinned(src.shape, dtype=src.dtype)
        try:
            src.get(stream=stream, out=host, blocking=False)
        except TypeError:  # CuPy < 13: a copy given a stream is asynchronous
            src.get(stream=stream, out=host)
    batch.streams[stream] = None
    result: np.ndarray[Any, Any] = host
    return result, 1


_STARTERS: dict[str, Callable[[Any, Batch], tuple[Any, int] | None]] = {
    "torch": _start_torch,
    "jax": _start_jax,
    "cupy": _start_cupy,
}
