"""TensorFlow's composite tensors: ``tf.RaggedTensor``, ``tf.SparseTensor``, ``tf.IndexedSlices``.

* ``tf.RaggedTensor`` follows the ``ragged=`` policy: ``"object"`` gives a 1-d
  object array of rows (``ragged_rows``), ``"pad"`` a zero-padded dense array
  (``ragged_pad``).
* ``tf.SparseTensor`` follows the ``sparse=`` policy (``densify`` or ``to_scipy``).
* ``tf.IndexedSlices`` (the gradient of a gather) always densifies, summing
  repeated indices as TensorFlow does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interop import _dtypes, _plan
from interop._backend import Step
from interop._errors import ConversionError, policy_error, type_name
from interop._options import Options
from interop._plan import Plan
from interop.backends.tensorflow.source import check_text_dtype, short_device, symbolic_error

__all__ = ["CompositeSource"]

_OBJECT = np.dtype(object)


class CompositeSource:
    """Plans and steps of TensorFlow's composite tensors."""

    def __init__(self, tf: Any, eager: Any) -> None:
        self.tf = tf
        self.eager = eager
        self.types = (tf.RaggedTensor, tf.SparseTensor, tf.IndexedSlices)

    def values_of(self, x: Any) -> Any:
        """The tensor that holds the values of a composite tensor ``x`` (its device too)."""
        return x.flat_values if isinstance(x, self.tf.RaggedTensor) else x.values

    def steps(self) -> dict[str, Step]:
        """The steps of this module's plans, by name."""
        return {
            "ragged_rows": self._ragged_rows,
            "ragged_pad": lambda r, p: r.to_tensor().numpy(),
            "densify": self._densify,
            "to_scipy": _to_scipy,
        }

    def plan(self, x: Any, options: Options) -> Plan:
        """The plan of a ragged or sparse tensor, or of IndexedSlices."""
        tf = self.tf
        values = self.values_of(x)
        if not isinstance(values, self.eager):
            raise symbolic_error(x)
        device = short_device(values.device)
        source: np.dtype[Any] = np.dtype(values.dtype.as_numpy_dtype)
        if values.dtype == tf.string:
            check_text_dtype(x, options.dtype)
        prepared: Any = None
        if isinstance(x, tf.RaggedTensor):
            if options.ragged == "error":
                raise policy_error(
                    f"expected a tensor with a rectangular shape, got a `{type_name(x)}` of "
                    f"shape {x.shape} whose rows differ in length. hint: pass "
                    "ragged='object' for a 1-d object array of rows, or ragged='pad' for a "
                    "zero-padded dense array",
                    "ragged",
                )
            if options.ragged == "object":
                steps = ["ragged_rows"]
                reason = "the rows are copied into NumPy arrays held by a new object array"
                # The requested dtype applies to the rows, not to the object array.
                prepared = _plan.values_dtype(source, options)
                source = _OBJECT
                options = options.replace(dtype=None, upcast=False, float_dtype=None)
            else:
                steps = ["ragged_pad"]
                reason = "padding the rows to one length builds a new dense array"
        elif isinstance(x, tf.IndexedSlices):
            if x.dense_shape is None:
                raise ConversionError(
                    f"expected a `{type_name(x)}` with a dense_shape, got one without: the "
                    "shape of the dense tensor it stands for is unknown. hint: build it with "
                    "dense_shape=..., or convert tf.gather results before taking gradients"
                )
            # IndexedSlices are how TensorFlow hands over the gradient of a gather; its
            # own conversion to a tensor densifies them, and so does this one, whatever
            # the sparse policy.
            steps = ["densify"]
            reason = "IndexedSlices are densified into a new array (repeated indices are summed)"
        else:
            if options.sparse == "error":
                raise policy_error(
                    f"expected a dense tensor, got a sparse `{type_name(x)}` of shape "
                    f"{tuple(x.shape)}. hint: pass sparse='dense' to densify it, or "
                    "sparse='scipy' for a scipy.sparse.coo_array",
                    "sparse",
                )
            if options.sparse == "dense":
                steps = ["densify"]
                reason = "densifying a sparse tensor builds a new dense array"
            else:
                return Plan(
                    framework="tensorflow",
                    device=device,
                    zero_copy=False,
                    transfer=device != "cpu",
                    steps=("to_scipy",),
                    dtype=_plan.scipy_dtype(source, options, f"a `{type_name(x)}`"),
                    copy_reason="a scipy.sparse array is built from copies of the indices "
                    "and values",
                )
        return _plan.finish(
            "tensorflow",
            device,
            steps,
            source_dtype=source,
            options=options,
            copy_reason=reason,
            transfer=device != "cpu",
            upcast_to=_dtypes.upcast_target(source),
            prepared=prepared,
        )

    def _ragged_rows(self, r: Any, plan: Plan) -> np.ndarray[Any, Any]:
        # One host copy of the flat values, split along the row partitions: every row
        # is a view of that copy, which nothing else holds.
        flat = r.flat_values.numpy()
        if plan.prepared is not None:
            flat = flat.astype(plan.prepared)
        splits = [s.numpy() for s in r.nested_row_splits]
        rows: np.ndarray[Any, Any] = _split_rows(flat, splits)
        return rows

    def _densify(self, x: Any, plan: Plan) -> np.ndarray[Any, Any]:
        tf = self.tf
        if isinstance(x, tf.IndexedSlices):
            return tf.convert_to_tensor(x).numpy()  # type: ignore[no-any-return]
        try:
            dense = tf.sparse.to_dense(tf.sparse.reorder(x))
        except tf.errors.InvalidArgumentError as exc:
            raise ConversionError(
                f"expected a valid `{type_name(x)}`, got one TensorFlow refuses to densify: "
                f"{exc.message}. hint: remove repeated indices (tf.sparse.reorder and "
                "deduplicate) first"
            ) from exc
        return dense.numpy()  # type: ignore[no-any-return]


def _to_scipy(x: Any, plan: Plan) -> Any:
    import scipy.sparse

    indices = x.indices.numpy()
    values = x.values.numpy().astype(plan.cast_target, copy=False)
    shape = tuple(int(n) for n in x.dense_shape.numpy())
    if indices.size and ((indices < 0).any() or (indices >= np.asarray(shape)).any()):
        raise ConversionError(
            f"expected indices within the dense shape {shape}, got a `{type_name(x)}` with "
            "indices outside it. hint: fix the indices (tf.sparse.reorder does not), or "
            "build the tensor with the dense_shape it spans"
        )
    return scipy.sparse.coo_array((values, tuple(indices.T)), shape=shape)


def _split_rows(flat: np.ndarray[Any, Any], splits: list[np.ndarray[Any, Any]]) -> Any:
    """Rows of a ragged array from its flat values and its row splits, outermost first."""
    if not splits:
        return flat
    inner = _split_rows(flat, splits[1:])
    outer = splits[0]
    rows = np.empty(len(outer) - 1, dtype=object)
    for i in range(len(rows)):
        rows[i] = inner[outer[i] : outer[i + 1]]
    return rows
