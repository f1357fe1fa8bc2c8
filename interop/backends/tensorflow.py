"""TensorFlow tensors and variables.

The zero-copy path for a CPU ``EagerTensor`` is the NumPy view of its buffer that
TensorFlow's ``__array__`` returns (``Tensor.numpy()`` copies it). That memory
belongs to an immutable tensor, so the view is read-only. A ``tf.Variable`` is
mutable: it is converted to a snapshot (a copy), so that a later ``assign`` does not
change the result.
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
    import tensorflow as tf

__all__ = ["TensorFlowBackend"]


def _short_device(name: str) -> str:
    """``/job:localhost/replica:0/task:0/device:GPU:0`` -> ``gpu:0``."""
    if not name:
        return "cpu"
    tail = name.rsplit("device:", 1)[-1]
    kind, _, index = tail.partition(":")
    kind = kind.lower()
    return kind if kind == "cpu" else f"{kind}:{index or 0}"


class TensorFlowBackend(Backend):
    """``tf.Tensor`` (eager), ``tf.Variable`` and their subclasses."""

    name = "tensorflow"
    module = "tensorflow"

    def load(self) -> None:
        import tensorflow as tf

        self.tf = tf
        from tensorflow.python.framework import ops

        self._eager = ops.EagerTensor
        self._variable = tf.Variable
        # Device strings of tensors already seen to live in host memory.
        self._host_devices: set[str] = set()
        self.steps.update(
            numpy_view=self._numpy_view,
            snapshot=lambda v, p: v.numpy(),
            to_host=self._to_host,
            cast_on_device=self._cast_on_device,
        )

    def matches(self, cls: type) -> bool:
        return issubclass(cls, (self.tf.Tensor, self.tf.Variable))

    def fast_path(self, cls: type, /) -> Any:
        if cls is not self._eager:
            return None
        host_devices = self._host_devices
        # EagerTensor._numpy_internal returns a new NumPy array over the tensor's
        # buffer (the array that np.asarray reaches through the buffer protocol,
        # wrapped once more in a memoryview); made read-only, it is the planned
        # path's numpy_view in half the time.
        view = getattr(cls, "_numpy_internal", None)
        if view is None:  # pragma: no cover - every TensorFlow 2 has it
            view = np.asarray

        def fast(x: Any) -> Any:
            if x.device not in host_devices:
                raise LookupError(x.device)
            out = view(x)
            out.setflags(write=False)
            return out

        return fast

    def to_numpy(self, x: Any, options: Options, /) -> np.ndarray[Any, Any]:
        if options is DEFAULT and type(x) is self._eager and x.device in self._host_devices:
            # NumPy reads a CPU EagerTensor through the buffer protocol: a read-only,
            # zero-copy view.
            return np.asarray(x)
        return super().to_numpy(x, options)

    def plan(self, x: Any, options: Options, /) -> Plan:
        tf = self.tf
        steps: list[str] = []
        reason: str | None = None
        if isinstance(x, tf.Variable):
            device_name = x.device
            steps.append("snapshot")
            reason = (
                "a tf.Variable is mutable; a snapshot is copied so a later assign cannot change it"
            )
        elif isinstance(x, self._eager):
            device_name = x.device
        else:
            raise ConversionError(
                f"expected an eager tensor with values, got a symbolic `{type_name(x)}` "
                f"({getattr(x, 'name', '?')}), which only exists while a graph is traced. "
                "hint: run eagerly, or call NumPy code from the graph with tf.py_function"
            )
        device = _short_device(device_name)
        source = np.dtype(x.dtype.as_numpy_dtype)
        transfer = device != "cpu"
        target = options.dtype
        if options.upcast and target is None:
            target = _dtypes.upcast_target(source)
        if transfer and not steps:
            if target is not None and target.itemsize < source.itemsize:
                steps.append("cast_on_device")
                source = target
            steps.append("to_host")
            reason = f"the data is on {device} and must be copied to host memory"
        if not steps:
            steps.append("numpy_view")
            self._host_devices.add(device_name)
        return _plan.finish(
            "tensorflow",
            device,
            steps,
            source_dtype=source,
            options=options,
            copy_reason=reason,
            transfer=transfer,
            readonly=True,
            upcast_to=_dtypes.upcast_target(source),
        )

    def _numpy_view(self, t: tf.Tensor, plan: Plan) -> np.ndarray[Any, Any]:
        if t.dtype == self.tf.string:
            return t._numpy()  # type: ignore[no-any-return]
        return np.asarray(t)

    def _to_host(self, t: tf.Tensor, plan: Plan) -> np.ndarray[Any, Any]:
        # .numpy() copies to host and returns memory the result owns.
        return t.numpy()  # type: ignore[no-any-return]

    def _cast_on_device(self, t: tf.Tensor, plan: Plan) -> tf.Tensor:
        tf = self.tf
        assert plan.dtype is not None
        with tf.device(t.device):
            return tf.cast(t, tf.as_dtype(plan.dtype))
