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

The plan is made from the dtype the array declares (its metadata), which chunks
may contradict (a wrong ``dtype=`` given to ``map_blocks``): the computed dtype is
checked, and the tail of the plan (the cast to ``dtype=``, ``float_dtype=``,
``upcast``) planned again from it, so that the result has the dtype the plan
promises, or is refused where that would lose values nobody asked to lose.

Chunks that are masked arrays compute to a masked array, which the result keeps
(the NumPy backend's rule: masked entries never become data).

As the target of :func:`interop.convert` (and so of ``numpy_function`` for a Dask
argument), a Dask array of one chunk is made in host memory: the chunk is the
NumPy array itself where no copy is asked for (a graph never writes into its
chunks: Dask's ``__setitem__`` builds new ones), else a copy of it.
"""

from __future__ import annotations

import importlib
import math
import sys
import uuid
from typing import Any

import numpy as np

from interop import _dtypes, _plan
from interop._backend import HostTarget
from interop._errors import ConversionError, type_name
from interop._options import Options, same_dtype
from interop._plan import Plan

__all__ = ["DaskBackend"]


def _exact(source: np.dtype[Any], target: np.dtype[Any]) -> bool:
    """Whether every value of ``source`` is one of ``target``, exactly.

    NumPy's "safe" casts include integers into floats too narrow to hold them all
    (int64 into float64 rounds 2**53 + 1).
    """
    if not np.can_cast(source, target, "safe"):
        return False
    if source.kind in "iu" and target.kind in "fc":
        return 8 * source.itemsize <= np.finfo(target).nmant + 1
    return True


class DaskBackend(HostTarget):
    """``dask.array.Array``."""

    name = "dask"
    title = "Dask"
    host_only = (
        "interop makes Dask arrays of NumPy chunks, in host memory. hint: convert to a "
        "framework that supports that device, or map the chunks of a Dask array yourself"
    )
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
        # The options the computed chunks are converted under, when they are not NumPy
        # arrays (into memory of the result's own, as the plan promises: a graph may
        # hand back an array that is held elsewhere); and the call's own, for a tail
        # planned again from the computed dtype.
        prepared = (options.replace(dtype=None, upcast=False, copy=True), options)
        device = "cuda" if transfer else "cpu"
        return self._finish(device, self._declared(x), options, transfer, prepared)

    def _finish(
        self,
        device: str,
        source: np.dtype[Any] | None,
        options: Options,
        transfer: bool,
        prepared: Any = None,
    ) -> Plan:
        # Computing builds a new array, but a graph may hand back one held elsewhere
        # (dask.delayed of an array): under copy=True the tail copies it, unless a
        # cast there copies already (kept: not the result's own memory until then).
        return _plan.finish(
            self.name,
            device,
            ["compute"],
            source_dtype=source,
            options=options,
            copy_reason="a Dask array is a lazy graph; computing it builds a new array",
            transfer=transfer,
            kept=options.copy is True,
            upcast_to=None if source is None else _dtypes.upcast_target(source),
            prepared=prepared,
        )

    def run(self, x: Any, plan: Plan, /) -> np.ndarray[Any, Any]:
        a = self._compute(x, plan)
        shape = x.shape
        if a.shape != shape and not any(math.isnan(n) for n in shape):
            # (Chunks of unknown size, nan in the shape, are known only once computed.)
            raise ConversionError(
                f"expected the chunks of a Dask array of shape {shape} to compute to that "
                f"shape, got {a.shape}: its chunks are not what they are declared to be. "
                "hint: fix the chunks= given to map_blocks (or the graph), or call "
                "x.compute_chunk_sizes() where they are unknown"
            )
        tail = plan.steps[1:]
        declared = self._declared(x)
        if declared is None or a.dtype != declared:
            tail = self._tail_for(a, declared, plan)
        for step in tail:
            a = self.steps[step](a, plan)
        return a

    def _tail_for(
        self, a: np.ndarray[Any, Any], declared: np.dtype[Any] | None, plan: Plan
    ) -> tuple[str, ...]:
        """The steps after ``compute`` for chunks that computed to another dtype than declared.

        The plan was made from the declared dtype (a Dask array's metadata): its tail
        is planned again from the computed one, and must end in the dtype the plan
        promised. Where it does not (no ``dtype=`` asked, say), the computed values
        are cast to the promised dtype only where that keeps every value, and refused
        otherwise.
        """
        options: Options = plan.prepared[1]
        again = self._finish(plan.device, a.dtype, options, plan.transfer)
        if declared is None or same_dtype(again.dtype, plan.dtype):
            return again.steps[1:]
        if plan.dtype is not None and _exact(a.dtype, plan.dtype):
            return ("cast",)
        raise ConversionError(
            f"expected the chunks of a Dask array declared {declared} to compute to "
            f"{declared}, got {a.dtype}, which gives no {plan.dtype} result without losing "
            "values. hint: fix the dtype= given to map_blocks (or the graph's astype), or "
            "pass dtype= to choose the result's dtype"
        )

    def _compute(self, x: Any, plan: Plan) -> np.ndarray[Any, Any]:
        result = x.compute()
        # (A masked array is kept, mask and all; copy=True's copy step copies both.)
        if type(result) is np.ndarray or _plan.is_masked_array(result):
            return result  # type: ignore[no-any-return]
        if isinstance(result, np.generic):
            return np.asarray(result)
        # Chunks of another framework (CuPy, sparse, ...): their own backend converts.
        opts: Options = plan.prepared[0]
        backend = self.lookup(type(result))
        if backend is None:
            raise ConversionError(
                f"expected a Dask array whose chunks are arrays, got chunks that compute "
                f"to `{type_name(result)}`. hint: map the chunks to NumPy arrays first"
            )
        return backend.to_numpy(result, opts)

    # -- conversion into this framework --

    # A graph never writes into its chunks (Dask's __setitem__ builds new ones), so a
    # Dask array may hold memory its source treats as immutable.
    mutable = False

    def device_of(self, x: Any, /) -> Any:
        meta = getattr(x, "_meta", None)
        if meta is not None and type(meta).__module__.partition(".")[0] == "cupy":
            raise ValueError(
                "expected a Dask array of chunks in host memory, got one of "
                f"`{type_name(meta)}` chunks: interop makes and moves Dask arrays in host "
                "memory only. hint: map its chunks to NumPy first "
                "(x.map_blocks(cupy.asnumpy)), or convert to 'cupy' instead"
            )
        return "cpu"

    def numpy_dtype_of(self, x: Any, /) -> np.dtype[Any] | None:
        return self._declared(x)

    def _declared(self, x: Any) -> np.dtype[Any] | None:
        """The NumPy dtype a Dask array's metadata declares; ``None`` where none is known.

        Chunks of another framework (a graph that maps its blocks to PyTorch or
        TensorFlow tensors) declare that framework's dtype: their backend tells the
        NumPy one, from the array's empty example chunk (``_meta``).
        """
        dtype = x.dtype
        if isinstance(dtype, np.dtype):
            return dtype
        meta = getattr(x, "_meta", None)
        backend = None if meta is None else self.lookup(type(meta))
        return None if backend is None else backend.numpy_dtype_of(meta)

    def numpy_problem(self, a: np.ndarray[Any, Any], /) -> str | None:
        if not a.dtype.isnative:
            # (As every other target: a result holds its data in native byte order.)
            return f"its data is in non-native byte order ({a.dtype.str})"
        return None

    def from_numpy(self, a: np.ndarray[Any, Any], /, *, device: Any, copy: bool) -> Any:
        # (A result asked of Dask by name: dask.array need not be imported yet.)
        da = importlib.import_module("dask.array")
        chunk = a.astype(a.dtype.newbyteorder("="), order="K") if copy else a
        # Made here rather than by da.from_array, which copies every array it is given
        # and names the graph by hashing all of the data.
        name = f"interop-{uuid.uuid4().hex}"
        chunks = tuple((n,) for n in chunk.shape)
        return da.Array({(name, *(0,) * chunk.ndim): chunk}, name, chunks, meta=chunk)

    def adopt(self, x: Any, /, *, device: Any, copy: bool) -> Any:
        if not copy:
            return x
        return x.map_blocks(_copy_chunk, dtype=x.dtype, meta=x._meta)


def _copy_chunk(chunk: Any) -> Any:
    # The method keeps a masked chunk's mask, where np.copy would drop it.
    return chunk.copy()
