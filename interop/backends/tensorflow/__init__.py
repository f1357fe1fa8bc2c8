"""TensorFlow tensors, variables, the composite tensors built from them, and datasets.

The zero-copy path for a CPU ``EagerTensor`` is a read-only NumPy array over its
buffer (:mod:`.source`). The special cases, each a named step that
:func:`interop.explain` shows:

* ``tf.Variable`` (including the mirrored and other distributed variables of
  ``tf.distribute``) is mutable: it is converted to a ``snapshot`` (a copy), so a
  later ``assign`` does not change the result.
* String tensors hold ``tf.string`` scalars, not fixed-width values; they become
  new object arrays of ``bytes`` (``strings_to_bytes``, a copy), a 0-d one a 0-d
  object array.
* Resource and variant tensors hold handles to TensorFlow objects, not values:
  :class:`~interop.ConversionError`.
* Ragged and sparse tensors and ``tf.IndexedSlices`` follow the ``ragged=`` and
  ``sparse=`` policies (:mod:`.composite`).
* Symbolic tensors (inside ``tf.function``, or a graph being built) have no values
  and raise :class:`~interop.ConversionError`.
* A tensor on a GPU is copied to host memory once, into the host copy TensorFlow
  keeps with the tensor, and handed out read-only (``to_host``; ``copy=True`` for a
  writable copy), under the transfer rules.
* A ``tf.data.Dataset`` built in graph mode cannot be iterated from Python:
  :func:`interop.iter_numpy` raises :class:`~interop.ConversionError` for it.

The module layout: :mod:`.source` (dense tensors and variables), :mod:`.composite`
(ragged, sparse, IndexedSlices), :mod:`.target` (TensorFlow as the target of
:func:`interop.convert`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Any

import numpy as np

from interop._errors import ConversionError, type_name
from interop._options import Options
from interop._plan import Plan
from interop.backends.tensorflow.composite import CompositeSource
from interop.backends.tensorflow.source import TensorSource, symbolic_error
from interop.backends.tensorflow.target import TensorFlowTarget

__all__ = ["TensorFlowBackend"]


class TensorFlowBackend(TensorFlowTarget):
    """``tf.Tensor`` (eager), ``tf.Variable``, ``tf.RaggedTensor``, ``tf.SparseTensor``
    and ``tf.IndexedSlices``, and their subclasses."""

    name = "tensorflow"
    module = "tensorflow"

    def load(self) -> None:
        import tensorflow as tf
        from tensorflow.python.framework import ops

        self.tf = tf
        self.eager = ops.EagerTensor
        self.load_target()
        self._tensors = TensorSource(tf, self.eager)
        self._composites = CompositeSource(tf, self.eager)
        self._types = (tf.Tensor, tf.Variable, *self._composites.types)
        self._dataset = tf.data.Dataset
        self._variable = tf.Variable
        self.steps.update(self._tensors.steps())
        self.steps.update(self._composites.steps())

    def matches(self, cls: type) -> bool:
        return issubclass(cls, self._types)

    def host_view_for(self, cls: type, /) -> Callable[[Any], np.ndarray[Any, Any] | None] | None:
        # Only the concrete eager tensor type has a buffer to view.
        return self._tensors.host_view() if cls is self.eager else None

    def plan_key(self, x: Any, /) -> Hashable | None:
        # What the plan of an eager tensor reads: its dtype, device and whether it is
        # 0-d; of a variable, its dtype and device, and whether TensorFlow executes
        # eagerly (a variable in a graph being traced is refused).
        cls = type(x)
        if cls is self.eager:
            return (cls, x._datatype_enum(), x.device, not x._shape_tuple())
        if isinstance(x, self._variable):
            return (cls, x.dtype, x.device, self.tf.executing_eagerly())
        return None

    def device_of(self, x: Any, /) -> Any:
        # A composite tensor (a like= reference, say) is where its values are.
        if isinstance(x, self._composites.types):
            x = self._composites.values_of(x)
        return super().device_of(x)

    def plan(self, x: Any, options: Options, /) -> Plan:
        if isinstance(x, self._composites.types):
            return self._composites.plan(x, options)
        return self._tensors.plan(x, options)

    def missing_data(self, x: Any, /) -> Exception | None:
        # What the plans refuse before reading: a graph is being traced, or a handle.
        if isinstance(x, self._composites.types):
            values = self._composites.values_of(x)
            return None if isinstance(values, self.eager) else symbolic_error(x)
        return self._tensors.missing(x)

    def iterate(self, source: Any, /) -> Iterator[Any] | None:
        if not isinstance(source, self._dataset):
            return None
        tf = self.tf
        # Python iterates a dataset in eager mode when it was built eagerly, and
        # inside tf.function (its elements are then symbolic, which the conversion
        # refuses by itself); a dataset built in a graph, or used in one, it cannot.
        built_eagerly = isinstance(source._variant_tensor, self.eager)
        if tf.inside_function() or (built_eagerly and tf.executing_eagerly()):
            elements: Iterator[Any] = iter(source)
            return elements
        where = "built in graph mode" if not built_eagerly else "iterated in graph mode"
        raise ConversionError(
            f"expected a tf.data.Dataset built and iterated eagerly, got a `{type_name(source)}` "
            f"{where} (inside `with tf.Graph().as_default():`), whose elements Python cannot "
            "take. hint: build and iterate the dataset outside the graph block (eager "
            "execution is TensorFlow 2's default), or run its iterator in a "
            "tf.compat.v1.Session"
        )
