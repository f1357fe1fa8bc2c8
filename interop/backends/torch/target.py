"""PyTorch as the target of :func:`interop.convert`: devices, ``from_numpy``,
``from_dlpack``, adopting tensors, and what a tensor offers as a source there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from interop._devices import split_device
from interop._errors import ConversionError, type_name
from interop._memory import layout_problem, owned_copy
from interop.backends.torch.base import TorchBase

if TYPE_CHECKING:
    import torch

__all__ = ["Target"]


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
                f"expected a dtype PyTorch can hold, got {dtype}. hint: cast it to a "
                "standard dtype first, for example with interop.to_numpy(x, upcast=True)"
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
        on_cpu = self._is_cpu(device)
        if copy and (on_cpu or self.numpy_problem(a) is not None):
            a = owned_copy(a)
        t = self._tensor_view(a)
        # The move to another device is the one copy; the view above is free.
        return t if on_cpu else t.to(device)

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

    def _tensor_view(self, a: np.ndarray[Any, Any]) -> torch.Tensor:
        """``torch.from_numpy`` that also takes ``ml_dtypes`` arrays (through same-width ints)."""
        torch = self.torch
        tdt = self._torch_dtype(a.dtype)
        bits = self._bit_formats.get(tdt)
        if bits is None:
            return torch.from_numpy(a)
        inttype = bits[1]
        return torch.from_numpy(a.view(np.dtype(str(inttype).removeprefix("torch.")))).view(tdt)

    def from_dlpack(self, x: Any, /, *, device: Any, copy: bool) -> Any:
        t = self.torch.from_dlpack(x)
        if t.device != device:
            return t.to(device)
        return t.clone() if copy else t

    def adopt(self, x: Any, /, *, device: Any, copy: bool) -> Any:
        t = x.detach() if x.requires_grad else x
        if t.device != device:
            return t.to(device)
        return t.clone() if copy else t

    def readonly_source(self, x: Any, /) -> bool:
        return False

    def dlpack_export(self, x: Any, dtype: np.dtype[Any], /) -> Any:
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
        return x.detach() if x.requires_grad else x
