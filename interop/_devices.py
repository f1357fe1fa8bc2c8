"""Devices: DLPack device codes, their names, and device strings.

A leaf module: the backends, :func:`interop.convert` and the transfers all name
devices through it, so that a device reads the same in every message and plan.
"""

from __future__ import annotations

import operator
import re
from typing import Any

from interop._errors import ConversionError, type_name

__all__ = ["HOST", "HOST_KINDS", "device_name", "dlpack_device_of", "split_device"]

#: The DLPack device of host memory.
HOST: tuple[int, int] = (1, 0)
#: DLPack device types (dlpack.h) whose memory the CPU reads directly: CPU, CUDA
#: pinned host memory, CUDA managed memory and ROCm pinned host memory.
HOST_KINDS = {1: "cpu", 3: "cuda_host", 11: "rocm_host", 13: "cuda_managed"}
_NAMES = {2: "cuda", 4: "opencl", 7: "vulkan", 8: "metal", 9: "vpi", 10: "rocm", 14: "oneapi"}
_DEVICE_RE = re.compile(r"^\s*([A-Za-z_]+)\s*(?::\s*(\d+))?\s*$")


def device_name(dl: tuple[int, int]) -> str:
    """A DLPack device as a short string.

    Example:
        >>> device_name((1, 0)), device_name((2, 1)), device_name((3, 0))
        ('cpu', 'cuda:1', 'cuda_host')
    """
    kind, index = dl
    host = HOST_KINDS.get(kind)
    if host is not None:
        return host
    if kind < 0:
        return f"device:{index}"
    return f"{_NAMES.get(kind, f'dlpack_device_{kind}')}:{index}"


def split_device(device: str) -> tuple[str, int | None]:
    """``"cuda:1"`` -> ``("cuda", 1)``, ``"GPU"`` -> ``("gpu", None)``; else ``ValueError``."""
    m = _DEVICE_RE.match(device)
    if m is None:
        raise ValueError(
            f"expected a device such as 'cpu', 'cuda', 'cuda:1', 'gpu' or 'tpu:0', got {device!r}"
        )
    return m.group(1).lower(), None if m.group(2) is None else int(m.group(2))


def dlpack_device_of(x: Any) -> tuple[int, int]:
    """``x.__dlpack_device__()`` as two ints; :class:`ConversionError` for an error or nonsense."""
    dev: Any = None
    try:
        dev = x.__dlpack_device__()
        kind, index = dev  # exactly two entries
        kind, index = operator.index(kind), operator.index(index)  # ints (or IntEnums)
    except Exception as exc:  # a third-party method: anything may come out of it
        raise ConversionError(
            f"expected __dlpack_device__() to return (device_type, device_id), got an "
            f"error or nonsense from `{type_name(x)}`: {exc!r}. hint: convert it with "
            "its own library's API first"
        ) from exc
    if kind < 1 or index < 0:
        raise ConversionError(
            f"expected __dlpack_device__() to return a DLPack device type (1 = CPU, 2 = CUDA, "
            f"...) and a device id >= 0, got {dev!r} from `{type_name(x)}`. hint: convert "
            "it with its own library's API first"
        )
    return kind, index
