"""Dask arrays.

A Dask array is a lazy graph of tasks, not memory: converting it runs the graph
(``compute``, with the active Dask scheduler) and returns the result. That is always
new memory as far as the caller can tell, so ``copy=False`` raises
:class:`~interop.CopyRequiredError` before anything is computed.

Why ``copy=True`` adds a ``copy`` after ``compute``: a graph may hand back an array
it holds rather than a new one (``da.from_array(a, asarray=False)``, a
``from_delayed`` of an existing array), and the contract says a ``copy=True`` result
shares nothing.

Chunks that are not NumPy arrays (CuPy, sparse) are converted after computing, by
the backend of the computed object and under the same options.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from interop import _dtypes, _plan
from interop._backend import Backend
from interop._errors import ConversionError, type_name
from interop._options import Options
from interop._plan import Plan

__all__ = ["DaskBackend"]


class DaskBackend(Backend):
    """``dask.array.Array``."""

    name = "dask"
    module = "dask"

    def __init__(self) -> None:
        super().__init__()
        self.steps.update(compute=self._compute)

    def matches(self, cls: type) -> bool:
        # A Dask array can only exist once dask.array was imported; importing "dask"
        # alone (for dask.dataframe, say) must not import it.
        da = sys.modules.get("dask.array")
        return da is not None and issubclass(cls, da.Array)

    def plan(self, x: Any, options: Options, /) -> Plan:
        meta = getattr(x, "_meta", None)
        chunk_module = type(meta).__module__.partition(".")[0] if meta is not None else "numpy"
        transfer = chunk_module == "cupy"
        steps = ["compute"]
        if options.copy is True:
            steps.append("copy")
        source = np.dtype(x.dtype)
        return _plan.finish(
            self.name,
            "cuda" if transfer else "cpu",
            steps,
            source_dtype=source,
            options=options,
            copy_reason="a Dask array is a lazy graph; computing it builds a new array",
            transfer=transfer,
            upcast_to=_dtypes.upcast_target(source),
            # The options the computed chunks are converted under, when they are not
            # NumPy arrays.
            prepared=options.replace(dtype=None, upcast=False, copy=None),
        )

    def _compute(self, x: Any, plan: Plan) -> np.ndarray[Any, Any]:
        result = x.compute()
        if type(result) is np.ndarray:
            return result
        if isinstance(result, np.generic):
            return np.asarray(result)
        # Chunks of another framework (CuPy, sparse, ...): their own backend converts.
        opts: Options = plan.prepared
        backend = self.lookup(type(result))
        if backend is None:
            raise ConversionError(
                f"expected a Dask array whose chunks are arrays, got chunks that compute "
                f"to `{type_name(result)}`. hint: map the chunks to NumPy arrays first"
            )
        return backend.to_numpy(result, opts)
