"""The generic protocols, consulted after every framework backend, in this order.

1. :class:`ArrayApiBackend` (:mod:`.array_api`): objects with
   ``__array_namespace__`` (the Array API standard), moved to the CPU with
   ``to_device`` when they live elsewhere.
2. :class:`DLPackBackend` (:mod:`.dlpack`): objects with ``__dlpack__``, including
   data in the ``ml_dtypes`` formats NumPy's own import refuses (:mod:`.capsule`).
3. :class:`ArrayProtocolBackend` (:mod:`.array_protocol`): ``__array__``,
   ``__array_interface__`` and the buffer protocol.
4. :class:`PythonBackend` (:mod:`.python`): Python scalars, and lists and tuples
   (converted like :func:`numpy.asarray`, after converting any framework tensors
   inside them).

The order goes from the protocol that says the most about copies and devices to
the one that says the least. What they share (the refusal of results NumPy could
only keep as Python objects) is in :mod:`.base`.
"""

from __future__ import annotations

from interop.backends.generic.array_api import ArrayApiBackend
from interop.backends.generic.array_protocol import ArrayProtocolBackend
from interop.backends.generic.dlpack import DLPackBackend
from interop.backends.generic.python import PythonBackend

__all__ = [
    "ArrayApiBackend",
    "ArrayProtocolBackend",
    "DLPackBackend",
    "PythonBackend",
]
