"""TensorFlow tensors, variables, and the composite tensors built from them.

The zero-copy path for a CPU ``EagerTensor`` is the NumPy view of its buffer that
NumPy reads through the buffer protocol (``Tensor.numpy()`` copies it). That memory
belongs to an immutable tensor, so the view is read-only.

The special cases, each a named step that :func:`interop.explain` shows:

* ``tf.Variable`` (including the mirrored and other distributed variables of
  ``tf.distribute``) is mutable: it is converted to a ``snapshot`` (a copy), so a
  later ``assign`` does not change the result.
* String tensors hold ``tf.string`` scalars, not fixed-width values; they become
  object arrays of ``bytes`` (``strings_to_bytes``, a copy).
* ``tf.RaggedTensor`` follows the ``ragged=`` policy: ``"object"`` gives a 1-d
  object array of rows (``ragged_rows``), ``"pad"`` a zero-padded dense array
  (``ragged_pad``).
* ``tf.SparseTensor`` follows the ``sparse=`` policy (``densify`` or ``to_scipy``);
  ``tf.IndexedSlices`` (the gradient of a gather) always densifies, summing
  repeated indices as TensorFlow does.
* Symbolic tensors (inside ``tf.function``, or a graph being built) have no values
  and raise :class:`~interop.ConversionError`.
* A tensor on a GPU is copied to host memory (``to_host``), under the transfer rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from interop import _dtypes, _plan
from interop._backend import Backend
from interop._devices import split_device
from interop._errors import ConversionError, type_name
from interop._memory import aligned_copy, layout_problem
from interop._options import Options
from interop._plan import Plan

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = ["TensorFlowBackend"]

_OBJECT = np.dtype(object)
# TensorFlow's name of the device that DLPack imports from host memory land on.
_HOST = "/device:CPU:0"

_SYMBOLIC_HINT = (
    "hint: run the code eagerly (outside tf.function, or with "
    "tf.config.run_functions_eagerly(True)), or run NumPy code on the values inside "
    "the graph with tf.py_function"
)


def _short_device(name: str) -> str:
    """``/job:localhost/replica:0/task:0/device:GPU:0`` -> ``gpu:0``."""
    if not name:
        return "cpu"
    tail = name.rsplit("device:", 1)[-1]
    kind, _, index = tail.partition(":")
    kind = kind.lower()
    return kind if kind == "cpu" else f"{kind}:{index or 0}"


def _symbolic(x: Any, *, variable: bool = False) -> ConversionError:
    if variable:
        what = f"a tf.Variable read eagerly, got `{type_name(x)}` ({x.name}) read"
    else:
        what = (
            f"an eager tensor with values, got a symbolic `{type_name(x)}` "
            f"({getattr(x, 'name', type(x).__name__)}), which has a shape and dtype but no values"
        )
    return ConversionError(
        f"expected {what} while a graph is traced (inside tf.function, or while a Keras "
        f"model builds its graph). {_SYMBOLIC_HINT}"
    )


# TensorFlow's DataType enum values of tensors that hold handles, not values:
# DT_RESOURCE and DT_VARIANT.
_NO_DATA = frozenset({20, 21})


def _no_data(x: Any) -> ConversionError:
    return ConversionError(
        f"expected a tensor with values, got a {x.dtype.name} tensor (`{type_name(x)}`), "
        "which holds a handle to a TensorFlow object (a variable, a dataset, ...), not "
        "data. hint: convert the object's values instead (for a variable, the variable "
        "itself or variable.read_value(); for a dataset, its elements)"
    )


def _strings_to_bytes(t: Any, plan: Plan) -> np.ndarray[Any, Any]:
    # .numpy() of a 0-d string tensor gives a bytes object, not an array.
    out = t.numpy()
    if type(out) is not np.ndarray:
        scalar = np.empty((), dtype=object)
        scalar[()] = out
        return scalar
    return out  # type: ignore[no-any-return]


class TensorFlowBackend(Backend):
    """``tf.Tensor`` (eager), ``tf.Variable``, ``tf.RaggedTensor``, ``tf.SparseTensor``
    and ``tf.IndexedSlices``, and their subclasses."""

    name = "tensorflow"
    module = "tensorflow"

    def load(self) -> None:
        import tensorflow as tf

        self.tf = tf
        from tensorflow.python.framework import ops

        self._eager = ops.EagerTensor
        self._variable = tf.Variable
        self._composite = (tf.RaggedTensor, tf.SparseTensor, tf.IndexedSlices)
        # Device strings of tensors already seen to live in host memory.
        self._host_devices: set[str] = set()
        self.steps.update(
            numpy_view=self._numpy_view,
            scalar_to_array=lambda t, p: np.array(t._numpy()),
            snapshot=lambda v, p: np.asarray(v.numpy()),  # a 0-d variable gives a scalar
            strings_to_bytes=_strings_to_bytes,
            to_host=self._to_host,
            cast_on_device=self._cast_on_device,
            ragged_rows=self._ragged_rows,
            ragged_pad=lambda r, p: r.to_tensor().numpy(),
            densify=self._densify,
            to_scipy=self._to_scipy,
        )

    def matches(self, cls: type) -> bool:
        return issubclass(cls, (self.tf.Tensor, self.tf.Variable, *self._composite))

    def host_view_for(self, cls: type, /) -> Any:
        if cls is not self._eager:
            return None
        host_devices = self._host_devices
        no_data = _NO_DATA
        # EagerTensor._numpy_internal returns a new NumPy array over the tensor's
        # buffer (what np.asarray reaches through the buffer protocol, without the
        # memoryview around it): made read-only, it is the plan's numpy_view.
        internal = cls._numpy_internal
        ndarray = np.ndarray

        def view(x: Any) -> np.ndarray[Any, Any] | None:
            # Resource and variant tensors hold handles, not values (the plan refuses
            # them); a tensor elsewhere than in host memory needs a copy.
            if x.device not in host_devices or x._datatype_enum() in no_data:
                return None
            out = internal(x)
            # A 0-d tensor of an ml_dtypes dtype comes back as a NumPy scalar, and a
            # string tensor as an object array of bytes: both are the plan's to build.
            if type(out) is not ndarray or out.dtype.hasobject:
                return None
            if out.flags.writeable:
                # Never a writable alias of a tensor's memory; a view, so that an
                # array TensorFlow may keep for itself is left as it is.
                out = out.view()
                out.flags.writeable = False
            return out  # type: ignore[no-any-return]

        return view

    # -- planning -----------------------------------------------------------------

    def plan(self, x: Any, options: Options, /) -> Plan:
        tf = self.tf
        if isinstance(x, self._composite):
            return self._plan_composite(x, options)
        steps: list[str] = []
        reason: str | None = None
        if isinstance(x, tf.Variable):
            if not tf.executing_eagerly():
                raise _symbolic(x, variable=True)
            device_name = x.device
            steps.append("snapshot")
            reason = (
                "a tf.Variable is mutable; a snapshot is copied so a later assign cannot change it"
            )
        elif isinstance(x, self._eager):
            device_name = x.device
            if x._datatype_enum() in _NO_DATA:
                raise _no_data(x)
        else:
            raise _symbolic(x)
        device = _short_device(device_name)
        source = np.dtype(x.dtype.as_numpy_dtype)
        transfer = device != "cpu"
        target = options.dtype
        if options.upcast and target is None:
            target = _dtypes.upcast_target(source)
        if not steps and x.dtype == tf.string:
            steps.append("strings_to_bytes")
            reason = "a string tensor becomes a new object array of Python bytes objects"
        if transfer and not steps:
            if target is not None and target.itemsize < source.itemsize:
                steps.append("cast_on_device")
                source = target
            steps.append("to_host")
            reason = f"the data is on {device} and must be copied to host memory"
        if not steps:
            steps.append("numpy_view")
            self._host_devices.add(device_name)
            if x.shape.rank == 0 and not _dtypes.is_standard(source):
                # No buffer protocol for ml_dtypes formats, and __array__ of a 0-d
                # tensor returns a scalar: the only way out is a new 0-d array.
                steps[-1] = "scalar_to_array"
                reason = f"a 0-d {source} tensor comes out of TensorFlow as a scalar"
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

    def _plan_composite(self, x: Any, options: Options) -> Plan:
        tf = self.tf
        values = x.flat_values if isinstance(x, tf.RaggedTensor) else x.values
        if not isinstance(values, self._eager):
            raise _symbolic(x)
        device = _short_device(values.device)
        source = np.dtype(values.dtype.as_numpy_dtype)
        prepared: Any = None
        if isinstance(x, tf.RaggedTensor):
            if options.ragged == "error":
                raise ConversionError(
                    f"expected a tensor with a rectangular shape, got a `{type_name(x)}` of "
                    f"shape {x.shape} whose rows differ in length. hint: pass "
                    "ragged='object' for a 1-d object array of rows, or ragged='pad' for a "
                    "zero-padded dense array"
                )
            if options.ragged == "object":
                steps = ["ragged_rows"]
                reason = "the rows are copied into NumPy arrays held by a new object array"
                # The requested dtype applies to the rows, not to the object array.
                prepared = options.dtype
                if prepared is None and options.upcast:
                    prepared = _dtypes.upcast_target(source)
                source = _OBJECT
                options = options.replace(dtype=None, upcast=False)
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
                raise ConversionError(
                    f"expected a dense tensor, got a sparse `{type_name(x)}` of shape "
                    f"{tuple(x.shape)}. hint: pass sparse='dense' to densify it, or "
                    "sparse='scipy' for a scipy.sparse.coo_array"
                )
            if options.sparse == "dense":
                steps = ["densify"]
                reason = "densifying a sparse tensor builds a new dense array"
            else:
                steps = ["to_scipy"]
                reason = "a scipy.sparse array is built from copies of the indices and values"
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

    # -- steps ----------------------------------------------------------------------

    def _numpy_view(self, t: tf.Tensor, plan: Plan) -> np.ndarray[Any, Any]:
        return np.asarray(t)

    def _to_host(self, t: tf.Tensor, plan: Plan) -> np.ndarray[Any, Any]:
        # .numpy() copies to host and returns memory the result owns.
        return t.numpy()  # type: ignore[no-any-return]

    def _cast_on_device(self, t: tf.Tensor, plan: Plan) -> tf.Tensor:
        tf = self.tf
        assert plan.dtype is not None
        with tf.device(t.device):
            return tf.cast(t, tf.as_dtype(plan.dtype))

    def _ragged_rows(self, r: tf.RaggedTensor, plan: Plan) -> np.ndarray[Any, Any]:
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

    def _to_scipy(self, x: tf.SparseTensor, plan: Plan) -> Any:
        import scipy.sparse

        indices = x.indices.numpy()
        values = x.values.numpy()
        shape = tuple(int(n) for n in x.dense_shape.numpy())
        return scipy.sparse.coo_array((values, tuple(indices.T)), shape=shape)

    # -- conversion into this framework --

    mutable = False

    def parse_device(self, device: Any, /) -> Any:
        # Parsed device strings: TensorFlow's logical devices are fixed once it runs.
        parsed: dict[str, str] = self.__dict__.setdefault("_parsed_devices", {})
        if type(device) is str:
            found = parsed.get(device)
            if found is None:
                found = self._parse_device(device)
                if len(parsed) < 256:
                    parsed[device] = found
            return found
        return self._parse_device(device)

    def _parse_device(self, device: Any) -> str:
        tf = self.tf
        if isinstance(device, tf.DeviceSpec):
            spec = device
        elif isinstance(device, str):
            if "/" in device or device[:3].isupper():
                spec = tf.DeviceSpec.from_string(device)
            else:
                kind, index = split_device(device)
                kind = "GPU" if kind in ("cuda", "gpu", "rocm") else kind.upper()
                spec = tf.DeviceSpec(device_type=kind, device_index=index or 0)
        else:
            raise TypeError(f"expected a device string or tf.DeviceSpec, got `{type_name(device)}`")
        kind = (spec.device_type or "CPU").upper()
        index = spec.device_index or 0
        available = tf.config.list_logical_devices(kind)
        if index >= len(available):
            raise ValueError(
                f"expected a device TensorFlow can use, got {device!r}: {len(available)} "
                f"{kind} device(s) are available. hint: use device='cpu'"
            )
        return f"/device:{kind}:{index}"

    def default_device(self) -> Any:
        context = self.__dict__.get("_eager_context")
        if context is None:
            from tensorflow.python.eager import context as module

            context = self._eager_context = module.context
        scope = context().device_name
        cache: dict[str, str] = self.__dict__.setdefault("_default_devices", {})
        found = cache.get(scope)
        if found is None:
            # Where TensorFlow puts a new constant in this device scope: the GPU when
            # one is visible, else the CPU.
            found = cache[scope] = self.parse_device(self.tf.constant(0.0).device)
        return found

    def device_of(self, x: Any, /) -> Any:
        return self.parse_device(x.device or "cpu")

    def dlpack_device(self, device: Any, /) -> tuple[int, int]:
        _, kind, index = device.rsplit(":", 2)
        if kind == "CPU":
            return (1, 0)
        return (2, int(index)) if kind == "GPU" else (-1, int(index))

    def target_dtype(self, dtype: np.dtype[Any], device: Any, /) -> np.dtype[Any]:
        held: set[np.dtype[Any]] = self.__dict__.setdefault("_held_dtypes", set())
        if dtype in held:
            return dtype
        try:
            self.tf.as_dtype(dtype)
        except TypeError as exc:
            raise ConversionError(
                f"expected a dtype TensorFlow can hold, got {dtype}. "
                "hint: cast it to a standard dtype first"
            ) from exc
        if len(held) < 256:
            held.add(dtype)
        return dtype

    def _dlpack_dtype_problem(self, dtype: np.dtype[Any]) -> str | None:
        if dtype.type.__module__ == "ml_dtypes" and dtype.name != "bfloat16":
            return f"TensorFlow exchanges no {dtype} through DLPack"
        return None

    def dlpack_problem(
        self, dtype: np.dtype[Any], view: np.ndarray[Any, Any] | None, device: tuple[int, int], /
    ) -> str | None:
        problem = self._dlpack_dtype_problem(dtype)
        if problem is not None:
            return problem
        if device != (1, 0):
            gpus = self.tf.config.list_logical_devices("GPU")
            if device[0] != 2 or device[1] >= len(gpus):
                return "TensorFlow has no access to that device"
            return None
        if view is None:
            return None
        # TensorFlow's kernels assume 64-byte aligned, compact buffers; its DLPack
        # import does not check the alignment, so the check is made here.
        return layout_problem(view, contiguous=True, aligned=True)

    def numpy_problem(self, a: np.ndarray[Any, Any], /) -> str | None:
        if not a.flags.writeable:
            return (
                "TensorFlow imports NumPy memory only as a legacy DLPack capsule, which "
                "cannot carry NumPy's read-only flag"
            )
        return self.dlpack_problem(a.dtype, a, (1, 0))

    def from_numpy(self, a: np.ndarray[Any, Any], /, *, device: Any, copy: bool) -> Any:
        tf = self.tf
        if copy and a.size and device == _HOST and self._dlpack_dtype_problem(a.dtype) is None:
            # One copy into fresh aligned memory that TensorFlow then aliases: a third
            # of the time of tf.convert_to_tensor on small arrays. Nothing else holds it.
            return self.from_numpy(aligned_copy(a), device=device, copy=False)
        if copy:
            with tf.device(device):
                # One copy into memory TensorFlow allocates (aligned, any dtype it holds).
                t = tf.convert_to_tensor(a)
                return t if self.device_of(t) == device else tf.identity(t)
        dlpack = tf.experimental.dlpack
        if a.dtype.type.__module__ == "ml_dtypes":  # bfloat16: through its bits
            bits = dlpack.from_dlpack(a.view(np.uint16).__dlpack__())
            return tf.bitcast(bits, tf.bfloat16)
        return dlpack.from_dlpack(a.__dlpack__())

    def numpy_importer(self) -> Any:
        self.default_device()  # sets up what the importer reads
        scope_of = self._eager_context
        defaults: dict[str, str] = self.__dict__.setdefault("_default_devices", {})
        held: set[np.dtype[Any]] = self.__dict__.setdefault("_held_dtypes", set())
        import_dlpack = self.tf.experimental.dlpack.from_dlpack
        # Dtypes met here that TensorFlow holds and imports through DLPack as they are.
        plain: set[np.dtype[Any]] = set()

        def importer(a: np.ndarray[Any, Any], copy: bool) -> Any:
            dtype = a.dtype
            if dtype not in plain:
                if dtype not in held or dtype.kind not in "biufc" or not dtype.isnative:
                    return None  # (unknown yet: target_dtype is asked first)
                plain.add(dtype)
            if defaults.get(scope_of().device_name) != _HOST:
                return None
            if copy:
                # from_numpy's copy: fresh aligned memory, then aliased.
                return import_dlpack(aligned_copy(a).__dlpack__()) if a.size else None
            if layout_problem(a, contiguous=True, aligned=True) is None:  # (a is writable)
                return import_dlpack(a.__dlpack__())
            return None

        return importer

    def from_dlpack(self, x: Any, /, *, device: Any, copy: bool) -> Any:
        tf = self.tf
        # TensorFlow takes legacy capsules only, so none with max_version is asked for.
        t = tf.experimental.dlpack.from_dlpack(x.__dlpack__())
        if self.device_of(t) != device:
            with tf.device(device):
                return tf.identity(t)
        return tf.raw_ops.DeepCopy(x=t) if copy else t

    def adopt(self, x: Any, /, *, device: Any, copy: bool) -> Any:
        tf = self.tf
        if self.device_of(x) != device:
            with tf.device(device):
                return tf.identity(x)
        return tf.raw_ops.DeepCopy(x=x) if copy else x

    def readonly_source(self, x: Any, /) -> bool:
        return True

    def dlpack_export(self, x: Any, dtype: np.dtype[Any], /) -> Any:
        if type(x) is not self._eager or self._dlpack_dtype_problem(dtype) is not None:
            return None
        return x


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
