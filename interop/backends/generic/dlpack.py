"""Objects that implement ``__dlpack__`` and ``__dlpack_device__``.

NumPy imports the capsule (DLPack 1.0 negotiated with ``max_version=(1, 0)``, and
the legacy protocol where the producer refuses that keyword with a ``TypeError``).
Data in a format NumPy lacks but ``ml_dtypes`` holds (bfloat16, float8, ...) comes
back as that exact ``ml_dtypes`` dtype, zero-copy (see :mod:`.capsule`).

Pinned host memory (CUDA or ROCm) and CUDA managed memory are readable by the CPU,
but a device may still be writing them, and DLPack gives a consumer on the host no
stream to wait on: the producer is asked for its own copy in CPU memory
(``dl_device=(kDLCPU, 0), copy=True``), which it makes once its data is complete,
instead of a view that could be read too early. (A producer from before DLPack 1.0
takes no such request: its memory is viewed as it is.) A producer that does not
flag its capsule as a copy (DLPack 1.0's ``IS_COPIED``) may have ignored the
request and exported its own memory: its data is then copied once more on the host,
so that the result owns its memory as the plan says.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from interop import _dtypes, _plan
from interop._backend import class_attr
from interop._devices import HOST, device_name, dlpack_device_of, is_host
from interop._errors import ConversionError, TransferError, type_name
from interop._options import Options
from interop._plan import Plan
from interop.backends.generic.array_protocol import (
    array_protocol_plan,
    array_takes_copy,
    compute_chunks,
)
from interop.backends.generic.base import GenericBackend, finish_unknown_dtype
from interop.backends.generic.capsule import Reinterpreter

__all__ = ["DLPackBackend", "dlpack_view", "from_dlpack"]


def from_dlpack(x: Any, plan: Plan) -> np.ndarray[Any, Any]:
    """The ``from_dlpack`` step: the view the plan made, or a new one."""
    if plan.prepared is not None:
        return plan.prepared  # type: ignore[no-any-return]
    return dlpack_view(x)


def dlpack_view(x: Any) -> np.ndarray[Any, Any]:
    """NumPy's zero-copy import of the DLPack producer ``x``, in its exact dtype."""
    producer = Reinterpreter(x)
    try:
        a = np.from_dlpack(producer)
    except (BufferError, TypeError) as exc:
        raise ConversionError(
            f"expected a DLPack capsule NumPy can read, got an error from `{type_name(x)}`: "
            f"{exc}. hint: convert it with its own library's API first"
        ) from exc
    return a if producer.dtype is None else a.view(producer.dtype)


def _copy_to_host(x: Any, plan: Plan) -> np.ndarray[Any, Any]:
    """The ``dlpack_to_host`` step: the producer's own copy in CPU memory, owned by the result."""
    producer = Reinterpreter(x)
    try:
        a = np.from_dlpack(producer, device="cpu", copy=True)
    except ConversionError:
        raise  # the data's dtype has no NumPy form (see Reinterpreter): no transfer problem
    except (BufferError, ValueError, TypeError) as exc:
        raise TransferError(
            f"expected `{type_name(x)}` to copy its {plan.device} data to host memory through "
            f"DLPack, but it refused: {exc}. hint: move it to the CPU with its own API first"
        ) from exc
    if producer.dtype is not None:
        a = a.view(producer.dtype)
    # NumPy does not check that the producer honoured copy=True. Memory the CPU reads
    # directly (pinned, managed) may come back as the producer's own: the plan promises
    # memory the result owns, so anything not said to be a copy (DLPack 1.0's IS_COPIED
    # flag) is copied here. (Device memory cannot come back uncopied: NumPy refuses it.)
    # A read-only copy is copied too, since a copy is the result's to write.
    if (not plan.transfer and not producer.copied) or not a.flags.writeable:
        a = np.array(a, copy=True, order="K")
    return a


_TAKES_DL_DEVICE: dict[type, bool] = {}


def takes_dl_device(cls: type) -> bool:
    """Whether ``cls.__dlpack__`` takes DLPack 1.0's ``dl_device`` and ``copy`` keywords.

    A producer from before DLPack 1.0 cannot be asked for a copy in CPU memory: its
    pinned or managed memory is viewed as it is. A signature that cannot be read
    (a C method without one) counts as DLPack 1.0's.
    """
    found = _TAKES_DL_DEVICE.get(cls)
    if found is not None:
        return found
    try:
        params = inspect.signature(class_attr(cls, "__dlpack__")).parameters
    except (TypeError, ValueError):
        found = True
    else:
        found = any(p.kind is p.VAR_KEYWORD for p in params.values()) or (
            "dl_device" in params and "copy" in params
        )
    if len(_TAKES_DL_DEVICE) < 1024:
        _TAKES_DL_DEVICE[cls] = found
    return found


class DLPackBackend(GenericBackend):
    """Objects that implement ``__dlpack__`` and ``__dlpack_device__``."""

    name = "dlpack"

    def __init__(self) -> None:
        super().__init__()
        self.steps.update(
            from_dlpack=from_dlpack,
            dlpack_to_host=_copy_to_host,
            as_array=lambda x, p: p.prepared,
            compute=compute_chunks,
        )

    def matches(self, cls: type) -> bool:
        return (
            class_attr(cls, "__dlpack__") is not None
            and class_attr(cls, "__dlpack_device__") is not None
        )

    def plan(self, x: Any, options: Options, /) -> Plan:
        kind, index = dlpack_device_of(x)
        device = device_name((kind, index))
        transfer = not is_host((kind, index))
        if not transfer and kind != HOST[0] and takes_dl_device(type(x)):
            # Pinned or managed memory: see the module docstring.
            return _plan.finish(
                self.name,
                device,
                ["dlpack_to_host"],
                source_dtype=None,
                options=options,
                copy_reason=(
                    f"the data is in {device} memory, which a device may still be writing: "
                    "the producer copies it into CPU memory once it is complete"
                ),
            )
        cls = type(x)
        if not transfer and class_attr(cls, "__array__") is not None and array_takes_copy(cls):
            # For data already in host memory, an __array__ that honours copy= is the
            # object's own bridge to NumPy: it hands out the same view DLPack would, and
            # also converts what DLPack cannot carry (for example pyarrow arrays with
            # nulls or bit-packed booleans), copying only when it must.
            return array_protocol_plan(self.name, x, options)
        view: np.ndarray[Any, Any] | None = None
        if transfer:
            steps = ["dlpack_to_host"]
            reason: str | None = f"the data is on {device} and must be copied to host memory"
        else:
            # A host view copies nothing, and tells the dtype the tail steps need.
            view = dlpack_view(x)
            steps, reason = ["from_dlpack"], None
        return _plan.finish(
            self.name,
            device,
            steps,
            source_dtype=None if view is None else view.dtype,
            options=options,
            copy_reason=reason,
            transfer=transfer,
            readonly=view is not None and not view.flags.writeable,
            upcast_to=None if view is None else _dtypes.upcast_target(view.dtype),
            prepared=view,
        )

    def run(self, x: Any, plan: Plan, /) -> np.ndarray[Any, Any]:
        a: np.ndarray[Any, Any] = self.steps[plan.steps[0]](x, plan)
        return finish_unknown_dtype(self, a, plan)  # type: ignore[no-any-return]
