"""Device routes of ``convert`` and device casts on a real GPU (``gpu`` tests).

Each test would catch one defect on a device: a consumer that reads before the
producer's kernel finished (the writing kernel is delayed with
``torch.cuda._sleep`` and the results compared bit for bit), a ``cuda:1`` source,
a device cast that rounds otherwise than the host, a strided or misaligned slice
handed to an importer that cannot take it, pinned host memory taken for GPU memory,
TensorFlow's refusal of a stream. Their CPU counterparts are in
tests/contract/test_device_routes.py and tests/unit/test_device_casts.py.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest

import interop
from tests.support.memory import traced_peak

pytestmark = pytest.mark.gpu

# Cycles of torch.cuda._sleep: long enough (tens of milliseconds) that a consumer
# not ordered after the kernel reads the old values.
_DELAY = 50_000_000
N = 1 << 20


def _torch() -> Any:
    return pytest.importorskip("torch")


def _jax_gpu() -> Any:
    jax = pytest.importorskip("jax")
    try:
        return jax.devices("gpu")
    except RuntimeError:
        pytest.skip("JAX has no GPU backend here")


def _tf_gpus() -> Any:
    tf = pytest.importorskip("tensorflow")
    gpus = tf.config.list_logical_devices("GPU")
    if not gpus:
        pytest.skip("TensorFlow sees no GPU here")
    return tf


def _delayed_write(torch: Any, t: Any, value: float) -> None:
    """Queue a long kernel, then the write of ``value`` into ``t``, on the current stream."""
    torch.cuda._sleep(_DELAY)
    t.fill_(value)


@pytest.mark.parametrize("to", ["jax", "tensorflow"])
@pytest.mark.parametrize("side_stream", [False, True])
def test_consumer_reads_after_the_writing_kernel(to: str, side_stream: bool) -> None:
    """torch CUDA -> JAX/TF: the result holds what the delayed kernel wrote."""
    torch = _torch()
    if to == "jax":
        _jax_gpu()
    else:
        _tf_gpus()
    t = torch.zeros(N, device="cuda")
    torch.cuda.synchronize()
    stream = torch.cuda.Stream() if side_stream else torch.cuda.current_stream()
    with torch.cuda.stream(stream):
        _delayed_write(torch, t, 7.0)
        out = interop.convert(t, to, device="gpu")
    expected = np.full(N, 7.0, dtype=np.float32)
    np.testing.assert_array_equal(interop.to_numpy(out), expected)


@pytest.mark.parametrize("to", ["jax", "tensorflow"])
def test_a_source_on_another_gpu(to: str) -> None:
    """A ``cuda:1`` tensor exports while ``cuda:0`` is current (BufferError before)."""
    torch = _torch()
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    if to == "jax":
        if len(_jax_gpu()) < 2:
            pytest.skip("JAX sees one GPU")
    elif len(_tf_gpus().config.list_logical_devices("GPU")) < 2:
        pytest.skip("TensorFlow sees one GPU")
    t = torch.zeros(N, device="cuda:1")
    with torch.cuda.device(1):
        _delayed_write(torch, t, 3.0)
    assert torch.cuda.current_device() == 0
    out = interop.convert(t, to, device="gpu:1")
    np.testing.assert_array_equal(interop.to_numpy(out), np.full(N, 3.0, dtype=np.float32))


def test_tensorflow_gpu_to_torch() -> None:
    """TF's __dlpack__ refuses the stream torch passes: the legacy capsule is taken."""
    _torch()
    tf = _tf_gpus()
    with tf.device("/GPU:0"):
        t = tf.range(1000, dtype=tf.float32) * 3
    out = interop.convert(t, "torch", device="cuda")
    assert out.is_cuda
    np.testing.assert_array_equal(out.cpu().numpy(), np.arange(1000, dtype=np.float32) * 3)


def test_cupy_to_torch_and_jax_through_dlpack() -> None:
    cupy = pytest.importorskip("cupy")
    _torch()
    x = cupy.arange(1000, dtype=cupy.float32)
    plan = interop.explain(x, to="torch", device="cuda")
    assert plan.steps[0] == "dlpack" and not plan.transfer
    out = interop.convert(x, "torch", device="cuda")
    assert out.is_cuda and out.data_ptr() == x.data.ptr  # zero-copy
    np.testing.assert_array_equal(out.cpu().numpy(), cupy.asnumpy(x))


