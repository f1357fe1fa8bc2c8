"""Devices: DLPack device codes, their names, and device strings.

A leaf module: the backends, :func:`interop.convert` and the transfers all name
devices through it, so that a device reads the same in every message and plan.
"""

from __future__ import annotations

import operator
import re
import threading
from typing import Any, Literal

from interop._errors import ConversionError, type_name

__all__ = [
    "ANY_LAYOUT",
    "DeviceExport",
    "HOST",
    "HOST_KINDS",
    "Layout",
    "LayoutNeeds",
    "PERMUTED_LAYOUT",
    "ROW_MAJOR_LAYOUT",
    "StreamPlan",
    "device_name",
    "dlpack_device_of",
    "export_stream",
    "is_host",
    "layout_problem",
    "split_device",
    "unnamed_device",
]

#: The DLPack device of host memory.
HOST: tuple[int, int] = (1, 0)
#: DLPack device types (dlpack.h) whose memory the CPU reads directly: CPU, CUDA
#: pinned host memory, CUDA managed memory and ROCm pinned host memory.
HOST_KINDS = {1: "cpu", 3: "cuda_host", 11: "rocm_host", 13: "cuda_managed"}
#: The other DLPack device types of dlpack.h (DLPack 1.1), by their short names.
_NAMES = {
    2: "cuda",
    4: "opencl",
    7: "vulkan",
    8: "metal",
    9: "vpi",
    10: "rocm",
    12: "ext_dev",
    14: "oneapi",
    15: "webgpu",
    16: "hexagon",
    17: "maia",
    18: "trn",
}
# Compiled on first use (by re's own cache), not at import.
_DEVICE = r"^\s*([A-Za-z_]+)\s*(?::\s*(\d+))?\s*$"


# Devices DLPack cannot name (array_api_strict's test devices, say), by their own
# names: each gets an index of its own, for as long as the process runs.
_unnamed: dict[str, int] = {}
_unnamed_names: list[str] = []
_unnamed_lock = threading.Lock()


def unnamed_device(name: str) -> tuple[int, int]:
    """A DLPack-style pair ``(-1, index)`` for a device DLPack has no type for.

    The pair equals only that of the same device name; :func:`device_name` gives the
    name back.
    """
    index = _unnamed.get(name)
    if index is None:
        with _unnamed_lock:
            index = _unnamed.get(name)
            if index is None:
                index = _unnamed[name] = len(_unnamed_names)
                _unnamed_names.append(name)
    return (-1, index)


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
        return _unnamed_names[index] if 0 <= index < len(_unnamed_names) else f"device:{index}"
    return f"{_NAMES.get(kind, f'dlpack_device_{kind}')}:{index}"


def split_device(device: str) -> tuple[str, int | None]:
    """``"cuda:1"`` -> ``("cuda", 1)``, ``"GPU"`` -> ``("gpu", None)``; else ``ValueError``."""
    m = re.match(_DEVICE, device)
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


def is_host(dl: tuple[int, int], /) -> bool:
    """Whether the CPU reads the memory of a DLPack device directly (see :data:`HOST_KINDS`).

    Pinned (page-locked) host memory of CUDA or ROCm and CUDA managed memory are host
    memory to a conversion: a PyTorch tensor with ``pin_memory=True`` reports
    ``kDLCUDAHost`` and is read through its NumPy view, never handed to a
    framework's accelerator import.

    Example:
        >>> is_host((3, 0)), is_host((11, 0)), is_host((2, 0))
        (True, True, False)
    """
    return dl[0] in HOST_KINDS


# -- streams ------------------------------------------------------------------------


# (The small records of this module are plain classes with slots, not NamedTuples:
# a NamedTuple class costs a tenth of a millisecond to make at import.)


class StreamPlan:
    """How a producer of accelerator data exports it to a consumer: see :func:`export_stream`.

    Attributes:
        wait: Wait on the host for the work queued so far on the producer's current
            stream before exporting (the consumer's reads cannot be ordered on a
            stream).
        stream: The ``stream`` to pass to the producer's own ``__dlpack__``.
    """

    __slots__ = ("stream", "wait")

    def __init__(self, wait: bool, stream: int) -> None:
        self.wait = wait
        self.stream = stream

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StreamPlan):
            return NotImplemented
        return (self.wait, self.stream) == (other.wait, other.stream)

    def __hash__(self) -> int:
        return hash((self.wait, self.stream))

    def __repr__(self) -> str:
        return f"StreamPlan(wait={self.wait!r}, stream={self.stream!r})"


def export_stream(stream: Any, /, *, rocm: bool) -> StreamPlan:
    """What a producer on a CUDA or ROCm device does for a consumer's ``stream``.

    DLPack (the Python specification of ``__dlpack__``) has the consumer pass the
    stream it will read on; the producer makes that stream wait for its own work.
    PyTorch's ``Tensor.__dlpack__`` does so for an ``int`` stream (an event recorded
    on the current stream of the *current* device, which the consumer's stream
    waits on), treats ``-1`` as "no synchronisation", and refuses CUDA's per-thread
    default stream (2), 0 on CUDA and 1 or 2 on ROCm. A consumer that names no
    stream (``None``: TensorFlow's import, which reads on a non-blocking stream of
    its own that no stream of another framework orders) gets the data after a wait
    on the host, as does a stream PyTorch refuses.

    Example:
        >>> export_stream(None, rocm=False)
        StreamPlan(wait=True, stream=-1)
        >>> export_stream(0x7F00, rocm=False)
        StreamPlan(wait=False, stream=32512)
    """
    if stream is None or isinstance(stream, bool) or not isinstance(stream, int):
        return StreamPlan(True, -1)
    if stream == -1:
        return StreamPlan(False, -1)
    refused = stream in (1, 2) if rocm else stream in (0, 2)
    if refused or stream < -1:
        return StreamPlan(True, -1)
    return StreamPlan(False, stream)


