"""Tensors without one NumPy layout: sparse, nested (jagged or strided) and ``DTensor``.

* sparse layouts follow the ``sparse=`` policy: ``densify`` (``to_dense()``) or
  ``to_scipy`` (the matching ``scipy.sparse`` array, built from copies), after
  ``validate``: a tensor built with ``check_invariants=False`` may hold indices out of
  its shape, which ``to_dense()`` drops silently or writes out of bounds with (a crash
  of the process), so its invariants are checked first (linear in the number of
  stored values, as the conversion itself);
* nested tensors follow the ``ragged=`` policy: ``unbind`` (an object array of the
  components) or ``pad`` (zero-padded, also for dtypes PyTorch cannot pad itself);
* a ``DTensor`` is gathered into one new tensor (``full_tensor()``) first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from interop import _plan
from interop._errors import ConversionError, policy_error, type_name
from interop._options import Options
from interop._plan import Plan
from interop.backends.torch.base import TorchBase

if TYPE_CHECKING:
    import torch

__all__ = ["Layouts"]

# Dtypes torch.nested.to_padded_tensor pads in both layouts (strided and jagged).
_PADDABLE = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")


class Layouts(TorchBase):
    """Sparse and nested tensors, and DTensor gathering."""

    def load(self) -> None:
        super().load()
        self.steps.update(
            gather=self._gather,
            validate=self._validate,
            densify=lambda t, p: t.to_dense(),
            to_scipy=self._to_scipy,
            pad=self._pad,
            unbind=self._unbind,
        )
        torch = self.torch
        self._paddable = {getattr(torch, n) for n in _PADDABLE}

    # -- planning -------------------------------------------------------------------

    def _plan_sparse(
        self, t: torch.Tensor, options: Options, steps: list[str], device: str, transfer: bool
    ) -> Plan:
        layout = str(t.layout).removeprefix("torch.")
        if options.sparse == "error":
            raise policy_error(
                f"expected a dense (strided) tensor, got a {layout} tensor of shape "
                f"{tuple(t.shape)} (`{type_name(t)}`), which has no single NumPy layout. "
                "hint: pass sparse='dense' for a dense NumPy array, or sparse='scipy' for "
                "a scipy.sparse array",
                "sparse",
            )
        if t.requires_grad:
            steps.append("detach")
        if transfer:
            steps.append("to_host")
        steps.append("validate")
        if options.sparse == "dense":
            steps.append("densify")
            reason = f"densifying a {layout} tensor copies"
            return self._plan_values(t, options, steps, reason, device, transfer, on_device=False)
        # sparse == "scipy"
        self._check_scipy_shape(t, layout)
        source = self._numpy_dtype(t.dtype)
        dtype = _plan.scipy_dtype(source, options, f"a {layout} tensor (`{type_name(t)}`)")
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
                f"of shape {tuple(t.shape)}: {problem}. hint: pass sparse='dense' instead"
            )

    def _plan_nested(
        self, t: torch.Tensor, options: Options, steps: list[str], device: str, transfer: bool
    ) -> Plan:
        if options.ragged == "error":
            raise policy_error(
                f"expected a tensor with a regular shape, got a nested tensor "
                f"(`{type_name(t)}`, layout {t.layout}) of {t.size(0)} components with "
                "different shapes. hint: pass ragged='object' for an object array of "
                "NumPy arrays, or ragged='pad' for a zero-padded dense array",
                "ragged",
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
        element = _plan.values_dtype(source, options) or source
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

    # -- steps ----------------------------------------------------------------------

    def _gather(self, t: Any, plan: Plan) -> torch.Tensor:
        full: torch.Tensor = t.full_tensor()
        # Where no collective is needed (one rank, or a replicated placement),
        # full_tensor() returns the local shard itself; the plan promised new memory.
        local = t.to_local()
        if full.untyped_storage().data_ptr() == local.untyped_storage().data_ptr():
            full = full.clone()
        return full

    def _validate(self, t: torch.Tensor, plan: Plan) -> torch.Tensor:
        """The ``validate`` step: ``t`` itself, once its indices are seen to fit its layout."""
        torch = self.torch
        layout = t.layout
        try:
            if layout is torch.sparse_coo:
                torch.sparse_coo_tensor(t._indices(), t._values(), t.shape, check_invariants=True)
            else:
                compressed, plain = _compressed_indices(torch, t)
                torch.sparse_compressed_tensor(
                    compressed, plain, t.values(), t.shape, layout=layout, check_invariants=True
                )
        except RuntimeError as exc:
            said = str(exc).partition("\n")[0].rstrip(".")
            name = str(layout).removeprefix("torch.")
            raise ConversionError(
                f"expected a {name} tensor whose indices fit its shape, got one of shape "
                f"{tuple(t.shape)} that breaks its invariants ({said}). hint: it was built "
                "with check_invariants=False; build it with check_invariants=True to find "
                "the indices at fault"
            ) from exc
        return t

    def _to_scipy(self, t: torch.Tensor, plan: Plan) -> Any:
        import scipy.sparse

        torch = self.torch
        values = Options(copy=True, dtype=plan.cast_target)
        indices = Options(copy=True)
        shape = tuple(t.shape)
        layout = t.layout
        if layout is torch.sparse_coo:
            if not t.is_coalesced():
                t = t.coalesce()
            coords = self.to_numpy(t.indices(), indices)
            data = self.to_numpy(t.values(), values)
            return scipy.sparse.coo_array((data, tuple(coords)), shape=shape)
        compressed, plain = _compressed_indices(torch, t)
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
        if t.dtype in self._paddable:
            return torch.nested.to_padded_tensor(t, 0)
        # No padding kernel for this dtype (in one layout or another): the zeros and
        # each component are written in the dtype itself, or, for dtypes without
        # kernels (bfloat16 and float8 bits, shell dtypes), as same-width integers.
        bits = self._bit_formats.get(t.dtype)
        inttype = bits[1] if bits is not None else None
        if t.dtype is self._fp4x2:
            inttype = torch.uint8
        parts = t.unbind()
        ndim = t.dim() - 1
        shape = [len(parts)] + [max((p.shape[d] for p in parts), default=0) for d in range(ndim)]
        # (On the tensor's own device: a default device set by the caller, meta say,
        # must not place it.)
        out = torch.zeros(shape, dtype=inttype or t.dtype, device=t.device)
        for i, p in enumerate(parts):
            out[(i, *(slice(0, n) for n in p.shape))] = p if inttype is None else p.view(inttype)
        return out if inttype is None else out.view(t.dtype)

    def _unbind(self, t: torch.Tensor, plan: Plan) -> np.ndarray[Any, Any]:
        parts = t.unbind()
        out = np.empty(len(parts), dtype=object)
        for i, p in enumerate(parts):
            out[i] = self.to_numpy(p, plan.prepared)
        return out


def _compressed_indices(torch: Any, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The compressed and the plain indices of a CSR, CSC, BSR or BSC tensor."""
    if t.layout in (torch.sparse_csr, torch.sparse_bsr):
        return t.crow_indices(), t.col_indices()
    return t.ccol_indices(), t.row_indices()
