"""NumPy arrays and NumPy scalars.

A NumPy array is returned as the very same object under ``copy=None``; the only
work ever done is the one the options ask for (an upcast of an ``ml_dtypes`` dtype,
a cast, or a copy).

A masked array (``np.ma.MaskedArray``) stays one: ``copy=True`` copies its data and
its mask, and a cast keeps the mask. Converted to another framework, whose arrays
carry no mask, one with a masked entry is refused (:func:`interop._plan.mask_loss`):
the values under its mask would become data. One with no entry masked converts
its data as it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interop import _plan
from interop._backend import HostTarget
from interop._dtypes import upcast_target
from interop._options import Options
from interop._plan import Plan

__all__ = ["NumpyBackend"]


def _itself(x: Any) -> Any:
    return x


def _as_array(x: Any, plan: Plan) -> np.ndarray[Any, Any]:
    return np.asarray(x)


class NumpyBackend(HostTarget):
    """NumPy's ``ndarray`` (and subclasses) and NumPy scalars (``np.generic``)."""

    name = "numpy"
    title = "NumPy"
    host_only = (
        "NumPy arrays live in host memory. hint: convert to a framework that supports that device"
    )
    module = "numpy"
    is_numpy = True

    def __init__(self) -> None:
        super().__init__()
        self.steps["scalar_to_array"] = _as_array

    def matches(self, cls: type) -> bool:
        return issubclass(cls, (np.ndarray, np.generic))

    def plan(self, x: Any, options: Options, /) -> Plan:
        steps: list[str] = []
        reason = None
        if not isinstance(x, np.ndarray):
            steps.append("scalar_to_array")
            reason = "a NumPy scalar has no array memory to share; a 0-d array is created"
        dtype = x.dtype
        return _plan.finish(
            "numpy",
            "cpu",
            steps,
            source_dtype=dtype,
            options=options,
            copy_reason=reason,
            source_readonly=isinstance(x, np.ndarray) and not x.flags.writeable,
            upcast_to=upcast_target(dtype),
        )

    def host_view_for(self, cls: type, /) -> Any:
        # The plan of an ndarray under the default options has no step: the view is x.
        return _itself if cls is np.ndarray else None

    def plan_key(self, x: Any, /) -> Any:
        if type(x) is np.ndarray:
            return (x.dtype, x.flags.writeable)
        if isinstance(x, np.generic):  # (a scalar's plan depends on its dtype alone)
            return (type(x), x.dtype)
        return None

    # -- conversion into this framework --

    def from_numpy(self, a: np.ndarray[Any, Any], /, *, device: Any, copy: bool) -> Any:
        return np.array(a, copy=True, order="K") if copy else a

    def readonly_source(self, x: Any, /) -> bool:
        return isinstance(x, np.ndarray) and not x.flags.writeable
