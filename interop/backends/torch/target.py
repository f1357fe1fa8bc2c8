"""PyTorch as the target of :func:`interop.convert`: devices, ``from_numpy``,
``from_dlpack``, adopting tensors, and what a tensor offers as a source there.

A CUDA tensor is exported to another framework through :class:`CudaExport`, which
follows PyTorch's ``Tensor.__dlpack__`` (torch/_tensor.py, 2.10 and later): the
export must run with the tensor's device current (it raises ``BufferError``
otherwise, and synchronises against ``torch.cuda.current_stream()`` of the current
device), and its default ``stream=-1`` synchronises nothing. The consumer's stream
is passed on as :func:`interop._devices.export_stream` decides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from interop import _dtypes
from interop._devices import DeviceExport, Layout, export_stream, split_device
from interop._errors import ConversionError, type_name
from interop._memory import layout_problem, owned_copy
from interop.backends.torch.base import TorchBase

if TYPE_CHECKING:
    import torch

__all__ = ["CudaExport", "Target"]


class CudaExport(DeviceExport):
    """The DLPack export of a CUDA (or ROCm) tensor to another framework.

    ``__dlpack__`` runs inside ``torch.cuda.device(t.device)``, so that a tensor on
    ``cuda:1`` exports whatever device is current, and orders the consumer after the
    work queued on the tensor's current stream: through the consumer's stream where
    it names one, else by a wait on the host (see
    :func:`interop._devices.export_stream`).
    """

    __slots__ = ("torch",)

    def __init__(self, torch: Any, t: Any, device: tuple[int, int]) -> None:
        layout = Layout(tuple(t.shape), tuple(t.stride()), t.element_size(), t.data_ptr())
        super().__init__(t, device, layout)
        self.torch = torch

    def __dlpack__(
        self,
        *,
        stream: Any = None,
        max_version: tuple[int, int] | None = None,
        dl_device: Any = None,
        copy: bool | None = None,
    ) -> Any:
        torch = self.torch
        t = self.array
        plan = export_stream(stream, rocm=torch.version.hip is not None)
        with torch.cuda.device(t.device):
            if plan.wait:
                done = torch.cuda.Event()
                done.record(torch.cuda.current_stream(t.device))
                done.synchronize()
            return t.__dlpack__(
                stream=plan.stream, max_version=max_version, dl_device=dl_device, copy=copy
            )

    def compact(self) -> CudaExport:
        t = self.array
        # clone() allocates anew (from the caching allocator, 512-byte aligned) even
        # for a tensor that is contiguous already but misaligned, as t[1:] is.
        fresh = t.clone(memory_format=self.torch.contiguous_format)
        return CudaExport(self.torch, fresh, self.device)


class Target(TorchBase):
    """Conversion into PyTorch."""

    mutable = True

    def parse_device(self, device: Any, /) -> Any:
        torch = self.torch
        if isinstance(device, torch.device):
            d = device
        elif isinstance(device, str):
            kind, index = split_device(device)
            kind = "cuda" if kind == "gpu" else kind
            try:
                d = torch.device(kind if index is None else f"{kind}:{index}")
            except RuntimeError as exc:
                raise ValueError(
                    f"expected a device PyTorch knows, got {device!r}: {exc}. "
                    "hint: use 'cpu', 'cuda' or 'cuda:N'"
                ) from exc
        else:
            raise TypeError(f"expected a device string or torch.device, got `{type_name(device)}`")
        if d.type == "cuda" and (
            not torch.cuda.is_available() or (d.index or 0) >= torch.cuda.device_count()
        ):
            raise ValueError(
                f"expected a CUDA device PyTorch can use, got {device!r}: "
                f"{torch.cuda.device_count()} CUDA device(s) are available. "
                "hint: use device='cpu'"
            )
        if d.type == "cuda" and d.index is None:
            d = torch.device("cuda", torch.cuda.current_device())
        if d.type == "meta":
            raise ValueError(
                "expected a device that holds data, got 'meta', which keeps only shapes "
                "and dtypes. hint: use torch.empty_like(...) on the meta device instead"
            )
        return d

    def default_device(self) -> Any:
        # torch.get_default_device() costs microseconds. A default device other than
        # the CPU is set by a DeviceContext mode on the torch-function mode stack
        # (torch.set_default_device, `with torch.device(...)`), or, while a mode's
        # handler runs, in torch's thread-local device context: with neither, it is
        # the CPU.
        fast = self.__dict__.get("_cpu_default")
        if fast is None:
            fast = self._cpu_default = self._default_device_probe()
        if fast and not fast[0]() and fast[1].__dict__.get("device_context") is None:
            return fast[2]
        return self.parse_device(self.torch.get_default_device())

    def _default_device_probe(self) -> Any:
        torch = self.torch
        modes = getattr(torch._C, "_len_torch_function_stack", None)
        context = getattr(torch, "_GLOBAL_DEVICE_CONTEXT", None)
        if modes is None or context is None:  # another PyTorch: always ask it
            return ()
        # (The thread-local's __dict__, the calling thread's, is read without the
        # exception that getattr raises inside for a missing attribute.)
        return (modes, context, torch.device("cpu"))

    def device_of(self, x: Any, /) -> Any:
        return x.device

    def _is_cpu(self, device: Any) -> bool:
        # (Reading device.type makes a string: the default CPU object is known.)
        fast = self.__dict__.get("_cpu_default")
        return (fast and device is fast[2]) or device.type == "cpu"  # type: ignore[no-any-return]

    def dlpack_device(self, device: Any, /) -> tuple[int, int]:
        torch = self.torch
        if self._is_cpu(device):
            return (1, 0)
        if device.type == "cuda":
            index = device.index if device.index is not None else torch.cuda.current_device()
            return (10 if torch.version.hip else 2, index)
        if device.type == "mps":
            return (8, 0)
        return (-1, device.index or 0)

    def target_dtype(self, dtype: np.dtype[Any], device: Any, /) -> np.dtype[Any]:
        if self._torch_dtype(dtype) is None:
            raise ConversionError(
                f"expected a dtype PyTorch can hold, got {dtype}. hint: {_dtypes.cast_hint(dtype)}"
            )
        return dtype

    def dlpack_problem(
        self, dtype: np.dtype[Any], view: np.ndarray[Any, Any] | None, device: tuple[int, int], /
    ) -> str | None:
        torch = self.torch
        if device[0] in (2, 10):
            if not torch.cuda.is_available() or device[1] >= torch.cuda.device_count():
                return "PyTorch has no access to that CUDA device"
        elif device != (1, 0):
            return "PyTorch imports DLPack data only from the CPU and CUDA devices"
        if view is not None and view.ndim and min(view.strides) < 0:
            # torch.from_dlpack aborts the process on negative strides.
            return "PyTorch cannot import negative strides through DLPack"
        return None

    def numpy_problem(self, a: np.ndarray[Any, Any], /) -> str | None:
        if not a.flags.writeable:
            return "the NumPy array is read-only, and a PyTorch tensor is always writable"
        return layout_problem(a, contiguous=False, aligned=False)

    def from_numpy(self, a: np.ndarray[Any, Any], /, *, device: Any, copy: bool) -> Any:
        if not self._is_cpu(device):
            # The move to the device is the one copy, straight from `a`'s memory, so
            # read-only memory needs no host copy of its own: torch.tensor reads it
            # without the warning torch.from_numpy gives for read-only arrays (and
            # without changing the process's warning filters, which other threads share).
            if layout_problem(a, contiguous=False, aligned=False) is not None:
                a = owned_copy(a)
            return self._tensor_view(a, device)
        if copy:
            a = owned_copy(a)
        return self._tensor_view(a)

    def numpy_importer(self) -> Any:
        probe = self.__dict__.get("_cpu_default")
        if probe is None:
            probe = self._cpu_default = self._default_device_probe()
        if not probe:
            return None
        modes, context, _ = probe
        from_numpy = self.torch.from_numpy
        # The dtypes torch.from_numpy takes as they are (in native byte order only).
        plain = frozenset(self._numpy_dtypes.values())

        def importer(a: np.ndarray[Any, Any], copy: bool) -> Any:
            # default_device()'s test for the CPU (the thread-local is the caller's).
            if (
                a.dtype not in plain
                or modes()
                or context.__dict__.get("device_context") is not None
            ):
                return None
            if copy:
                return from_numpy(owned_copy(a))
            # (a is writable.) C-contiguous with no dimension of size 0 or 1: whole
            # positive strides, which from_numpy takes.
            shape = a.shape
            if (a.flags.c_contiguous and 1 not in shape and 0 not in shape) or layout_problem(
                a, contiguous=False, aligned=False
            ) is None:
                return from_numpy(a)
            return None

        return importer

    def _tensor_view(self, a: np.ndarray[Any, Any], device: Any = None) -> torch.Tensor:
        """``torch.from_numpy(a)``, or with ``device`` a new tensor there in one copy.

        ``ml_dtypes`` arrays (bfloat16, float8, ...) go through same-width integers.
        """
        torch = self.torch
        tdt = self._torch_dtype(a.dtype)
        bits = self._bit_formats.get(tdt)
        src = a if bits is None else a.view(np.dtype(str(bits[1]).removeprefix("torch.")))
        t = torch.from_numpy(src) if device is None else torch.tensor(src, device=device)
        return t if bits is None else t.view(tdt)

    def from_dlpack(self, x: Any, /, *, device: Any, copy: bool) -> Any:
        t = self.torch.from_dlpack(x)
        if t.device != device:
            return t.to(device)
        return t.clone() if copy else t

    def adopt(self, x: Any, /, *, device: Any, copy: bool) -> Any:
        # (Under a dispatch mode, FakeTensorMode say, a real tensor's detach() and
        # clone() would go through the mode: as the plans' steps, they run without it.)
        if self._modes_active():
            with self._modes_off():
                return self._adopt(x, device=device, copy=copy)
        return self._adopt(x, device=device, copy=copy)

    def _adopt(self, x: Any, /, *, device: Any, copy: bool) -> Any:
        t = x.detach() if x.requires_grad else x
        moved = t.device != device
        if not moved and not copy:
            return t
        # Dtypes without copy kernels (shell dtypes, some bit formats) are copied as
        # integers of their width, whose bytes are the same.
        carry = self.copy_dtype(t)
        bits = t if carry is None or carry is t.dtype else t.view(carry)
        out = bits.to(device) if moved else bits.clone()
        return out if bits is t else out.view(t.dtype)

    def readonly_source(self, x: Any, /) -> bool:
        return False

    def dlpack_export(self, x: Any, dtype: np.dtype[Any], /) -> Any:
        if self._modes_active():
            # The importer would ask the tensor through the mode (see adopt): the
            # host view, read with the modes set aside, goes instead.
            return None
        if (
            x.is_conj()
            or x.is_neg()
            or x.layout is not self.torch.strided
            or x.is_quantized
            or x._is_zerotensor()
        ):
            return None
        if self._torch_dtype(dtype) is None:
            return None
        # A detached alias holds the storage itself: the importer's reference to x
        # would follow x to new data (x.data = ..., x.set_(...)) and let this go.
        t = x.detach()
        if t.is_cuda:
            return CudaExport(self.torch, t, self.dlpack_device(t.device))
        # Pinned memory (a DataLoader's with pin_memory=True) exports as kDLCUDAHost,
        # which JAX takes for its GPU's: through the NumPy view (Backend.dlpack_export).
        return None if t.is_pinned() else t
