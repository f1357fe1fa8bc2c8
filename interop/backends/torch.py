"""PyTorch tensors: ``torch.Tensor``, ``nn.Parameter`` and tensor subclasses.

The fast path is ``Tensor.numpy()`` itself, tried only for plain tensors under the
default options: it is the fastest zero-copy call there is, and it raises for every
case that needs more care (grad, conj/neg bits, devices, nonstandard dtypes,
sparse, nested, quantized, meta), which then goes through the planned path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from interop import _dtypes, _plan
from interop._errors import ConversionError, type_name
from interop._options import DEFAULT, Options
from interop._plan import Plan
from interop._registry import Backend

if TYPE_CHECKING:
    import torch

__all__ = ["TorchBackend"]

# torch dtype name -> (ml_dtypes name, same-width integer torch dtype name used to
# reinterpret the bits). Dtypes NumPy has natively are not listed: Tensor.numpy()
# handles them.
_BIT_VIEWS = {
    "bfloat16": ("bfloat16", "int16"),
    "float8_e4m3fn": ("float8_e4m3fn", "uint8"),
    "float8_e5m2": ("float8_e5m2", "uint8"),
    "float8_e4m3fnuz": ("float8_e4m3fnuz", "uint8"),
    "float8_e5m2fnuz": ("float8_e5m2fnuz", "uint8"),
    "float8_e8m0fnu": ("float8_e8m0fnu", "uint8"),
}

_COMPLEX32 = np.dtype([("real", np.float16), ("imag", np.float16)])


def _device_str(t: torch.Tensor) -> str:
    d = t.device
    return d.type if d.index is None else f"{d.type}:{d.index}"


class TorchBackend(Backend):
    """``torch.Tensor`` and its subclasses."""

    name = "torch"
    module = "torch"

    def load(self) -> None:
        import torch

        self.torch = torch
        self._plain = (torch.Tensor, torch.nn.Parameter)
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
        self._bit_views: dict[Any, tuple[str, Any]] = {}
        for tname, (mlname, intname) in _BIT_VIEWS.items():
            tdt = getattr(torch, tname, None)
            if tdt is not None:
                self._bit_views[tdt] = (mlname, getattr(torch, intname))
        self.steps.update(
            detach=lambda t, p: t.detach(),
            resolve_conj=lambda t, p: t.resolve_conj(),
            resolve_neg=lambda t, p: t.resolve_neg(),
            cast_on_device=self._cast_on_device,
            to_host=self._to_host,
            numpy_view=lambda t, p: t.numpy(),
            bit_view=self._bit_view,
            complex32_view=self._complex32_view,
        )

    def matches(self, cls: type) -> bool:
        return issubclass(cls, self.torch.Tensor)

    def fast_path(self, cls: type, /) -> Any:
        # Tensor.numpy itself, called without a Python frame in between: it raises
        # for every case that needs the planned path (see the module docstring).
        return self.torch.Tensor.numpy if cls in self._plain else None

    def to_numpy(self, x: Any, options: Options, /) -> np.ndarray[Any, Any]:
        # Checked first, so that interop.to_numpy, whose fast path has just raised
        # for this tensor, does not pay for a second exception (about 10 us each).
        if (
            options is DEFAULT
            and type(x) in self._plain
            and x.is_cpu
            and not x.requires_grad
            and x.dtype in self._numpy_dtypes
        ):
            try:
                return x.numpy()  # type: ignore[no-any-return]
            except (RuntimeError, TypeError):
                pass
        return super().to_numpy(x, options)

    # -- planning ---------------------------------------------------------------

    def plan(self, x: Any, options: Options, /) -> Plan:
        t: torch.Tensor = x
        self._check_has_data(t)
        steps: list[str] = []
        reason: str | None = None
        device = _device_str(t)
        if t.requires_grad:
            steps.append("detach")
        if t.is_conj():
            steps.append("resolve_conj")
            reason = "the tensor has its conjugate bit set; resolve_conj() copies"
        if t.is_neg():
            steps.append("resolve_neg")
            reason = reason or "the tensor has its negative bit set; resolve_neg() copies"

        source = self._numpy_dtype(t.dtype)
        target = options.dtype
        if options.upcast and target is None:
            target = _dtypes.upcast_target(source)
        transfer = t.device.type != "cpu"
        if transfer:
            # Casting on the device first moves fewer bytes over the bus.
            cast_dtype = self._torch_dtype(target) if target is not None else None
            if cast_dtype is not None and cast_dtype.itemsize < t.dtype.itemsize:
                steps.append("cast_on_device")
                source = target  # type: ignore[assignment]
            steps.append("to_host")
            reason = reason or f"the data is on {device} and must be copied to host memory"
        if source == _COMPLEX32:
            steps.append("complex32_view")
        elif source.type.__module__ == "ml_dtypes":
            steps.append("bit_view")
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
            upcast_to=_dtypes.upcast_target(source),
        )

    def _check_has_data(self, t: torch.Tensor) -> None:
        if t.layout is not self.torch.strided or t.is_nested:
            raise ConversionError(
                f"expected a dense (strided) tensor, got a {t.layout} tensor "
                f"(`{type_name(t)}`); sparse and nested layouts are not supported here. "
                "hint: call .to_dense() first"
            )
        if t.is_quantized:
            raise ConversionError(
                f"expected a tensor with a plain dtype, got a quantized {t.dtype} tensor. "
                "hint: call .dequantize() for real values, or .int_repr() for the stored integers"
            )
        if t.device.type == "meta":
            raise ConversionError(
                "expected a tensor with data, got a tensor on the meta device, which has "
                "shape and dtype but no values. hint: materialise it (for example with "
                "torch.empty_like(t, device='cpu')) before converting"
            )

    def _numpy_dtype(self, tdt: Any) -> np.dtype[Any]:
        found = self._numpy_dtypes.get(tdt)
        if found is not None:
            return found
        bits = self._bit_views.get(tdt)
        if bits is not None:
            ml = _dtypes.ml_dtype(bits[0])
            if ml is not None:
                return ml
        if tdt is self.torch.complex32:
            return _COMPLEX32
        raise ConversionError(
            f"expected a tensor dtype NumPy or ml_dtypes can represent, got {tdt}. "
            "hint: cast it with .to(torch.float32) first"
        )

    def _torch_dtype(self, dtype: np.dtype[Any]) -> Any:
        for tdt, ndt in self._numpy_dtypes.items():
            if ndt == dtype:
                return tdt
        for tdt, (mlname, _) in self._bit_views.items():
            if _dtypes.ml_dtype(mlname) == dtype:
                return tdt
        return None

    # -- steps ----------------------------------------------------------------------

    def _cast_on_device(self, t: torch.Tensor, plan: Plan) -> torch.Tensor:
        assert plan.dtype is not None
        return t.to(self._torch_dtype(plan.dtype))

    def _to_host(self, t: torch.Tensor, plan: Plan) -> torch.Tensor:
        # A blocking copy: the data is complete when .cpu() returns.
        return t.cpu()

    def _bit_view(self, t: torch.Tensor, plan: Plan) -> np.ndarray[Any, Any]:
        mlname, inttype = self._bit_views[t.dtype]
        return t.view(inttype).numpy().view(_dtypes.ml_dtype(mlname))  # type: ignore[no-any-return]

    def _complex32_view(self, t: torch.Tensor, plan: Plan) -> np.ndarray[Any, Any]:
        pairs = self.torch.view_as_real(t).numpy()
        return pairs.view(_COMPLEX32)[..., 0]  # type: ignore[no-any-return]
