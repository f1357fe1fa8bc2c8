"""TensorFlow special cases: variables, symbolic tensors, ragged, sparse, strings, GPU."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
tf = pytest.importorskip("tensorflow")

import ml_dtypes  # noqa: E402

import interop  # noqa: E402
from interop import ConversionError, CopyRequiredError, UnsupportedTypeError, _registry  # noqa: E402
from tests.support.entry_points import assert_raises_everywhere, assert_sealed, results  # noqa: E402
from tests.support.memory import traced_peak  # noqa: E402

# -- variables ----------------------------------------------------------------------


def _assert_snapshot(v: tf.Variable) -> None:
    before = v.numpy().copy()
    out = interop.to_numpy(v)
    plan = interop.explain(v)
    assert plan.steps == ("snapshot",) and not plan.zero_copy
    v.assign(before + 100)
    np.testing.assert_array_equal(out, before)
    np.testing.assert_array_equal(interop.to_numpy(v), before + 100)
    out[...] = -1  # the snapshot is the caller's own
    np.testing.assert_array_equal(v.numpy(), before + 100)


def test_variable_is_a_snapshot() -> None:
    _assert_snapshot(tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3)))


def test_mirrored_variable_is_a_snapshot() -> None:
    strategy = tf.distribute.MirroredStrategy()  # the default CPU device, one replica
    with strategy.scope():
        v = tf.Variable(np.arange(4, dtype=np.float64))
    assert type(v).__name__ == "MirroredVariable"
    assert interop.framework_of(v) == "tensorflow"
    _assert_snapshot(v)


def test_a_cast_variable_is_one_copy_that_a_later_assign_leaves_alone() -> None:
    v = tf.Variable(tf.ones(1_000_000, tf.float32))
    interop.to_numpy(v, dtype=np.float64)
    out, peak = traced_peak(lambda: interop.to_numpy(v, dtype=np.float64))
    assert peak < 1.2 * out.nbytes  # the cast's copy alone: no snapshot before it
    assert out.dtype == np.float64 and out.flags.writeable and out.flags.owndata
    v.assign(tf.zeros(1_000_000))
    assert out.min() == 1.0
    out[0] = 5.0
    assert v.numpy()[0] == 0.0


def test_copy_true_within_tensorflow_copies_ragged_and_sparse_tensors() -> None:
    ragged = tf.ragged.constant([[1.0, 2.0], [3.0]])
    sparse = tf.sparse.from_dense([[0.0, 1.0], [2.0, 0.0]])
    for x in (ragged, sparse):
        assert interop.explain(x, to="tensorflow", copy=True).steps == ("copy",)
        out = interop.convert(x, "tensorflow", copy=True)
        assert type(out) is type(x)
        np.testing.assert_array_equal(
            interop.to_numpy(out, ragged="pad", sparse="dense"),
            interop.to_numpy(x, ragged="pad", sparse="dense"),
        )
        assert interop.convert(x, "tensorflow") is x


@pytest.mark.parametrize("name", ["bfloat16", "float8_e4m3fn", "int4"])
def test_a_0d_tensor_of_an_ml_dtype_is_a_view_that_stays_read_only(name: str) -> None:
    t = tf.constant(np.array(1, getattr(ml_dtypes, name)))
    for out in (interop.to_numpy(t, copy=False), interop.to_numpy_tree({"t": t})["t"]):
        assert out.shape == () and out.dtype == np.dtype(getattr(ml_dtypes, name))
        assert not out.flags.writeable
        with pytest.raises(ValueError, match="cannot set WRITEABLE"):
            out.setflags(write=True)
    assert float(t.numpy()) == 1.0


@pytest.mark.parametrize("to", ["jax", "tensorflow", "numpy"])
def test_a_variable_converts_in_one_aligned_copy(to: str) -> None:
    # The snapshot is 64-byte aligned memory, which JAX aliases rather than copies again.
    v = tf.Variable(tf.ones(500_000, tf.float32))
    interop.convert(v, to)
    out, peak = traced_peak(lambda: interop.convert(v, to))
    assert peak < 1.5 * v.numpy().nbytes
    v.assign(tf.zeros(500_000))
    assert float(interop.to_numpy(out).min()) == 1.0


def test_variable_copy_false_raises() -> None:
    v = tf.Variable([1.0, 2.0])
    with pytest.raises(CopyRequiredError, match=r"tf\.Variable is mutable.*snapshot"):
        interop.to_numpy(v, copy=False)


# -- symbolic tensors -----------------------------------------------------------------


def _errors_while_tracing(fn, *args) -> list[BaseException]:  # type: ignore[no-untyped-def]
    """Call ``fn`` under tf.function and return what ``interop.to_numpy`` raised while tracing."""
    seen: list[BaseException] = []

    @tf.function
    def traced(*inner):  # type: ignore[no-untyped-def]
        try:
            interop.to_numpy(fn(*inner))
        except Exception as exc:
            seen.append(exc)
        return inner[0]

    traced(*args)
    return seen


def _assert_symbolic_error(exc: BaseException) -> None:
    assert isinstance(exc, ConversionError)
    assert not isinstance(exc, UnsupportedTypeError)
    message = str(exc)
    assert "tf.py_function" in message and "eager" in message and "hint" in message


def test_symbolic_tensor_in_tf_function() -> None:
    (exc,) = _errors_while_tracing(lambda t: t * 2, tf.constant([1.0, 2.0]))
    _assert_symbolic_error(exc)
    assert "symbolic" in str(exc) and "SymbolicTensor" in str(exc)


def test_variable_read_in_tf_function() -> None:
    v = tf.Variable([1.0, 2.0])
    (exc,) = _errors_while_tracing(lambda t: v, tf.constant(0.0))
    _assert_symbolic_error(exc)
    assert "tf.Variable" in str(exc)


def test_ragged_and_sparse_in_tf_function() -> None:
    errors = _errors_while_tracing(
        lambda t: tf.RaggedTensor.from_row_lengths(t, [1, 2]), tf.constant([1.0, 2.0, 3.0])
    )
    errors += _errors_while_tracing(
        lambda t: tf.sparse.from_dense(t), tf.constant([[0.0, 1.0], [2.0, 0.0]])
    )
    assert len(errors) == 2
    for exc in errors:
        _assert_symbolic_error(exc)


@pytest.mark.parametrize(
    "call",
    [
        interop.to_numpy,
        interop.explain,
        lambda t: interop.to_numpy_tree({"t": t}),
        lambda t: interop.convert(t, "numpy"),
        lambda t: interop.to_numpy(t, copy=False),
    ],
)
def test_the_error_leaves_a_tf_function_as_conversion_error(call: Any) -> None:
    # AutoGraph re-raises an error at the tf.function's boundary as its own type only
    # where its constructor is Exception's; else as a StagingError no caller expects.
    @tf.function
    def traced(t):  # type: ignore[no-untyped-def]
        call(t * 2)
        return t

    with pytest.raises(ConversionError, match="symbolic") as info:
        traced(tf.constant([1.0, 2.0]))
    assert "tf.py_function" in str(info.value)


def test_the_library_errors_keep_their_message_and_classes() -> None:
    for cls in (ConversionError, CopyRequiredError, UnsupportedTypeError, interop.TransferError):
        exc = cls("why. hint: how")
        assert str(exc) == "why. hint: how" and exc.args == ("why. hint: how",)
        assert type(exc).__init__ is Exception.__init__


def test_keras_input_is_a_conversion_error() -> None:
    keras = pytest.importorskip("keras")
    x = keras.Input((3,))
    for call in (interop.to_numpy, interop.explain):
        with pytest.raises(ConversionError) as info:
            call(x)
        assert not isinstance(info.value, UnsupportedTypeError)
        message = str(info.value)
        assert "KerasTensor" in message and "symbolic" in message
        assert "tf.py_function" in message and "hint" in message


# -- strings --------------------------------------------------------------------------


def test_string_tensor_is_an_object_array_of_bytes() -> None:
    interop.to_numpy(tf.constant([1.0]))  # a CPU tensor first, so the fast path is primed
    t = tf.constant([[b"a", b"bc"], [b"", b"\xff\x00"]])
    plan = interop.explain(t)
    assert plan.steps == ("strings_to_bytes",)
    assert not plan.zero_copy and plan.dtype == np.dtype(object)
    out = interop.to_numpy(t)
    assert out.dtype == object and out.shape == (2, 2)
    assert all(type(v) is bytes for v in out.flat)
    assert out.tolist() == [[b"a", b"bc"], [b"", b"\xff\x00"]]
    assert out.flags.writeable
    with pytest.raises(CopyRequiredError, match="bytes"):
        interop.to_numpy(t, copy=False)


@pytest.mark.parametrize(
    "values", [b"one", [b"a", b"bc"], [[b"", b"\xff\x00"]]], ids=["0-d", "1-d", "2-d"]
)
def test_string_tensors_are_new_object_arrays_of_bytes_at_every_entry_point(values: Any) -> None:
    interop.to_numpy(tf.constant([1.0]))  # a CPU tensor first, so the host view is primed
    expected = np.empty(np.shape(values), dtype=object)
    expected[...] = values
    seen: list[np.ndarray] = []
    for where, t, out in results(lambda: tf.constant(values)):
        assert type(out) is np.ndarray and out.dtype == object, where
        assert out.shape == expected.shape and out.tolist() == expected.tolist(), where
        assert all(type(v) is bytes for v in out.flat), where
        assert out.flags.writeable, where
        assert not any(np.shares_memory(out, other) for other in seen), where
        seen.append(out)
        out[...] = b"written"  # the caller's own: the tensor and later results keep theirs
        assert np.array(t.numpy(), dtype=object).tolist() == expected.tolist(), where


def test_zero_d_string_tensor_is_explained_as_a_zero_d_object_array() -> None:
    plan = interop.explain(tf.constant(b"one"))
    assert plan.steps == ("strings_to_bytes",) and plan.dtype == np.dtype(object)
    assert "0-d object array" in str(plan.copy_reason), plan.copy_reason


def test_string_variable() -> None:
    v = tf.Variable([b"x", b"yz"])
    out = interop.to_numpy(v)
    v.assign([b"changed", b"too"])
    assert out.tolist() == [b"x", b"yz"]


_TEXT: dict[str, Callable[[], Any]] = {
    "constant": lambda: tf.constant([b"False", b"0"]),
    "0-d": lambda: tf.constant(b"False"),
    "variable": lambda: tf.Variable([b"False", b"0"]),
    "ragged": lambda: tf.ragged.constant([[b"False"], [b"0"]]),
    "sparse": lambda: tf.SparseTensor([[0]], [b"False"], [2]),
}


@pytest.mark.parametrize("kind", list(_TEXT))
def test_text_to_bool_is_refused_rather_than_cast_by_truth(kind: str) -> None:
    # NumPy casts bytes objects by truth: b"False" and b"0" would be True.
    x = _TEXT[kind]()
    options = {"ragged": "object", "sparse": "dense", "dtype": bool}
    for call in (interop.explain, interop.to_numpy):
        with pytest.raises(interop.ConversionError, match=r"by their truth .*x == b'True'"):
            call(x, **options)  # type: ignore[operator]
        flagged = {**options, "dtype": [("flag", bool)]}  # a bool field: the same cast
        with pytest.raises(interop.ConversionError, match=r"by their truth"):
            call(x, **flagged)  # type: ignore[operator]
    with pytest.raises(interop.ConversionError, match=r"^tree\['x'\]: expected booleans"):
        interop.to_numpy_tree({"x": x}, **options)  # type: ignore[arg-type]
    # No ml_dtypes format parses text: refused before any work too.
    for call in (interop.explain, interop.to_numpy):
        with pytest.raises(interop.ConversionError, match="no ml_dtypes format parses"):
            call(x, **{**options, "dtype": ml_dtypes.bfloat16})  # type: ignore[operator]
    # Text that spells numbers casts as NumPy casts it.
    assert interop.to_numpy(tf.constant([b"1.5"]), dtype=np.float32).tolist() == [1.5]


# -- ragged ---------------------------------------------------------------------------


@pytest.fixture
def ragged() -> tf.RaggedTensor:
    return tf.ragged.constant([[1.0, 2.0, 3.0], [], [4.0]])


def test_ragged_error_is_default(ragged: tf.RaggedTensor) -> None:
    for call in (interop.to_numpy, interop.explain):
        with pytest.raises(ConversionError, match=r"ragged='object'.*ragged='pad'"):
            call(ragged)


def test_ragged_object(ragged: tf.RaggedTensor) -> None:
    plan = interop.explain(ragged, ragged="object")
    assert plan.steps == ("ragged_rows",) and not plan.zero_copy
    out = interop.to_numpy(ragged, ragged="object")
    assert out.dtype == object and out.shape == (3,)
    expected = [[1.0, 2.0, 3.0], [], [4.0]]
    for row, want in zip(out, expected, strict=True):
        assert isinstance(row, np.ndarray) and row.dtype == np.float32
        np.testing.assert_array_equal(row, want)
    out[0][0] = 99  # the rows are the caller's own
    np.testing.assert_array_equal(ragged.flat_values.numpy()[:1], [1.0])
    with pytest.raises(CopyRequiredError):
        interop.to_numpy(ragged, ragged="object", copy=False)


def test_ragged_object_dtype_applies_to_rows(ragged: tf.RaggedTensor) -> None:
    plan = interop.explain(ragged, ragged="object", dtype=np.float64)
    assert plan.dtype == np.dtype(object)
    out = interop.to_numpy(ragged, ragged="object", dtype=np.float64)
    assert [row.dtype for row in out] == [np.dtype(np.float64)] * 3


def test_ragged_object_nested() -> None:
    r = tf.ragged.constant([[[1, 2], [3]], [[4]]])
    out = interop.to_numpy(r, ragged="object")
    assert out.shape == (2,)
    assert [[row.tolist() for row in inner] for inner in out] == [[[1, 2], [3]], [[4]]]


def test_ragged_pad(ragged: tf.RaggedTensor) -> None:
    plan = interop.explain(ragged, ragged="pad")
    assert plan.steps == ("ragged_pad",) and not plan.zero_copy
    out = interop.to_numpy(ragged, ragged="pad")
    np.testing.assert_array_equal(out, [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [4.0, 0.0, 0.0]])
    assert out.dtype == np.float32 and out.flags.writeable
    with pytest.raises(CopyRequiredError):
        interop.to_numpy(ragged, ragged="pad", copy=False)


def test_ragged_policy_from_options(ragged: tf.RaggedTensor) -> None:
    with interop.options(ragged="pad"):
        assert interop.to_numpy(ragged).shape == (3, 3)


def test_empty_ragged() -> None:
    r = tf.ragged.constant([], dtype=tf.int32, ragged_rank=1)
    assert interop.to_numpy(r, ragged="object").shape == (0,)
    assert interop.to_numpy(r, ragged="pad").shape == (0, 0)


# -- sparse ---------------------------------------------------------------------------


@pytest.fixture
def sparse() -> tf.SparseTensor:
    # Indices out of canonical order on purpose.
    return tf.sparse.SparseTensor([[1, 0], [0, 2]], [5.0, 7.0], [2, 3])


DENSE = np.array([[0.0, 0.0, 7.0], [5.0, 0.0, 0.0]], dtype=np.float32)


def test_sparse_error_is_default(sparse: tf.SparseTensor) -> None:
    for call in (interop.to_numpy, interop.explain):
        with pytest.raises(ConversionError, match=r"sparse='dense'.*sparse='scipy'"):
            call(sparse)


def test_sparse_dense(sparse: tf.SparseTensor) -> None:
    plan = interop.explain(sparse, sparse="dense")
    assert plan.steps == ("densify",) and not plan.zero_copy
    out = interop.to_numpy(sparse, sparse="dense")
    np.testing.assert_array_equal(out, DENSE)
    assert out.dtype == np.float32
    with pytest.raises(CopyRequiredError, match="densif"):
        interop.to_numpy(sparse, sparse="dense", copy=False)


def test_sparse_scipy(sparse: tf.SparseTensor) -> None:
    import scipy.sparse

    plan = interop.explain(sparse, sparse="scipy")
    assert plan.steps == ("to_scipy",)
    out = interop.to_numpy(sparse, sparse="scipy")
    assert isinstance(out, scipy.sparse.coo_array)
    assert out.shape == (2, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out.toarray(), DENSE)


def test_sparse_repeated_indices_are_a_conversion_error() -> None:
    bad = tf.sparse.SparseTensor([[0, 0], [0, 0]], [1.0, 2.0], [2, 2])
    with pytest.raises(ConversionError, match="repeated indices"):
        interop.to_numpy(bad, sparse="dense")


def test_indexed_slices_always_densify() -> None:
    # The gradient of a gather that picked row 2 twice: the repeated rows are summed.
    s = tf.IndexedSlices(
        tf.constant([[1.0, 2.0], [3.0, 4.0]]), tf.constant([2, 2]), tf.constant([3, 2])
    )
    expected = [[0.0, 0.0], [0.0, 0.0], [4.0, 6.0]]
    for policy in ("error", "dense", "scipy"):
        plan = interop.explain(s, sparse=policy)
        assert plan.steps == ("densify",) and not plan.zero_copy
        out = interop.to_numpy(s, sparse=policy)
        assert type(out) is np.ndarray
        np.testing.assert_array_equal(out, expected)
    with pytest.raises(CopyRequiredError, match="IndexedSlices"):
        interop.to_numpy(s, copy=False)


def test_indexed_slices_from_a_real_gradient() -> None:
    table = tf.Variable(np.zeros((4, 2), dtype=np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.gather(table, [1, 1, 3]))
    grad = tape.gradient(loss, table)
    assert isinstance(grad, tf.IndexedSlices)
    np.testing.assert_array_equal(interop.to_numpy(grad), [[0, 0], [2, 2], [0, 0], [1, 1]])


def test_indexed_slices_without_dense_shape() -> None:
    s = tf.IndexedSlices(tf.constant([[1.0, 2.0]]), tf.constant([1]))
    with pytest.raises(ConversionError, match="dense_shape"):
        interop.to_numpy(s)


# -- the plain tensor fast path stays zero-copy -----------------------------------------


def test_cpu_tensor_is_still_a_read_only_view() -> None:
    t = tf.constant(np.arange(6.0))
    for _ in range(2):  # planned, then the fast path
        out = interop.to_numpy(t)
        assert np.shares_memory(out, np.asarray(t)) and not out.flags.writeable
    assert interop.explain(t).steps == ("numpy_view", "readonly")


@pytest.mark.parametrize(
    "dtype", [np.float32, np.int64, ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn, ml_dtypes.int4]
)
def test_tensor_views_are_read_only_for_good_at_every_entry_point(dtype: Any) -> None:
    values = np.arange(6).reshape(2, 3).astype(dtype)
    for where, t, out in results(lambda: tf.constant(values)):
        assert out.dtype == values.dtype, where
        np.testing.assert_array_equal(out.astype(np.float32), values.astype(np.float32))
        assert np.shares_memory(out, np.asarray(t)), where
        assert_sealed(out)
    # The planned path, as copy=False takes it, seals its view as well.
    assert_sealed(interop.to_numpy(tf.constant(values), copy=False))


def _handles() -> dict[str, Callable[[], Any]]:
    return {
        "resource": lambda: tf.Variable(1.0).handle,
        "variant": lambda: tf.data.Dataset.range(3)._variant_tensor,
    }


@pytest.mark.parametrize("kind", list(_handles()))
def test_resource_and_variant_tensors_are_refused_everywhere_every_time(kind: str) -> None:
    make = _handles()[kind]
    interop.to_numpy(tf.constant([1.0]))  # a CPU tensor first, so the host view is primed
    for _ in range(3):
        with pytest.raises(ConversionError, match=f"got a {kind} tensor.*hint:"):
            interop.explain(make())
    assert_raises_everywhere(make, ConversionError, f"got a {kind} tensor", "hint:")
    assert _registry.host_view(make()) is None
    # Into TensorFlow too, kept or copied: a handle has no values to keep or copy.
    for copy in (None, True):
        with pytest.raises(ConversionError, match=f"got a {kind} tensor.*hint:"):
            interop.explain(make(), to="tensorflow", copy=copy)
        with pytest.raises(ConversionError, match=f"got a {kind} tensor.*hint:"):
            interop.convert(make(), "tensorflow", copy=copy)


@pytest.mark.parametrize(
    "dtype",
    [
        *(
            getattr(ml_dtypes, n)
            for n in ("float8_e4m3fn", "float8_e5m2", "float4_e2m1fn", "int4", "uint2")
        ),
        "qint8",
    ],
)
def test_copies_within_tensorflow_of_dtypes_without_a_copy_kernel(dtype: Any) -> None:
    # TensorFlow's DeepCopy has no kernel for these: their copy goes through host memory.
    if dtype == "qint8":
        t = tf.cast(tf.constant([1, 2, 3]), tf.qint8)
        before = tf.bitcast(t, tf.int8).numpy()
    else:
        t = tf.constant(np.array([1, 0, 1], dtype=dtype))
        before = t.numpy().view(np.uint8).copy()
    for x in (t, tf.Variable(t) if dtype != "qint8" else t):
        assert interop.explain(x, to="tensorflow", copy=True).steps == ("copy",)
        out = interop.convert(x, "tensorflow", copy=True)
        assert out is not t and out.dtype == t.dtype
        got = tf.bitcast(out, tf.int8).numpy() if dtype == "qint8" else out.numpy().view(np.uint8)
        np.testing.assert_array_equal(got, before)


def test_host_view_never_raises() -> None:
    interop.to_numpy(tf.constant([1.0]))  # a CPU tensor first, so the host view is primed
    tensors = [
        tf.Variable(1.0).handle,
        tf.data.Dataset.range(3)._variant_tensor,
        tf.constant(b"one"),
        tf.constant([b"a", b"b"]),
        tf.constant(1.0, dtype=tf.bfloat16),
        tf.constant(np.zeros((0, 3), dtype=np.float32)),
        tf.constant(np.arange(3).astype(ml_dtypes.int4)),
        tf.constant(1.0),
        tf.cast(tf.constant([1, 2]), tf.qint8),
    ]
    for t in tensors:
        out = _registry.host_view(t)
        assert out is None or (type(out) is np.ndarray and not out.flags.writeable), t


# -- datasets ---------------------------------------------------------------------------


def test_iter_numpy_of_a_dataset_gives_its_elements() -> None:
    batches = interop.iter_numpy(tf.data.Dataset.range(3).batch(2))
    for _ in range(2):  # a dataset can be iterated again
        assert [b.tolist() for b in batches] == [[0, 1], [2]]


def test_iter_numpy_refuses_a_graph_mode_dataset_with_a_hint() -> None:
    with tf.Graph().as_default():
        graph_built = tf.data.Dataset.range(3)
        with pytest.raises(ConversionError, match=r"built in graph mode.*hint:"):
            list(interop.iter_numpy(graph_built))
    # Outside the graph block, its tensors are out of scope.
    with pytest.raises(ConversionError, match=r"built in graph mode.*hint:"):
        list(interop.iter_numpy(graph_built))
    eager = tf.data.Dataset.range(3)
    with tf.Graph().as_default(), pytest.raises(ConversionError, match=r"iterated in graph.*hint:"):
        list(interop.iter_numpy(eager))
    assert [b.tolist() for b in interop.iter_numpy(eager)] == [0, 1, 2]


def test_device_read_steps_read_the_host_copy_tensorflow_keeps() -> None:
    # The to_host step of a plan for data on a GPU, run on a CPU tensor: what it does
    # does not depend on the device. Without a cast it reads the host memory the tensor
    # keeps (for a GPU tensor, the host copy TensorFlow makes once; Tensor.numpy()
    # would copy it again), sealed read-only; after a cast on the device it reads a
    # temporary's copy, which only the result holds.
    step = _registry.by_name("tensorflow").steps["to_host"]
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = tf.constant(values)
    moved = "the data is on gpu:0 and must be copied to host memory"
    kept = interop.Plan("tensorflow", "gpu:0", False, True, ("to_host",), None, True, moved)
    out = step(t, kept)
    np.testing.assert_array_equal(out, values)
    assert np.shares_memory(out, interop.to_numpy(t))
    assert_sealed(out)
    scalar = step(tf.constant(2.5), kept)
    assert scalar.shape == () and scalar == 2.5 and not scalar.flags.writeable
    cast = interop.Plan("tensorflow", "gpu:0", False, True, ("cast_on_device", "to_host"))
    private = step(tf.cast(t, tf.float16), cast)
    private[...] = 0  # the caller's own
    np.testing.assert_array_equal(interop.to_numpy(t), values)


# -- GPU --------------------------------------------------------------------------------


@pytest.mark.gpu
def test_gpu_tensor_is_copied_to_host() -> None:
    if not tf.config.list_physical_devices("GPU"):
        pytest.skip("TensorFlow sees no GPU")
    with tf.device("GPU:0"):
        t = tf.constant(np.arange(6, dtype=np.float32))
        v = tf.Variable(np.arange(3, dtype=np.float32))
    plan = interop.explain(t)
    assert plan.transfer and plan.steps == ("to_host",) and plan.device == "gpu:0"
    out = interop.to_numpy(t)
    np.testing.assert_array_equal(out, np.arange(6))
    # One copy: the host copy TensorFlow keeps with the tensor, read-only.
    assert plan.readonly and np.shares_memory(out, t._numpy_internal())
    assert_sealed(out)
    copied = interop.to_numpy(t, copy=True)
    assert copied.flags.writeable and not np.shares_memory(copied, out)
    with pytest.raises(interop.TransferError):
        interop.to_numpy(t, allow_transfer=False)
    assert interop.explain(v).transfer
    np.testing.assert_array_equal(interop.to_numpy(v), np.arange(3))
    half = interop.explain(t, dtype=np.float16)
    assert half.steps == ("cast_on_device", "to_host") and not half.readonly
    cast = interop.to_numpy(t, dtype=np.float16)
    assert cast.dtype == np.float16 and cast.flags.writeable


def test_cached_plans_follow_what_decides_them() -> None:
    # Plans are cached per dtype, device and 0-d-ness of an eager tensor, and per
    # dtype, device and eagerness of a variable: each change finds its own plan.
    for _ in range(2):
        vector = interop.to_numpy(tf.constant([b"a", b"b"]), copy=True)
        scalar = interop.to_numpy(tf.constant(b"a"), copy=True)
        assert vector.shape == (2,) and scalar.shape == () and scalar.dtype == object
        half = interop.to_numpy(tf.constant([1.5, 2.5], dtype=tf.bfloat16), dtype=np.float32)
        assert half.dtype == np.float32 and list(half) == [1.5, 2.5]
        zero_d = interop.to_numpy(tf.constant(1.5, dtype=tf.bfloat16), copy=True)
        assert zero_d.shape == () and zero_d.dtype == ml_dtypes.bfloat16
        with pytest.raises(ConversionError):
            interop.to_numpy(tf.Variable(1.0).handle, copy=True)
    v = tf.Variable([1.0, 2.0])
    assert interop.to_numpy(v, copy=True).tolist() == [1.0, 2.0]
    (exc,) = _errors_while_tracing(lambda t: v, tf.constant(0.0))
    _assert_symbolic_error(exc)


@pytest.mark.parametrize("name", ["qint8", "quint8", "qint16", "quint16", "qint32"])
def test_quantized_tensors_are_refused_everywhere_with_a_hint(name: str) -> None:
    # Their integers mean nothing without the scale kept outside the tensor (as for
    # PyTorch's quantized tensors); explain once planned a structured dtype and a
    # DLPack import that TensorFlow then refused with its own error.
    dtype = getattr(tf, name)

    def make() -> Any:
        return tf.constant([1, 2], dtype=dtype)

    interop.to_numpy(tf.constant([1.0]))  # a CPU tensor first, so the host view is primed
    assert _registry.host_view(make()) is None
    assert_raises_everywhere(make, ConversionError, f"quantized {name}", "tf.bitcast")
    for target in ("jax", "torch", "numpy"):
        with pytest.raises(ConversionError, match="quantized"):
            interop.convert(make(), target)
        with pytest.raises(ConversionError, match="quantized"):
            interop.explain(make(), to=target)
    if name in ("qint8", "quint8", "qint32"):  # (TensorFlow has variables of these only)
        with pytest.raises(ConversionError, match="quantized"):
            interop.to_numpy(tf.Variable(make()))


def test_sparse_and_ragged_values_take_the_dtype_options_or_are_refused() -> None:
    pytest.importorskip("scipy")
    half = tf.sparse.SparseTensor([[0, 0], [1, 2]], tf.constant([1.5, 2.5], tf.bfloat16), [2, 3])
    for kwargs in ({"upcast": True}, {"dtype": np.float32}, {"float_dtype": np.float32}):
        m = interop.to_numpy(half, sparse="scipy", **kwargs)
        assert m.dtype == np.float32 and m.toarray().tolist() == [[1.5, 0, 0], [0, 0, 2.5]]
        assert interop.explain(half, sparse="scipy", **kwargs).dtype == np.float32
    with pytest.raises(ConversionError, match=r"values scipy\.sparse can hold.*hint"):
        interop.to_numpy(half, sparse="scipy")
    outside = tf.sparse.SparseTensor([[0, 5]], tf.constant([1.0]), [2, 3])
    with pytest.raises(ConversionError, match="indices within the dense shape"):
        interop.to_numpy(outside, sparse="scipy")
    ragged = tf.ragged.constant([[1 + 2j], [3 - 1j, 0j]], dtype=tf.complex64)
    with pytest.raises(ConversionError, match="imaginary"):
        interop.to_numpy(ragged, ragged="object", dtype=np.float32)


def test_a_zero_d_string_variable_is_a_zero_d_object_array() -> None:
    v = tf.Variable(b"ab\x00\x00")
    out = interop.to_numpy(v)
    assert out.shape == () and out.dtype == object and out[()] == b"ab\x00\x00"
    assert interop.explain(v).dtype == object


@pytest.mark.slow
def test_a_tensor_on_a_second_logical_cpu_converts_to_every_framework() -> None:
    # TensorFlow exports it as a CPU device importers do not know: the host view goes.
    import subprocess
    import sys

    code = (
        "import os; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\n"
        "import tensorflow as tf\n"
        "cpus = tf.config.list_physical_devices('CPU')\n"
        "tf.config.set_logical_device_configuration(cpus[0], "
        "[tf.config.LogicalDeviceConfiguration()] * 2)\n"
        "import interop\n"
        "with tf.device('/CPU:1'):\n"
        "    t = tf.constant([1.0, 2.0])\n"
        "for to in ('jax', 'torch', 'numpy'):\n"
        "    for _ in range(2):\n"
        "        assert interop.to_numpy(interop.convert(t, to)).tolist() == [1.0, 2.0], to\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
