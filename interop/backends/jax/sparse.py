"""``jax.experimental.sparse`` arrays (``BCOO``, ``BCSR``): they follow the ``sparse=`` policy."""

from __future__ import annotations

from typing import Any

import numpy as np

from interop import _dtypes, _plan
from interop._errors import ConversionError, policy_error, type_name
from interop._options import Options
from interop._plan import Plan
from interop.backends.jax.sharding import device_str
from interop.backends.jax.source import tracer_error

__all__ = ["STEPS", "plan_sparse"]


def plan_sparse(x: Any, options: Options, tracer: type) -> Plan:
    """The plan of a sparse array; ``tracer`` is JAX's tracer type (its data may be one)."""
    data = x.data
    if isinstance(data, tracer):
        raise tracer_error(data)
    kind = type(x).__name__
    if options.sparse == "error":
        raise policy_error(
            f"expected a dense array, got a sparse `{type_name(x)}` of shape {x.shape}. "
            "hint: pass sparse='dense' to densify it, or sparse='scipy' for a "
            f"scipy.sparse {'csr' if kind == 'BCSR' else 'coo'}_array",
            "sparse",
        )
    if options.sparse == "dense":
        steps = ["densify"]
        reason = "densifying a sparse array builds a new dense array"
    else:
        if x.n_batch or x.n_dense or kind not in ("BCOO", "BCSR"):
            raise ConversionError(
                f"expected a sparse array scipy can hold, got a `{type_name(x)}` with "
                f"{x.n_batch} batch and {x.n_dense} dense dimensions; scipy.sparse has "
                "neither. hint: pass sparse='dense' to densify it"
            )
        steps = ["to_scipy"]
        reason = "a scipy.sparse array is built from copies of the indices and values"
    devices = data.sharding.device_set
    on_host = all(d.platform == "cpu" for d in devices)
    device = device_str(next(iter(devices))) if len(devices) == 1 else "several devices"
    source = np.dtype(x.dtype)
    if options.sparse == "scipy":
        return Plan(
            framework="jax",
            device=device,
            zero_copy=False,
            transfer=not on_host,
            steps=tuple(steps),
            dtype=_plan.scipy_dtype(source, options, f"a `{type_name(x)}`"),
            copy_reason=reason,
        )
    return _plan.finish(
        "jax",
        device,
        steps,
        source_dtype=source,
        options=options,
        copy_reason=reason,
        transfer=not on_host,
        upcast_to=_dtypes.upcast_target(source),
    )


def _to_scipy(x: Any, plan: Plan) -> Any:
    import scipy.sparse

    data = np.asarray(x.data).astype(plan.cast_target)
    indices = np.array(x.indices)
    shape = tuple(x.shape)
    if type(x).__name__ == "BCSR":
        indptr = np.array(x.indptr)
        # Entries past indptr[-1] are padding.
        nse = int(indptr[-1])
        return scipy.sparse.csr_array((data[:nse], indices[:nse], indptr), shape=shape)
    # BCOO pads with out-of-bounds indices (equal to the shape) and zero values;
    # repeated indices are summed, as scipy does too.
    keep = (indices < np.asarray(shape)).all(axis=1)
    return scipy.sparse.coo_array((data[keep], tuple(indices[keep].T)), shape=shape)


#: The steps of sparse plans, by name.
STEPS = {
    "densify": lambda x, p: np.array(x.todense()),
    "to_scipy": _to_scipy,
}