def _host_cast(values: np.ndarray, dtype: Any) -> np.ndarray:
    return values.astype(dtype)


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        (np.array([1 + 2**-11 + 2**-30, 1 + 2**-11, -(1 + 3 * 2**-11)], np.float64), np.float16),
        (np.array([1000.0, np.inf, -np.inf, 448.0, 464.0], np.float32), ml_dtypes.float8_e4m3fn),
        (np.array([1e6, np.inf, 57344.0, 61440.0], np.float32), ml_dtypes.float8_e5m2),
        (np.array([np.float32(1) + np.float32(2**-9)], np.float32), ml_dtypes.bfloat16),
        (np.array([2**40 + 5, -(2**40) - 3, 255, -1], np.int64), np.int16),
    ],
)
@pytest.mark.parametrize("source", ["torch", "jax", "tensorflow", "cupy"])
def test_casts_under_dtype_match_the_host_bit_for_bit(
    values: np.ndarray, dtype: Any, source: str
) -> None:
    """Tie values and float8 overflow: ``dtype=`` gives NumPy's/ml_dtypes' bits."""
    x = _on_gpu(source, values)
    expected = _host_cast(values, dtype)
    out = interop.to_numpy(x, dtype=dtype)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out.view(f"u{out.itemsize}"), expected.view(f"u{out.itemsize}"))


def _on_gpu(source: str, values: np.ndarray) -> Any:
    if source == "torch":
        return _torch().from_numpy(values).cuda()
    if source == "jax":
        import jax

        if values.dtype.itemsize == 8 and not jax.config.jax_enable_x64:
            pytest.skip("JAX holds 64-bit data as 32-bit here")
        return jax.device_put(values, _jax_gpu()[0])
    if source == "tensorflow":
        tf = _tf_gpus()
        with tf.device("/GPU:0"):
            return tf.identity(tf.constant(values))
    cupy = pytest.importorskip("cupy")
    return cupy.asarray(values)


@pytest.mark.parametrize("to", ["jax", "tensorflow"])
@pytest.mark.parametrize("case", ["misaligned", "transposed", "gaps"])
def test_sliced_device_tensors_through_dlpack(to: str, case: str) -> None:
    torch = _torch()
    if to == "jax":
        _jax_gpu()
    else:
        _tf_gpus()
    base = torch.arange(48.0, dtype=torch.float32, device="cuda")
    t = {
        "misaligned": base[1:33],
        "transposed": base[:32].reshape(4, 8).T,
        "gaps": base.reshape(4, 12)[:, ::2],
    }[case]
    plan = interop.explain(t, to=to, device="gpu")
    assert plan.steps[0] == "compact"  # (JAX too: XLA aliases only row-major)
    out = interop.convert(t, to, device="gpu")
    np.testing.assert_array_equal(interop.to_numpy(out), t.cpu().numpy())


@pytest.mark.parametrize("grad", [False, True])
def test_pinned_cpu_tensor_to_jax_and_numpy(grad: bool) -> None:
    """A pinned tensor (kDLCUDAHost) is host memory: to NumPy and CPU JAX as such."""
    torch = _torch()
    jax = pytest.importorskip("jax")
    t = torch.arange(4096.0).pin_memory().requires_grad_(grad)
    a = interop.to_numpy(t)
    assert np.shares_memory(a, t.detach().numpy())
    cpu = jax.devices("cpu")[0]
    plan = interop.explain(t, to="jax", device=cpu)
    assert plan.device == "cpu" and not plan.transfer
    out = interop.convert(t, "jax", device=cpu)
    assert out.devices() == {cpu}
    np.testing.assert_array_equal(np.asarray(out), np.arange(4096.0, dtype=np.float32))


@pytest.mark.parametrize("to", ["torch", "jax"])
def test_read_only_host_data_uploads_in_one_copy(to: str) -> None:
    """The upload is the one copy: no host copy of read-only memory first."""
    if to == "torch":
        _torch()
    else:
        _jax_gpu()
    a = np.arange(1 << 20, dtype=np.float32)
    a.flags.writeable = False
    out, peak = traced_peak(lambda: interop.convert(a, to, device="cuda"))
    assert peak < a.nbytes // 2  # no host copy (NumPy's allocations are traced)
    np.testing.assert_array_equal(interop.to_numpy(out), a)
