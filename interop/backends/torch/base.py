"""What every part of the PyTorch backend shares: the torch module, its dtypes, and
how the values of a dense tensor reach NumPy (dtype steps, device-to-host copy).

A torch dtype reaches NumPy in one of three ways: ``Tensor.numpy()`` for the dtypes
NumPy has; a same-width integer view reinterpreted as the ``ml_dtypes`` dtype
(``bit_view``) for bfloat16, float8, complex32 and the one-byte shell dtypes
(``torch.int4``, ``torch.uint2``, ...); or unpacking (``unpack_fp4``) for
``torch.float4_e2m1fn_x2``, which packs two values per byte.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from interop import _dtypes, _plan
from interop._backend import Backend
from interop._errors import ConversionError
from interop._options import Options
from interop._plan import Plan

if TYPE_CHECKING:
    import torch

__all__ = ["NATIVE", "TorchBase", "device_str", "is_dtensor", "is_fake"]

# torch dtype name -> ml_dtypes name. Dtypes NumPy has natively are not listed:
# Tensor.numpy() handles them. The bits are reinterpreted through the integer dtype
# of the same width (see _INT_VIEW), which every torch version has.
_ML_FORMATS = {
    "bfloat16": "bfloat16",
    "float8_e4m3fn": "float8_e4m3fn",
    "float8_e5m2": "float8_e5m2",
    "float8_e4m3fnuz": "float8_e4m3fnuz",
    "float8_e5m2fnuz": "float8_e5m2fnuz",
    "float8_e8m0fnu": "float8_e8m0fnu",
    # Shell dtypes: one byte per value and no kernels in PyTorch itself; ml_dtypes
    # reads the value from the low bits of the byte.
    "int1": "int1",
    "int2": "int2",
    "int4": "int4",
    "uint1": "uint1",
    "uint2": "uint2",
    "uint4": "uint4",
}
_INT_VIEW = {1: "uint8", 2: "int16", 4: "int32"}

# The last steps of a plan that copy what the view before them reads.
_COPYING = frozenset({"copy", "cast", "upcast"})

# Dtypes every device's copy kernels take; the others travel as integers of their width.
_COPY_NATIVE = (
    "bool",
    "uint8",
    "int8",
    "int16",
    "int32",
    "int64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
)
_COPY_INTS = {1: "uint8", 2: "int16", 4: "int32", 8: "int64"}


class _Capsule:
    """A DLPack capsule made by PyTorch, handed to ``np.from_dlpack`` (CPU memory)."""

    __slots__ = ("_capsule",)

    def __init__(self, capsule: Any) -> None:
        self._capsule = capsule

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self._capsule

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)


# Shell dtypes with no ml_dtypes counterpart, and raw-bits dtypes.
_NO_COUNTERPART = (
    "int3",
    "int5",
    "int6",
    "int7",
    "uint3",
    "uint5",
    "uint6",
    "uint7",
    "bits1x8",
    "bits2x4",
    "bits4x2",
    "bits8",
    "bits16",
)

#: How the host view reads a dtype NumPy has: ``Tensor.numpy()`` itself. A dtype read
#: through a same-width integer view maps to ``(integer torch dtype, ml_dtypes dtype)``.
NATIVE: tuple[Any, Any] = (None, None)


def device_str(t: torch.Tensor) -> str:
    """The tensor's device as ``"cpu"``, ``"cuda:0"``, ..."""
    d = t.device
    return d.type if d.index is None else f"{d.type}:{d.index}"


def is_fake(t: torch.Tensor) -> bool:
    """Whether ``t`` is a FakeTensor (asked only of ``__torch_dispatch__`` subclasses)."""
    module = sys.modules.get("torch._subclasses.fake_tensor")
    cls = getattr(module, "FakeTensor", None)
    return cls is not None and isinstance(t, cls)


def is_dtensor(t: torch.Tensor) -> bool:
    """Whether ``t`` is a distributed ``DTensor`` (never imports torch.distributed)."""
    for modname in ("torch.distributed.tensor", "torch.distributed._tensor"):
        module = sys.modules.get(modname)
        cls = getattr(module, "DTensor", None)
        if cls is not None and isinstance(t, cls):
            return True
    return False


