"""A simulated accelerator, to test batched device-to-host copies on a machine without one.

Not a stand-in for any framework: a third-party backend (registered with the public
``register_backend``) for an array type whose data can only be read after a copy,
with an asynchronous copy that completes only when its stream is synchronized. A
conversion that read a buffer before waiting would see zeros instead of the data,
and the log records the order of every start, wait and blocking copy.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import interop
from interop import _plan


class SimArray:
    """An array on the simulated device."""

    def __init__(self, data: Any, name: str = "", fail_after_copy: bool = False) -> None:
        self.data = np.asarray(data)
        self.name = name
        self.fail_after_copy = fail_after_copy


class SimStream:
    """Copies queued on the simulated device; they land in host memory on synchronize()."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.queued: list[tuple[np.ndarray, SimArray]] = []

    def synchronize(self) -> None:
        self.log.append("sync")
        for buffer, source in self.queued:
            buffer[...] = source.data
        self.queued.clear()


class SimBackend(interop.Backend):
    name = "simdevice"

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log
        self.stream = SimStream(log)
        # One stream per copy instead of one for all (as with several devices).
        self.stream_per_copy = False
        self.streams = [self.stream]
        self.steps.update(to_host=self._to_host, check=self._check)

    def matches(self, cls: type) -> bool:
        return cls is SimArray

    def plan(self, x: Any, options: interop.Options, /) -> interop.Plan:
        return _plan.finish(
            "simdevice",
            "sim:0",
            ["to_host", "check"],
            source_dtype=x.data.dtype,
            options=options,
            copy_reason="the data is on sim:0 and must be copied to host memory",
            transfer=True,
            prepared=x,
        )

    def _to_host(self, x: SimArray, plan: interop.Plan) -> np.ndarray:
        self.log.append(f"blocking {x.name}")
        return x.data.copy()

    def _check(self, a: np.ndarray, plan: interop.Plan) -> np.ndarray:
        if plan.prepared.fail_after_copy:
            raise RuntimeError(f"corrupt data in {plan.prepared.name}")
        return a

    def accelerator_check(self) -> Any:
        return _always

    def start_copy(self, x: SimArray, /) -> tuple[np.ndarray, int, SimStream]:
        self.log.append(f"start {x.name}")
        buffer = np.zeros_like(x.data)
        stream = self.stream
        if self.stream_per_copy:
            stream = SimStream(self.log)
            self.streams.append(stream)
        stream.queued.append((buffer, x))
        return buffer, 1, stream


def _always(x: Any) -> bool:
    return True


def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimBackend]:
    """The simulated device's backend, registered while the generator is open.

    Test modules wrap this in a fixture; the backend's ``log`` records every event.
    """
    log: list[str] = []
    backend = SimBackend(log)
    interop.register_backend(backend)
    try:
        yield backend
    finally:
        from interop import _registry

        _registry.unregister_backend("simdevice")