# -- layouts ------------------------------------------------------------------------


class Layout:
    """How an array lies in memory, as a DLPack tensor describes it.

    Attributes:
        shape: The shape.
        strides: The strides, in items (not bytes).
        itemsize: The bytes of one item.
        address: The address of the first item.
    """

    __slots__ = ("address", "itemsize", "shape", "strides")

    def __init__(
        self, shape: tuple[int, ...], strides: tuple[int, ...], itemsize: int, address: int
    ) -> None:
        self.shape = shape
        self.strides = strides
        self.itemsize = itemsize
        self.address = address

    def __repr__(self) -> str:
        return (
            f"Layout(shape={self.shape!r}, strides={self.strides!r}, "
            f"itemsize={self.itemsize!r}, address={self.address!r})"
        )


class LayoutNeeds:
    """What a framework's DLPack import needs of accelerator memory to use it as it is.

    Attributes:
        order: ``"any"`` (any strides), ``"row_major"`` (compact row-major; strides
            of dimensions of size 1 do not count) or ``"permuted"`` (compact in some
            order of the dimensions: a transposition, but no broadcasting or gaps).
        alignment: The bytes the address of the first item must be a multiple of.
    """

    __slots__ = ("alignment", "order")

    def __init__(self, order: Literal["any", "row_major", "permuted"], alignment: int) -> None:
        self.order = order
        self.alignment = alignment

    def __repr__(self) -> str:
        return f"LayoutNeeds(order={self.order!r}, alignment={self.alignment!r})"


#: PyTorch imports any strides at any address.
ANY_LAYOUT = LayoutNeeds("any", 1)
#: TensorFlow: its import refuses other strides, and its kernels assume buffers
#: aligned to ``EIGEN_MAX_ALIGN_BYTES`` (64), which the import does not check.
ROW_MAJOR_LAYOUT = LayoutNeeds("row_major", 64)
#: What XLA's DLPack import parses without an error (jaxlib's ``StridesToLayout``): a
#: permutation of compact strides. Any order but row-major is a non-default layout,
#: which jaxlib then refuses (older versions: "from_dlpack got array with non-default
#: layout") or copies, so JAX's target asks for :data:`ROW_MAJOR_LAYOUT`.
PERMUTED_LAYOUT = LayoutNeeds("permuted", 64)


def layout_problem(layout: Layout, needs: LayoutNeeds, /) -> str | None:
    """Why a DLPack import with ``needs`` cannot use memory laid out as ``layout``, or ``None``.

    A pure function of the shape, strides, item size and address: where it gives a
    reason, the data is first copied into a new compact row-major array on its own
    device (whose allocator aligns it), which every importer takes.

    Example:
        >>> t = Layout((4, 3), (3, 1), 8, 0x1000)
        >>> layout_problem(t, ROW_MAJOR_LAYOUT) is None
        True
        >>> layout_problem(Layout((4, 3), (3, 1), 8, 0x1008), ROW_MAJOR_LAYOUT)
        'the data is not 64-byte aligned (it starts 8 bytes past a boundary)'
        >>> layout_problem(Layout((3, 4), (1, 3), 8, 0), PERMUTED_LAYOUT) is None
        True
    """
    if needs.order == "any":
        return None
    shape, strides = layout.shape, layout.strides
    if 0 in shape:
        return None  # no data: nothing to read or align
    if needs.order == "row_major":
        order = list(range(len(shape) - 1, -1, -1))
    else:
        # Minor to major by stride, ties in row-major order (jaxlib's StridesToLayout).
        order = sorted(range(len(shape)), key=lambda d: (strides[d], -d))
    expected = 1
    for d in order:
        if shape[d] != 1 and strides[d] != expected:
            kind = "compact row-major" if needs.order == "row_major" else "compact"
            return f"the strides {strides} (in items) of shape {shape} are not {kind}"
        expected *= shape[d]
    offset = layout.address % needs.alignment
    if offset:
        return (
            f"the data is not {needs.alignment}-byte aligned "
            f"(it starts {offset} bytes past a boundary)"
        )
    return None


class DeviceExport:
    """A DLPack producer of accelerator data, made by a source backend for a device route.

    A source backend's :meth:`~interop._backend.Backend.dlpack_export` returns one for
    data on an accelerator where the framework's own ``__dlpack__`` needs more than
    the call (a device context, the stream handshake of :func:`export_stream`, or
    a capsule of its own kind). :func:`interop.convert` checks :attr:`layout` against
    the target's :class:`LayoutNeeds` and, where they differ, imports :meth:`compact`.

    Attributes:
        array: The framework's array.
        layout: Its :class:`Layout`, or ``None`` where the framework only ever
            exports compact row-major memory from its own aligned allocations.
    """

    __slots__ = ("array", "device", "layout")

    def __init__(self, array: Any, device: tuple[int, int], layout: Layout | None) -> None:
        self.array = array
        self.device = device
        self.layout = layout

    def __dlpack__(
        self,
        *,
        stream: Any = None,
        max_version: tuple[int, int] | None = None,
        dl_device: Any = None,
        copy: bool | None = None,
    ) -> Any:
        """The producer's capsule, ordered for a consumer reading on ``stream``."""
        raise NotImplementedError

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.device

    def compact(self) -> DeviceExport:
        """An export of a new compact row-major copy of the data on the same device."""
        raise NotImplementedError
