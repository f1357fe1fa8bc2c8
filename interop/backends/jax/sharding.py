"""How the values of a JAX array reach this process: one device, replicas or shards.

* An array on one device is that device's buffer.
* A fully replicated array is a view of one local replica (``local_replica``).
* An array sharded over several local devices is assembled from its shards into
  one new array (``assemble_shards``).
* An array that is not fully addressable (spread over several processes) converts
  only if it is fully replicated, from the local replica and with no collective;
  otherwise gathering it is a collective every process must join, which this
  library does not start behind the caller's back.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from interop._errors import ConversionError, type_name
from interop._plan import Plan

__all__ = ["Placement", "assemble_shards", "device_str", "layout", "placement"]

Placement = Literal["single", "replica", "assemble", "gather", "absent"]


def device_str(d: Any) -> str:
    """A JAX device as a short string: ``cpu``, ``gpu:1``, ``tpu:0``."""
    return "cpu" if d.platform == "cpu" else f"{d.platform}:{d.id}"


def placement(
    fully_addressable: bool, fully_replicated: bool, n_devices: int, n_local: int
) -> Placement:
    """How the values of an array laid out like this reach this process.

    Args:
        fully_addressable: ``jax.Array.is_fully_addressable``: every shard lives on a
            device of this process.
        fully_replicated: ``jax.Array.is_fully_replicated``: every shard holds the
            whole array.
        n_devices: The number of devices the array is laid out on.
        n_local: The number of its shards this process holds.

    Returns:
        ``"single"`` (one device: its buffer), ``"replica"`` (the whole array on each
        device: one local replica, no collective), ``"assemble"`` (pieces on several
        local devices: put them together), ``"gather"`` (pieces in other processes:
        only a collective over every process can gather them) or ``"absent"`` (a
        replicated array of which this process holds no copy).

    Example:
        >>> placement(True, False, 4, 4), placement(False, True, 8, 4)
        ('assemble', 'replica')
    """
    if fully_addressable:
        if n_devices == 1:
            return "single"
        return "replica" if fully_replicated else "assemble"
    if not fully_replicated:
        return "gather"
    return "replica" if n_local > 0 else "absent"


def layout(x: Any) -> tuple[Placement, str, bool]:
    """``(placement, device, on_host)`` of the array ``x``; raises where it cannot convert.

    ``device`` names the one device, or the devices of a sharded array; ``on_host``
    says whether every device holding the array is the CPU.
    """
    sharding = x.sharding
    devices = sharding.device_set
    on_host = all(d.platform == "cpu" for d in devices)
    where = placement(
        x.is_fully_addressable,
        x.is_fully_replicated,
        len(devices),
        len(sharding.addressable_devices),
    )
    if where == "single":
        device = device_str(next(iter(devices)))
    else:
        kinds = sorted({d.platform for d in devices})
        device = f"{len(devices)} {'/'.join(kinds)} devices"
    if where == "gather":
        raise ConversionError(
            f"expected an array this process holds, got a `{type_name(x)}` of shape "
            f"{x.shape} sharded over {device} in several processes; this process holds "
            "only some of its shards, and gathering the rest is a collective every "
            "process must join. hint: call "
            "jax.experimental.multihost_utils.process_allgather(x) in every process, "
            "or convert x.addressable_shards one by one"
        )
    if where == "absent":
        raise ConversionError(
            f"expected an array this process holds, got a `{type_name(x)}` whose "
            f"replicas all live on devices of other processes ({device}). "
            "hint: convert it in a process that holds a replica"
        )
    return where, device, on_host


def assemble_shards(x: Any, plan: Plan) -> np.ndarray[Any, Any]:
    """The ``assemble_shards`` step: one new array from the local shards of ``x``."""
    # np.asarray(x) would assemble too, but it caches the result inside x and hands
    # the same read-only array to every caller; this result is the caller's own.
    out = np.empty(x.shape, dtype=np.dtype(x.dtype))
    pieces: dict[Any, Any] = {}
    for shard in x.addressable_shards:
        key = tuple((s.start, s.stop, s.step) for s in shard.index)
        if key not in pieces:  # else a replica of a piece already taken
            pieces[key] = (shard.index, shard.data)
    # Every shard's device-to-host copy is started before any is waited for, so
    # that the copies from several devices run at once.
    for _, data in pieces.values():
        data.copy_to_host_async()
    for index, data in pieces.values():
        out[index] = np.asarray(data)
    return out
