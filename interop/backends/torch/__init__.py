"""PyTorch tensors: ``torch.Tensor``, ``nn.Parameter``, tensor subclasses and their special cases.

The backend is assembled from parts, each in its own module:

* :mod:`~interop.backends.torch.base`: the torch module, its dtypes, and the value
  steps of a dense tensor (``numpy_view``; ``bit_view`` for bfloat16, float8,
  complex32 and the shell dtypes through a same-width integer view, zero-copy;
  ``unpack_fp4`` for ``torch.float4_e2m1fn_x2``, a copy; ``to_host``);
* :mod:`~interop.backends.torch.source`: the host view, the plan of a dense tensor
  (``detach``; ``resolve_conj``/``resolve_neg`` for conjugate and negative bits;
  ``zeros`` for a ZeroTensor), refusal of tensors that hold no data (meta, fake,
  ``torch.func`` wrappers, other ``__torch_dispatch__`` subclasses), accelerators;
* :mod:`~interop.backends.torch.layouts`: sparse layouts (the ``sparse=`` policy),
  nested and jagged tensors (the ``ragged=`` policy), ``DTensor`` (``gather``);
* :mod:`~interop.backends.torch.target`: PyTorch as the target of ``convert``;
* :mod:`~interop.backends.torch.pytree`: containers registered with PyTorch's
  pytree registry, taken apart and rebuilt by the tree functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from interop._options import Options
from interop._plan import Plan
from interop.backends.torch.base import device_str, is_dtensor
from interop.backends.torch.layouts import Layouts
from interop.backends.torch.pytree import PytreeNodes
from interop.backends.torch.source import Source
from interop.backends.torch.target import Target

if TYPE_CHECKING:
    import torch

__all__ = ["TorchBackend"]


class TorchBackend(Source, Layouts, Target, PytreeNodes):
    """``torch.Tensor`` and its subclasses."""

    name = "torch"
    module = "torch"

    def plan(self, x: Any, options: Options, /) -> Plan:
        t: torch.Tensor = x
        missing = self.missing_data(t)
        if missing is not None:
            raise missing
        steps: list[str] = []
        reason: str | None = None
        device = device_str(t)
        transfer = t.device.type != "cpu"
        if type(t) not in self._plain and is_dtensor(t):
            steps.append("gather")
            reason = "a DTensor is gathered into one new tensor with full_tensor()"
        if t.is_nested:
            return self._plan_nested(t, options, steps, device, transfer)
        if t.layout is not self.torch.strided:
            return self._plan_sparse(t, options, steps, device, transfer)
        return self._plan_dense(t, options, steps, reason, device, transfer)