def _no_modes() -> int:
    return 0


class TorchBase(Backend):
    """The torch module, its dtype tables, and the value steps of a dense tensor."""

    torch: Any

    def load(self) -> None:
        import torch

        super().load()
        self.torch = torch
        # Python dispatch modes (FakeTensorMode, FlopCounterMode, ...) see the
        # operators Tensor.numpy() runs internally: under a FakeTensorMode, a real
        # tensor's .numpy() reads the storage of a fake one. Conversions run with
        # the modes set aside.
        self._modes_active: Callable[[], int] = getattr(
            torch._C, "_len_torch_dispatch_stack", _no_modes
        )
        python_dispatch = sys.modules.get("torch.utils._python_dispatch")
        self._modes_off: Callable[[], Any] = getattr(
            python_dispatch, "_disable_current_modes", contextlib.nullcontext
        )
        self._plain = (torch.Tensor, torch.nn.Parameter)
        self._numpy_dtypes: dict[Any, np.dtype[Any]] = {}
        for tname in _dtypes.NUMPY_NAMES:
            tdt = getattr(torch, tname, None)
            if tdt is not None:
                self._numpy_dtypes[tdt] = np.dtype(tname)
        # torch dtype -> (ml_dtypes name, same-width integer torch dtype).
        self._bit_formats: dict[Any, tuple[str, Any]] = {}
        for tname, mlname in _ML_FORMATS.items():
            tdt = getattr(torch, tname, None)
            if tdt is not None:
                self._bit_formats[tdt] = (mlname, getattr(torch, _INT_VIEW[tdt.itemsize]))
        self._bit_formats[torch.complex32] = ("complex32", torch.int32)
        # dtype -> how the host view reads it: NATIVE, or (integer dtype, ml_dtypes
        # dtype). The bit-view dtypes join when a plan first reads one (see
        # _plan_values), so that ml_dtypes is imported only by a program that meets
        # them. Dtypes the plan reads otherwise (unpacked float4, quantized, complex32,
        # whose conjugate bit the plan resolves) stay absent.
        self._view_kinds: dict[Any, tuple[Any, Any]] = dict.fromkeys(self._numpy_dtypes, NATIVE)
        self._torch_dtypes: dict[np.dtype[Any], Any] = {}
        self._fp4x2 = getattr(torch, "float4_e2m1fn_x2", None)
        self._no_counterpart = {
            getattr(torch, n) for n in _NO_COUNTERPART if getattr(torch, n, None) is not None
        }
        # DLPack exports of the C API. A versioned capsule carries the writable flag;
        # NumPy asks for one (max_version) from 2.1 on.
        versioned = np.lib.NumpyVersion(np.__version__) >= "2.1.0"
        self._to_dlpack = (
            getattr(torch._C, "_to_dlpack_versioned", None) if versioned else None
        ) or getattr(torch._C, "_to_dlpack", None)
        # The steps that read a tensor's memory, as transient_view runs them.
        self._transient_steps = {
            "numpy_view": lambda t, p: self._transient(t),
            "bit_view": self._transient_bit_view,
        }
        self.steps.update(
            cast_on_device=self._cast_on_device,
            to_host=self._to_host,
            numpy_view=self._read,
            bit_view=self._bit_view,
            unpack_fp4=self._unpack_fp4,
        )

    def matches(self, cls: type) -> bool:
        return issubclass(cls, self.torch.Tensor)

    # -- dtypes ---------------------------------------------------------------------

    def _numpy_dtype(self, tdt: Any) -> np.dtype[Any]:
        """The NumPy dtype of a tensor's values, or :class:`ConversionError`."""
        found = self._numpy_dtypes.get(tdt)
        if found is not None:
            return found
        bits = self._bit_formats.get(tdt)
        if bits is not None:
            ml = _dtypes.complex32() if bits[0] == "complex32" else _dtypes.ml_dtype(bits[0])
            if ml is not None:
                return ml
        if tdt is self._fp4x2:
            ml = _dtypes.ml_dtype("float4_e2m1fn")
            if ml is not None:
                return ml
        if tdt in self._no_counterpart:
            raise ConversionError(
                f"expected a tensor dtype NumPy or ml_dtypes can represent, got {tdt}, a "
                "PyTorch shell dtype (one byte per value, no arithmetic) with no NumPy or "
                "ml_dtypes counterpart. hint: call .view(torch.uint8) or .view(torch.int8) "
                "for the stored bytes"
            )
        raise ConversionError(
            f"expected a tensor dtype NumPy or ml_dtypes can represent, got {tdt}. "
            "hint: cast it with .to(torch.float32) first, or upgrade ml_dtypes"
        )

    def _torch_dtype(self, dtype: np.dtype[Any]) -> Any:
        """The torch dtype for a NumPy dtype, or ``None``.

        Filled as dtypes are met: building it up front would import ml_dtypes for
        every PyTorch user.
        """
        known = self._torch_dtypes
        if dtype in known:
            return known[dtype]
        found = None
        for tdt, ndt in self._numpy_dtypes.items():
            if ndt == dtype:
                found = tdt
                break
        else:
            if dtype.type.__module__ == "ml_dtypes":
                for tdt, (mlname, _) in self._bit_formats.items():
                    if _dtypes.ml_dtype(mlname) == dtype:
                        found = tdt
                        break
        if len(known) < 256:
            known[dtype] = found
        return found

    def _holds(self, dtype: np.dtype[Any]) -> bool:
        """Whether PyTorch has a dtype for NumPy's ``dtype`` (see :meth:`_torch_dtype`)."""
        return self._torch_dtype(dtype) is not None

    # -- the values of a dense tensor ---------------------------------------------

    def _plan_values(
        self,
        t: torch.Tensor,
        options: Options,
        steps: list[str],
        reason: str | None,
        device: str,
        transfer: bool,
        *,
        on_device: bool,
    ) -> Plan:
        """The dtype and transfer steps of a dense tensor, then the shared tail.

        ``on_device``: the data is still on the accelerator when these steps start
        (the caller has not added ``to_host`` itself).
        """
        tdt = t.dtype
        source = self._numpy_dtype(tdt)
        if on_device:
            moved, source, _ = _plan.device_to_host(
                steps, device, source, options, holds=self._holds
            )
            if steps[-2:-1] == ["cast_on_device"]:
                tdt = self._torch_dtype(source)
            reason = reason or moved
        if tdt is self._fp4x2:
            steps.append("unpack_fp4")
            reason = reason or (
                "float4_e2m1fn_x2 packs two values per byte and ml_dtypes.float4_e2m1fn "
                "holds one; unpacking copies (t.view(torch.uint8) gives the packed bytes "
                "without a copy)"
            )
        elif tdt in self._bit_formats:
            steps.append("bit_view")
            inttype = self._bit_formats[tdt][1]
            if tdt is not self.torch.complex32 and tdt not in self._view_kinds:
                self._view_kinds[tdt] = (inttype, source)
        else:
            steps.append("numpy_view")
        return _plan.finish(
            "torch",
            device,
            steps,
            source_dtype=source,
            options=options,
            copy_reason=reason,
            transfer=transfer,
            # Writes through a view of a tensor that requires grad would bypass
            # autograd's version counter (and give wrong gradients): read-only.
            readonly="detach" in steps,
            upcast_to=_dtypes.upcast_target(source),
        )

    # -- steps ----------------------------------------------------------------------

    def _cast_on_device(self, t: torch.Tensor, plan: Plan) -> torch.Tensor:
        assert plan.dtype is not None
        return t.to(self._torch_dtype(plan.dtype))

    def _to_host(self, t: torch.Tensor, plan: Plan) -> torch.Tensor:
        # A blocking copy: the data is complete when .cpu() returns. Shell dtypes
        # have no copy kernels, so their bytes travel as integers.
        bits = self._bit_formats.get(t.dtype)
        if bits is not None and not t.is_nested and t.layout is self.torch.strided:
            return t.view(bits[1]).cpu().view(t.dtype)
        if t.dtype is self._fp4x2 and t.layout is self.torch.strided:
            return t.view(self.torch.uint8).cpu().view(t.dtype)
        return t.cpu()

    def _read(self, t: torch.Tensor, plan: Plan) -> np.ndarray[Any, Any]:
        """The ``numpy_view`` step: ``Tensor.numpy()``, or where the plan copies at once, a
        transient view that leaves the tensor as it was (:meth:`_transient`)."""
        if plan.steps[-1] not in _COPYING:
            return t.numpy()  # type: ignore[no-any-return]
        return self._transient(t)

    def _transient(self, t: torch.Tensor) -> np.ndarray[Any, Any]:
        """A NumPy view of a CPU tensor that leaves it as it was, to read at once.

        ``Tensor.numpy()`` marks the tensor's storage as never to be resized again (the
        array may alias it), so that a later ``untyped_storage().resize_(0)`` (FSDP's)
        fails: right for a view handed out, as with ``t.numpy()``, but reading a tensor
        to copy it, or to decide how to convert it, must not change it. A DLPack
        export marks nothing; its view lives only until the storage is next resized.
        """
        to_dlpack = self._to_dlpack
        if to_dlpack is None:
            return t.numpy()  # type: ignore[no-any-return]
        return np.from_dlpack(_Capsule(to_dlpack(t)))

    def _bit_view(self, t: torch.Tensor, plan: Plan) -> np.ndarray[Any, Any]:
        mlname, inttype = self._bit_formats[t.dtype]
        return self._read(t.view(inttype), plan).view(self._ml_dtype(mlname))

    def _transient_bit_view(self, t: torch.Tensor, plan: Plan) -> np.ndarray[Any, Any]:
        mlname, inttype = self._bit_formats[t.dtype]
        return self._transient(t.view(inttype)).view(self._ml_dtype(mlname))

    def _ml_dtype(self, name: str) -> np.dtype[Any]:
        found = _dtypes.complex32() if name == "complex32" else _dtypes.ml_dtype(name)
        assert found is not None  # (the plan found it first)
        return found

    def _unpack_fp4(self, t: torch.Tensor, plan: Plan) -> np.ndarray[Any, Any]:
        # PyTorch's convention (as in its float4 matmul tests and cuBLAS): the first
        # value of a pair sits in the low nibble. (Unpacking copies: the packed bytes
        # are read through a view that leaves the tensor as it was, see _read.)
        packed = np.atleast_1d(self._transient(t.view(self.torch.uint8)))
        out = np.empty((*packed.shape[:-1], 2 * packed.shape[-1]), dtype=np.uint8)
        np.bitwise_and(packed, 0x0F, out=out[..., 0::2])
        np.right_shift(packed, 4, out=out[..., 1::2])
        return out.view(_dtypes.ml_dtype("float4_e2m1fn"))

    def copy_dtype(self, t: torch.Tensor, /) -> Any:
        """The dtype a batched copy carries ``t``'s bytes as, or ``None``: no batched copy.

        A function of the tensor alone, the same for a CPU and a CUDA tensor (which
        is how it is tested without a device). ``None`` for the layouts that a copy
        into a new dense tensor refuses (sparse, nested): those leaves convert at
        once through their plans. ``t.dtype`` where PyTorch's copy kernels take it on
        every device. Else the integer dtype of the same width, whose bytes are the
        same: shell dtypes (``int4``, ``uint1``...) have no copy kernel at all, and the
        bit formats (float8, float4, complex32) and the wide unsigned integers have
        none on some devices or versions.
        """
        torch = self.torch
        if t.layout is not torch.strided or t.is_nested:
            return None
        tdt = t.dtype
        native, ints = self._copy_tables
        if tdt in native:
            return tdt
        if tdt in self._numpy_dtypes or tdt in self._bit_formats or tdt in self._no_counterpart:
            return ints.get(tdt.itemsize)
        if tdt is self._fp4x2:
            return torch.uint8
        return None  # a dtype the plan refuses before any copy (quantized, ...)

    @functools.cached_property
    def _copy_tables(self) -> tuple[set[Any], dict[int, Any]]:
        """The dtypes copied as they are, and the integer dtype of each width."""
        torch = self.torch
        native = {getattr(torch, name) for name in _COPY_NATIVE}
        return native, {size: getattr(torch, name) for size, name in _COPY_INTS.items()}
