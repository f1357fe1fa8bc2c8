"""PyTorch tensors: ``torch.Tensor``, ``nn.Parameter``, tensor subclasses and their special cases.

The fast path is ``Tensor.numpy()`` itself, tried only for plain tensors under the
default options and outside ``torch.func`` transforms: it is the fastest zero-copy
call there is, and it raises for every case that needs more care (grad, conj/neg
bits, devices, nonstandard dtypes, sparse, nested, quantized, meta), which then
goes through the planned path. Inside a transform it is not safe: a tensor seen
inside ``torch.func.functionalize`` is a wrapper whose ``.numpy()`` returns
whatever its placeholder storage holds, so one C call (is any transform active?)
guards it.

The planned path handles, each as a named step of the plan:

* nonstandard dtypes: ``bit_view`` reinterprets bfloat16, float8, complex32 and
  the one-byte-per-value shell dtypes (``torch.int4``, ``torch.uint2``, ...)
  through a same-width integer view, zero-copy; ``unpack_fp4`` unpacks the two
  values per byte of ``torch.float4_e2m1fn_x2`` (a copy);
* conjugate and negative bits: ``resolve_conj``/``resolve_neg`` (copies);
* sparse layouts: the ``sparse=`` policy (``densify`` or ``to_scipy``);
* nested/jagged tensors: the ``ragged=`` policy (``unbind`` or ``pad``);
* ``DTensor``: ``gather`` (``full_tensor()``);
* tensors that hold no data (meta, fake, inside ``torch.func`` transforms, other
  ``__torch_dispatch__`` subclasses): :class:`ConversionError`, never zeros.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from interop import _dtypes, _plan
from interop._backend import Backend
from interop._devices import split_device
from interop._errors import ConversionError, type_name
from interop._memory import layout_problem, owned_copy
from interop._options import Options
from interop._plan import Plan

if TYPE_CHECKING:
    import torch

__all__ = ["TorchBackend"]

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
# Value dtypes scipy.sparse accepts (float16 and every ml_dtypes dtype are refused).
_SCIPY_KINDS = "biuc"
_SCIPY_FLOATS = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.longdouble))


def _device_str(t: torch.Tensor) -> str:
    d = t.device
    return d.type if d.index is None else f"{d.type}:{d.index}"


def _no_transforms() -> bool:
    return False


def _is_cuda(t: Any) -> bool:
    return bool(t.is_cuda)


# Host-view kinds of dtypes NumPy has (see TorchBackend.load).
_PLAIN: tuple[Any, Any] = (None, "plain")
_COMPLEX: tuple[Any, Any] = (None, "complex")


class TorchBackend(Backend):
    """``torch.Tensor`` and its subclasses."""

    name = "torch"
    module = "torch"

    def load(self) -> None:
        import torch

        self.torch = torch
        self._plain = (torch.Tensor, torch.nn.Parameter)
        self._transforms_active: Callable[[], bool] = getattr(
            torch._C, "_are_functorch_transforms_active", _no_transforms
        )
        self._functorch_off: Callable[[], Any] = getattr(
            torch._C, "_DisableFuncTorch", contextlib.nullcontext
        )
        functorch = getattr(torch._C, "_functorch", None)
        self._is_wrapped = getattr(functorch, "is_functorch_wrapped_tensor", None)
        self._default_dispatch = torch.Tensor.__torch_dispatch__
        self._numpy_dtypes: dict[Any, np.dtype[Any]] = {}
        for tname in [
            "float16",
            "float32",
            "float64",
            "int8",
            "int16",
            "int32",
            "int64",
            "uint8",
            "uint16",
            "uint32",
            "uint64",
            "bool",
            "complex64",
            "complex128",
        ]:
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
        # dtype -> how its host view reads it: (None, None) through Tensor.numpy(),
        # _COMPLEX likewise but with a conjugate bit to rule out, or (integer dtype,
        # ml_dtypes dtype) through a same-width integer view. Dtypes the plan reads
        # otherwise (unpacked float4, quantized, ...) are absent.
        self._view_kinds: dict[Any, tuple[Any, Any]] = {}
        # The bit-view dtypes join when a plan first reads one (see _plan_values), so
        # that ml_dtypes is imported only by a program that meets them.
        for tdt, ndt in self._numpy_dtypes.items():
            self._view_kinds[tdt] = _COMPLEX if ndt.kind == "c" else _PLAIN
        self._fp4x2 = getattr(torch, "float4_e2m1fn_x2", None)
        self._no_counterpart = {
            getattr(torch, n) for n in _NO_COUNTERPART if getattr(torch, n, None) is not None
        }
        self.steps.update(
            gather=self._gather,
            detach=lambda t, p: t.detach(),
            resolve_conj=self._resolve_conj,
            resolve_neg=lambda t, p: t.resolve_neg(),
            cast_on_device=self._cast_on_device,
            to_host=self._to_host,
            numpy_view=lambda t, p: t.numpy(),
            bit_view=self._bit_view,
            unpack_fp4=self._unpack_fp4,
            densify=lambda t, p: t.to_dense(),
            to_scipy=self._to_scipy,
            pad=self._pad,
            unbind=self._unbind,
        )

    def matches(self, cls: type) -> bool:
        return issubclass(cls, self.torch.Tensor)

    def host_view_for(self, cls: type, /) -> Any:
        # Exactly the zero-copy answers of the plan, checked in the order of their
        # cost: outside torch.func transforms (inside one, a tensor's storage need
        # not hold its values), a dense CPU tensor with no conjugate or negative bit,
        # of a dtype NumPy has (Tensor.numpy()) or one read through a same-width
        # integer view (bfloat16, float8, shell dtypes). A tensor that requires grad
        # is detached and its view made read-only, as the plan does.
        if cls not in self._plain:
            return None
        transforms_active = self._transforms_active
        numpy = self.torch.Tensor.numpy
        detach = self.torch.Tensor.detach
        strided = self.torch.strided
        kinds = self._view_kinds

        def view(t: Any) -> np.ndarray[Any, Any] | None:
            kind = kinds.get(t.dtype)
            if (
                kind is None
                or not t.is_cpu
                or t.layout is not strided
                or t.is_nested
                or t.is_neg()
                or transforms_active()
                or (kind is _COMPLEX and t.is_conj())
            ):
                return None
            if t.requires_grad:
                t = detach(t)
                a = numpy(t) if kind[0] is None else numpy(t.view(kind[0])).view(kind[1])
                a.flags.writeable = False
                return a  # type: ignore[no-any-return]
            if kind[0] is None:
                return numpy(t)  # type: ignore[no-any-return]
            return numpy(t.view(kind[0])).view(kind[1])  # type: ignore[no-any-return]

        return view

    def plan_key(self, x: Any, /) -> Any:
        t: torch.Tensor = x
        if t.layout is not self.torch.strided or t.is_nested or self._transforms_active():
            return None  # sparse and nested plans depend on shapes; transforms on the tensor
        return (type(t), t.dtype, t.device, t.requires_grad, t.is_conj(), t.is_neg())

    def run(self, x: Any, plan: Plan, /) -> np.ndarray[Any, Any]:
        if self._transforms_active():
            # The plan refuses the transform's own wrappers. A real tensor captured
            # from outside the transform has values, but while the transform is
            # active even its .numpy() goes through the transform's layer, so the
            # steps run with functorch switched off.
            with self._functorch_off():
                return super().run(x, plan)
        return super().run(x, plan)

    # -- accelerators ---------------------------------------------------------------

    def accelerator_check(self) -> Any:
        # Until CUDA is initialised no tensor can be on a CUDA device; once it is,
        # it stays so.
        if not self.torch.cuda.is_initialized():
            return None
        return _is_cuda

    def start_copy(self, obj: Any, /) -> tuple[Any, int, Any] | None:
        t: torch.Tensor = obj
        if not t.is_cuda:
            return None
        torch = self.torch
        # The copy runs on the current stream of the tensor's device, after the work
        # that produced the tensor; pinned memory is what lets it run asynchronously.
        stream = torch.cuda.current_stream(t.device)
        host = torch.empty(t.shape, dtype=t.dtype, device="cpu", pin_memory=True)
        host.copy_(t, non_blocking=True)
        # The host tensor stands for what the `to_host` step returns: skip that step.
        return host, 1, stream

    # -- planning ---------------------------------------------------------------

    def plan(self, x: Any, options: Options, /) -> Plan:
        t: torch.Tensor = x
        self._check_has_data(t)
        steps: list[str] = []
        reason: str | None = None
        device = _device_str(t)
        transfer = t.device.type != "cpu"
        if type(t) not in self._plain and self._is_dtensor(t):
            steps.append("gather")
            reason = "a DTensor is gathered into one new tensor with full_tensor()"
        if t.is_nested:
            return self._plan_nested(t, options, steps, device, transfer)
        if t.layout is not self.torch.strided:
            return self._plan_sparse(t, options, steps, device, transfer)
        if t.requires_grad:
            steps.append("detach")
        if t.is_conj():
            steps.append("resolve_conj")
            reason = reason or "the tensor has its conjugate bit set; resolve_conj() copies"
        if t.is_neg():
            steps.append("resolve_neg")
            reason = reason or "the tensor has its negative bit set; resolve_neg() copies"
        return self._plan_values(t, options, steps, reason, device, transfer, on_device=transfer)

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
        target = options.dtype
        if options.upcast and target is None:
            target = _dtypes.upcast_target(source)
        if on_device:
            # Casting on the device first moves fewer bytes over the bus.
            cast_dtype = self._torch_dtype(target) if target is not None else None
            if cast_dtype is not None and cast_dtype.itemsize < tdt.itemsize:
                steps.append("cast_on_device")
                source = target  # type: ignore[assignment]
                tdt = cast_dtype
            steps.append("to_host")
            reason = reason or f"the data is on {device} and must be copied to host memory"
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
                # complex32 stays out: its conjugate bit is resolved by the plan.
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

    def _plan_sparse(
        self, t: torch.Tensor, options: Options, steps: list[str], device: str, transfer: bool
    ) -> Plan:
        layout = str(t.layout).removeprefix("torch.")
        if options.sparse == "error":
            raise ConversionError(
                f"expected a dense (strided) tensor, got a {layout} tensor of shape "
                f"{tuple(t.shape)} (`{type_name(t)}`), which has no single NumPy layout. "
                'hint: pass sparse="dense" for a dense NumPy array, or sparse="scipy" for '
                "a scipy.sparse array"
            )
        if t.requires_grad:
            steps.append("detach")
        if transfer:
            steps.append("to_host")
        if options.sparse == "dense":
            steps.append("densify")
            reason = f"densifying a {layout} tensor copies"
            return self._plan_values(t, options, steps, reason, device, transfer, on_device=False)
        # sparse == "scipy"
        self._check_scipy_shape(t, layout)
        dtype = options.dtype
        source = self._numpy_dtype(t.dtype)
        if dtype is None:
            dtype = (_dtypes.upcast_target(source) if options.upcast else None) or source
        if not (dtype.kind in _SCIPY_KINDS or dtype in _SCIPY_FLOATS):
            raise ConversionError(
                f"expected values scipy.sparse can hold, got {dtype} values in a {layout} "
                f"tensor (`{type_name(t)}`); scipy.sparse supports bool, integers, float32, "
                "float64 and complex. hint: pass upcast=True or dtype=np.float32, or "
                'sparse="dense"'
            )
        steps.append("to_scipy")
        return Plan(
            framework="torch",
            device=device,
            zero_copy=False,
            transfer=transfer,
            steps=tuple(steps),
            dtype=dtype,
            copy_reason=f"a scipy.sparse array is built from copies of the {layout} "
            "tensor's indices and values",
        )

    def _check_scipy_shape(self, t: torch.Tensor, layout: str) -> None:
        problem = None
        if t.dense_dim() > 0:
            problem = f"it has {t.dense_dim()} dense dimension(s) (a hybrid tensor)"
        elif layout == "sparse_coo":
            if t.ndim != 2:
                import scipy

                version = tuple(int(p) for p in scipy.__version__.split(".")[:2])
                if version < (1, 15) or t.ndim == 0:
                    problem = f"scipy {scipy.__version__} has no {t.ndim}-d COO array"
        elif t.ndim != 2:
            problem = f"it is batched ({t.ndim}-d); scipy.sparse has 2-d {layout[7:]} arrays only"
        if problem is not None:
            raise ConversionError(
                f"expected a sparse tensor scipy.sparse can represent, got a {layout} tensor "
                f'of shape {tuple(t.shape)}: {problem}. hint: pass sparse="dense" instead'
            )

    def _plan_nested(
        self, t: torch.Tensor, options: Options, steps: list[str], device: str, transfer: bool
    ) -> Plan:
        if options.ragged == "error":
            raise ConversionError(
                f"expected a tensor with a regular shape, got a nested tensor "
                f"(`{type_name(t)}`, layout {t.layout}) of {t.size(0)} components with "
                'different shapes. hint: pass ragged="object" for an object array of '
                'NumPy arrays, or ragged="pad" for a zero-padded dense array'
            )
        if t.requires_grad:
            steps.append("detach")
        if transfer:
            steps.append("to_host")
        if options.ragged == "pad":
            steps.append("pad")
            reason = "padding a nested tensor into a dense one copies"
            return self._plan_values(t, options, steps, reason, device, transfer, on_device=False)
        # ragged == "object": every component converted on its own, into memory it owns.
        steps.append("unbind")
        source = self._numpy_dtype(t.dtype)
        element = options.dtype
        if element is None:
            element = (_dtypes.upcast_target(source) if options.upcast else None) or source
        parts = Options(copy=True, dtype=element)
        return Plan(
            framework="torch",
            device=device,
            zero_copy=False,
            transfer=transfer,
            steps=tuple(steps),
            dtype=np.dtype(object),
            copy_reason="a nested tensor becomes a new object array of copies of its components",
            prepared=parts,
        )

    def _check_has_data(self, t: torch.Tensor) -> None:
        cls = type(t)
        if self._is_wrapped is not None and self._is_wrapped(t):
            raise ConversionError(
                f"expected a tensor with values, got a `{type_name(t)}` seen inside a "
                "torch.func transform (vmap, grad, jvp, jacrev, functionalize, ...), a "
                "wrapper whose values are not materialised. hint: return the values from "
                "the transformed function and convert them outside it"
            )
        if t.device.type == "meta":
            raise ConversionError(
                f"expected a tensor with data, got a `{type_name(t)}` on the meta device, "
                "which has shape and dtype but no values. hint: materialise it (for example "
                "with torch.empty_like(t, device='cpu') and loading real values) first"
            )
        if cls not in self._plain and cls.__torch_dispatch__ is not self._default_dispatch:
            if t.is_nested or self._is_dtensor(t):
                pass
            elif self._is_fake(t):
                raise ConversionError(
                    f"expected a tensor with data, got a `{type_name(t)}`, which has shape, "
                    "dtype and device but no values (it comes from FakeTensorMode or "
                    "torch.compile tracing). hint: convert real tensors outside the fake "
                    "mode or the compiled region"
                )
            else:
                raise ConversionError(
                    f"expected a tensor that holds its own data, got a `{type_name(t)}`, a "
                    "tensor subclass that computes through __torch_dispatch__, whose storage "
                    "need not hold its values. hint: convert the plain tensor(s) it wraps, or "
                    "a plain tensor it produces (for example its dequantize())"
                )
        if t.is_quantized:
            raise ConversionError(
                f"expected a tensor with a plain dtype, got a quantized {t.dtype} tensor "
                f"(`{type_name(t)}`). hint: call .dequantize() for the real values, or "
                ".int_repr() for the stored integers"
            )

    def _is_fake(self, t: torch.Tensor) -> bool:
        module = sys.modules.get("torch._subclasses.fake_tensor")
        cls = getattr(module, "FakeTensor", None)
        return cls is not None and isinstance(t, cls)

    def _is_dtensor(self, t: torch.Tensor) -> bool:
        for modname in ("torch.distributed.tensor", "torch.distributed._tensor"):
            module = sys.modules.get(modname)
            cls = getattr(module, "DTensor", None)
            if cls is not None and isinstance(t, cls):
                return True
        return False

    def _numpy_dtype(self, tdt: Any) -> np.dtype[Any]:
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
        # NumPy dtype -> torch dtype (or None), filled as dtypes are met: building it
        # up front would import ml_dtypes for every PyTorch user.
        known: dict[np.dtype[Any], Any] = self.__dict__.setdefault("_torch_dtypes", {})
        try:
            return known[dtype]
        except KeyError:
            pass
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

    # -- steps ----------------------------------------------------------------------

    def _gather(self, t: Any, plan: Plan) -> torch.Tensor:
        full: torch.Tensor = t.full_tensor()
        # Where no collective is needed (one rank, or a replicated placement),
        # full_tensor() returns the local shard itself; the plan promised new memory.
        local = t.to_local()
        if full.untyped_storage().data_ptr() == local.untyped_storage().data_ptr():
            full = full.clone()
        return full

    def _resolve_conj(self, t: torch.Tensor, plan: Plan) -> torch.Tensor:
        torch = self.torch
        if t.dtype is not torch.complex32:
            return t.resolve_conj()
        # resolve_conj() would allocate a complex32 tensor, and PyTorch warns on the
        # first such allocation that ComplexHalf support is experimental: conjugate
        # the float16 pairs instead, into a new tensor viewed back as complex32.
        pairs = torch.view_as_real(t.conj()).clone(memory_format=torch.contiguous_format)
        pairs[..., 1].neg_()
        return torch.view_as_complex(pairs)

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

    def _bit_view(self, t: torch.Tensor, plan: Plan) -> np.ndarray[Any, Any]:
        mlname, inttype = self._bit_formats[t.dtype]
        ml = _dtypes.complex32() if mlname == "complex32" else _dtypes.ml_dtype(mlname)
        return t.view(inttype).numpy().view(ml)  # type: ignore[no-any-return]

    def _unpack_fp4(self, t: torch.Tensor, plan: Plan) -> np.ndarray[Any, Any]:
        # PyTorch's convention (as in its float4 matmul tests and cuBLAS): the first
        # value of a pair sits in the low nibble.
        packed = np.atleast_1d(t.view(self.torch.uint8).numpy())
        out = np.empty((*packed.shape[:-1], 2 * packed.shape[-1]), dtype=np.uint8)
        np.bitwise_and(packed, 0x0F, out=out[..., 0::2])
        np.right_shift(packed, 4, out=out[..., 1::2])
        return out.view(_dtypes.ml_dtype("float4_e2m1fn"))

    def _to_scipy(self, t: torch.Tensor, plan: Plan) -> Any:
        import scipy.sparse

        torch = self.torch
        values = Options(copy=True, dtype=plan.dtype)
        indices = Options(copy=True)
        shape = tuple(t.shape)
        layout = t.layout
        if layout is torch.sparse_coo:
            if not t.is_coalesced():
                t = t.coalesce()
            coords = self.to_numpy(t.indices(), indices)
            data = self.to_numpy(t.values(), values)
            return scipy.sparse.coo_array((data, tuple(coords)), shape=shape)
        if layout in (torch.sparse_csr, torch.sparse_bsr):
            compressed, plain = t.crow_indices(), t.col_indices()
        else:
            compressed, plain = t.ccol_indices(), t.row_indices()
        parts = (
            self.to_numpy(t.values(), values),
            self.to_numpy(plain, indices),
            self.to_numpy(compressed, indices),
        )
        if layout is torch.sparse_csr:
            return scipy.sparse.csr_array(parts, shape=shape)
        if layout is torch.sparse_csc:
            return scipy.sparse.csc_array(parts, shape=shape)
        if layout is torch.sparse_bsr:
            return scipy.sparse.bsr_array(parts, shape=shape)
        # BSC has no scipy class: its blocks, compressed by columns, are the BSR blocks
        # of the transpose, so the result is a bsr_array with the same blocks.
        blocks, rows, ccols = parts
        transposed = scipy.sparse.bsr_array(
            (blocks.transpose(0, 2, 1), rows, ccols), shape=(shape[1], shape[0])
        )
        return transposed.transpose()

    def _pad(self, t: torch.Tensor, plan: Plan) -> torch.Tensor:
        torch = self.torch
        try:
            return torch.nested.to_padded_tensor(t, 0)
        except (RuntimeError, NotImplementedError):
            pass  # no padding kernel for this dtype: pad its bits as integers
        parts = t.unbind()
        bits = self._bit_formats.get(t.dtype)
        inttype = bits[1] if bits is not None else getattr(torch, _INT_VIEW[t.dtype.itemsize])
        ndim = t.dim() - 1
        shape = [len(parts)] + [max((p.shape[d] for p in parts), default=0) for d in range(ndim)]
        out = torch.zeros(shape, dtype=inttype)
        for i, p in enumerate(parts):
            out[(i, *(slice(0, n) for n in p.shape))] = p.view(inttype)
        return out.view(t.dtype)

    def _unbind(self, t: torch.Tensor, plan: Plan) -> np.ndarray[Any, Any]:
        parts = t.unbind()
        out = np.empty(len(parts), dtype=object)
        for i, p in enumerate(parts):
            out[i] = self.to_numpy(p, plan.prepared)
        return out

    # -- conversion into this framework --

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
        if x.is_conj() or x.is_neg() or x.layout is not self.torch.strided or x.is_quantized:
            return None
        if self._torch_dtype(dtype) is None:
            return None
        return x.detach() if x.requires_grad else x
