"""Device routes of ``convert``, checked on the CPU through the pure functions that decide them.

What a route does on an accelerator is decided by functions of plain values: the
stream a producer passes on (:func:`interop._devices.export_stream`), whether an
importer takes a layout (:func:`interop._devices.layout_problem`), whether memory
is host memory (:func:`interop._devices.is_host`). Each is tested here with real
CPU tensors and arrays; the routes that use them run on host memory through a
:class:`~interop._devices.DeviceExport` of their own. The same routes on a GPU are
in tests/frameworks/test_gpu_routes.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import interop
from interop import _memory, _registry
from interop._convert import routes
from interop._convert.targets import Target
from interop._devices import (
    ANY_LAYOUT,
    PERMUTED_LAYOUT,
    ROW_MAJOR_LAYOUT,
    Layout,
    StreamPlan,
    device_name,
    export_stream,
    is_host,
    layout_problem,
)
from tests.support.producers import (
    HostDeviceExport,
    HostKindArrayApi,
    HostKindProducer,
    LegacyDLPackProducer,
)

# -- streams (defect: torch CUDA -> TensorFlow unsynchronised) ---------------------------


@pytest.mark.parametrize(
    ("stream", "rocm", "expected"),
    [
        # No stream named (TensorFlow's import): wait on the host. The old export
        # passed nothing to Tensor.__dlpack__, whose default (-1) waits for nothing.
        (None, False, StreamPlan(True, -1)),
        (None, True, StreamPlan(True, -1)),
        (-1, False, StreamPlan(False, -1)),  # the consumer asks for no synchronisation
        (1, False, StreamPlan(False, 1)),  # CUDA's legacy default stream
        (0x5555_0000, False, StreamPlan(False, 0x5555_0000)),  # a stream pointer (JAX's)
        (2, False, StreamPlan(True, -1)),  # per-thread default: PyTorch refuses it
        (0, False, StreamPlan(True, -1)),  # 0 is no CUDA stream in DLPack
        (0, True, StreamPlan(False, 0)),  # ROCm's default stream
        (1, True, StreamPlan(True, -1)),
        (2, True, StreamPlan(True, -1)),
        (True, False, StreamPlan(True, -1)),  # not a stream
        ("0x10", False, StreamPlan(True, -1)),
    ],
)
def test_export_stream(stream: Any, rocm: bool, expected: StreamPlan) -> None:
    assert export_stream(stream, rocm=rocm) == expected


def test_every_stream_passed_on_is_one_torch_accepts() -> None:
    """Tensor.__dlpack__'s own checks (torch/_tensor.py) never fire for what is passed on."""
    for rocm in (False, True):
        for stream in (None, -1, 0, 1, 2, 3, 0x7F00_0000, -5):
            plan = export_stream(stream, rocm=rocm)
            if plan.stream == -1:
                continue
            assert plan.stream not in ((1, 2) if rocm else (0, 2))
            assert plan.stream >= 0 and not plan.wait


# -- layouts (defect: strides and alignment unchecked on the device route) -----------------


def _layout(a: Any) -> Layout:
    """The layout of a NumPy array or a CPU tensor, as the device exports report it."""
    if isinstance(a, np.ndarray):
        strides = tuple(s // a.itemsize for s in a.strides)
        return Layout(a.shape, strides, a.itemsize, a.__array_interface__["data"][0])
    return Layout(tuple(a.shape), tuple(a.stride()), a.element_size(), a.data_ptr())


@settings(max_examples=200, deadline=None)
@given(
    shape=st.lists(st.integers(0, 4), min_size=0, max_size=4),
    offset=st.sampled_from([0, 8, 16, 64]),
    step=st.sampled_from([1, 1, 2]),
    transpose=st.booleans(),
)
def test_row_major_agrees_with_the_host_check(
    shape: list[int], offset: int, step: int, transpose: bool
) -> None:
    """On host memory, ROW_MAJOR_LAYOUT is what TensorFlow's host import checks."""
    n = int(np.prod(shape))
    base = _memory.aligned_copy(np.zeros(n * step + 8))
    a = base[offset // 8 :][: n * step : step].reshape(shape)
    if transpose:
        a = a.T
    host = _memory.layout_problem(a, contiguous=True, aligned=True)
    device = layout_problem(_layout(a), ROW_MAJOR_LAYOUT)
    assert (host is None) == (device is None), (a.shape, a.strides, host, device)


def test_torch_slices_and_transposes() -> None:
    torch = pytest.importorskip("torch")
    t = torch.arange(34.0, dtype=torch.float64)
    assert t.data_ptr() % 64 == 0  # (PyTorch's CPU allocator aligns to 64 bytes)
    sliced = t[1:]
    assert layout_problem(_layout(sliced), ROW_MAJOR_LAYOUT) == (
        "the data is not 64-byte aligned (it starts 8 bytes past a boundary)"
    )
    assert layout_problem(_layout(sliced), PERMUTED_LAYOUT) is not None
    assert layout_problem(_layout(sliced), ANY_LAYOUT) is None
    m = t[:32].reshape(4, 8)
    assert layout_problem(_layout(m), ROW_MAJOR_LAYOUT) is None
    assert layout_problem(_layout(m.T), PERMUTED_LAYOUT) is None  # a transposition
    assert "compact row-major" in layout_problem(_layout(m.T), ROW_MAJOR_LAYOUT)
    gaps = m[:, ::2]
    assert layout_problem(_layout(gaps), PERMUTED_LAYOUT) is not None
    broadcast = t[:1].expand(4)
    assert layout_problem(_layout(broadcast), PERMUTED_LAYOUT) is not None
    assert layout_problem(_layout(t[:0]), ROW_MAJOR_LAYOUT) is None  # no data
    assert layout_problem(_layout(m[:, :1]), PERMUTED_LAYOUT) is not None
    assert layout_problem(_layout(m[:1]), ROW_MAJOR_LAYOUT) is None  # size-1 dims: any stride


def _device_plan(export: Any, to: str, copy: bool | None = None) -> interop.Plan:
    """``convert``'s device route (route 4a) for ``export``, to ``to`` on the CPU."""
    tb = interop._registry.by_name(to)
    target = Target(tb, tb.parse_device("cpu"))
    source = _registry.get(export.array)
    dtype = export.array.dtype
    opts = interop._options.resolve(copy, None, None, None, None, None)
    common = {"framework": source.name, "device": "cpu", "target": target}
    return routes._plan_device(
        export.array, source, target, opts, export, (1, 0), dtype, dtype, common
    )


@pytest.mark.parametrize("to", ["jax", "tensorflow"])
@pytest.mark.parametrize("case", ["misaligned", "transposed", "gaps"])
def test_device_route_compacts_what_the_importer_cannot_take(to: str, case: str) -> None:
    """A layout the target's import refuses (or misreads) is made compact first.

    The old route handed any export to the import as it was: TensorFlow refuses
    non-compact strides, XLA strides that are no permutation of compact ones and
    (as a non-default layout) any order but row-major, and a misaligned slice
    reaches TensorFlow kernels that assume alignment.
    """
    pytest.importorskip(to)
    base = _memory.aligned_copy(np.arange(48.0, dtype=np.float32))
    a = {
        "misaligned": base[1:33],
        "transposed": base[:32].reshape(4, 8).T,
        "gaps": base.reshape(4, 12)[:, ::2],
    }[case]
    export = HostDeviceExport(a)
    plan = _device_plan(export, to)
    assert plan.steps[0] == "compact" and not plan.zero_copy
    assert "compact copy" in (plan.copy_reason or "")
    out = plan.prepared[0](export.array)
    assert export.compacted == 1
    np.testing.assert_array_equal(interop.to_numpy(out), a)
    with pytest.raises(interop.CopyRequiredError):
        plan.check(interop._options.resolve(False, None, None, None, None, None))


def test_device_route_keeps_any_layout_for_torch() -> None:
    torch = pytest.importorskip("torch")
    base = _memory.aligned_copy(np.arange(48.0, dtype=np.float32))
    a = base.reshape(4, 12)[:, 1::2]
    export = HostDeviceExport(a)
    plan = _device_plan(export, "torch")
    assert plan.zero_copy and plan.steps == ("dlpack",)
    out = plan.prepared[0](a)
    assert isinstance(out, torch.Tensor) and export.compacted == 0
    assert np.shares_memory(out.numpy(), a)


@pytest.mark.parametrize("to", ["jax", "tensorflow"])
def test_device_route_keeps_a_compact_aligned_layout(to: str) -> None:
    pytest.importorskip(to)
    a = _memory.aligned_copy(np.arange(32.0, dtype=np.float32)).reshape(4, 8)
    export = HostDeviceExport(a)
    plan = _device_plan(export, to)
    assert plan.zero_copy and "compact" not in plan.steps
    np.testing.assert_array_equal(interop.to_numpy(plan.prepared[0](a)), a)
    assert export.compacted == 0


# -- TensorFlow GPU tensors to PyTorch (defect: TF refuses every stream) -------------------


def test_tensorflow_export_takes_the_stream_torch_passes() -> None:
    """PyTorch passes its stream for CUDA data; TF's own __dlpack__ raises RuntimeError.

    The old route handed the EagerTensor itself to torch.from_dlpack, which falls
    back only on TypeError: every TensorFlow GPU tensor failed. The GpuExport made
    for a GPU tensor is checked here over a CPU tensor (its class takes any tensor).
    """
    tf = pytest.importorskip("tensorflow")
    torch = pytest.importorskip("torch")
    from interop.backends.tensorflow.target import GpuExport

    t = tf.constant(np.arange(6.0, dtype=np.float32))
    with pytest.raises(RuntimeError, match="stream"):
        t.__dlpack__(stream=0x5555_0000)
    export = GpuExport(tf.experimental.dlpack.to_dlpack, t, (1, 0))
    capsule = export.__dlpack__(stream=0x5555_0000, max_version=(1, 0))
    out = torch.from_dlpack(capsule)
    np.testing.assert_array_equal(out.numpy(), np.arange(6.0, dtype=np.float32))
    assert export.__dlpack_device__() == (1, 0)
    with pytest.raises(BufferError):
        export.__dlpack__(copy=True)


# -- pinned and managed memory (defect: kDLCUDAHost handed to JAX's CUDA backend) -----------


@pytest.mark.parametrize("kind", [3, 11, 13])
def test_host_kinds(kind: int) -> None:
    assert is_host((kind, 0)) and not is_host((2, 0)) and not is_host((10, 0))
    assert device_name((kind, 0)) in ("cuda_host", "rocm_host", "cuda_managed")


def test_every_device_type_of_dlpack_has_a_name() -> None:
    """dlpack.h (DLPack 1.1) device types 1-4 and 7-18 read by name in plans and errors."""
    names = {kind: device_name((kind, 1)) for kind in (1, 2, 3, 4, *range(7, 19))}
    assert not [n for n in names.values() if n.startswith("dlpack_device_")], names
    assert names[11] == "rocm_host" and names[10] == "rocm:1" and names[12] == "ext_dev:1"


@pytest.mark.parametrize("to", ["jax", "tensorflow", "torch"])
@pytest.mark.parametrize("kind", [3, 11, 13])
def test_pinned_memory_reaches_cpu_frameworks_as_host_memory(to: str, kind: int) -> None:
    """A source reporting pinned or managed memory converts through its host view.

    The old route offered the source's own export to the target's DLPack import
    (the view is read-only): JAX took kDLCUDAHost for its CUDA backend ("Unknown
    backend cuda" with CPU-only JAX) while the plan said zero-copy.
    """
    pytest.importorskip(to)
    a = _memory.aligned_copy(np.arange(16.0, dtype=np.float32))
    a.flags.writeable = False
    x = HostKindArrayApi(a, kind)
    plan = interop.explain(x, to=to)
    assert "dlpack" not in plan.steps and plan.device == "cpu"
    out = interop.convert(x, to)
    np.testing.assert_array_equal(interop.to_numpy(out), a)


@pytest.mark.parametrize("kind", [3, 11, 13])
def test_pinned_memory_of_a_dlpack_producer_is_read_through_its_own_copy(kind: int) -> None:
    """DLPack offers a host consumer no stream to wait on: the producer copies once complete.

    The old plan took a zero-copy view of memory a device may still be writing.
    """
    a = np.arange(8.0)
    x = HostKindProducer(a, kind)
    plan = interop.explain(x)
    assert not plan.zero_copy and not plan.transfer and plan.steps == ("dlpack_to_host",)
    out = interop.to_numpy(x)
    np.testing.assert_array_equal(out, a)
    assert not np.shares_memory(out, a)
    assert x.exports[-1]["copy"] is True and x.exports[-1]["dl_device"] == (1, 0)
    with pytest.raises(interop.CopyRequiredError):
        interop.to_numpy(x, copy=False)


class _PinnedIgnoringCopy:
    """Reports pinned memory and takes DLPack 1.0's keywords, but ignores ``copy=True``."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __dlpack__(
        self, stream: Any = None, max_version: Any = None, dl_device: Any = None, copy: Any = None
    ) -> Any:
        return self.array.__dlpack__(max_version=max_version)

    def __dlpack_device__(self) -> tuple[int, int]:
        return (3, 0)


@pytest.mark.parametrize("writeable", [True, False], ids=["writable", "read-only"])
@pytest.mark.parametrize("copy", [None, True])
def test_pinned_producer_that_ignores_copy_true_is_copied_on_the_host(
    copy: bool | None, writeable: bool
) -> None:
    """The plan promises memory the result owns; NumPy does not check that the producer copied."""
    a = np.arange(4.0)
    a.flags.writeable = writeable
    x = _PinnedIgnoringCopy(a)
    assert not interop.explain(x, copy=copy).zero_copy
    out = interop.to_numpy(x, copy=copy)
    assert not np.shares_memory(out, a) and out.flags.writeable
    out[0] = 9
    assert a[0] == 0


def test_pinned_producer_that_flags_its_copy_is_not_copied_again() -> None:
    a = np.arange(4.0)
    out = interop.to_numpy(HostKindProducer(a, 3), copy=True)
    # The producer's own copy (NumPy's export sets DLPack 1.0's IS_COPIED): the result
    # is its import, not a second copy made on the host.
    assert out.base is not None and not isinstance(out.base, np.ndarray)
    assert not np.shares_memory(out, a)


def test_pinned_memory_of_a_producer_before_dlpack_1_is_viewed() -> None:
    """A producer without ``dl_device``/``copy`` cannot copy on request: the view, as before."""

    class LegacyPinned(LegacyDLPackProducer):
        def __dlpack__(self, stream: Any = None) -> Any:
            return HostKindProducer(self.array).__dlpack__()

        def __dlpack_device__(self) -> tuple[int, int]:
            return (3, 0)

    a = np.arange(8.0)
    x = LegacyPinned(a)
    plan = interop.explain(x)
    assert plan.zero_copy and plan.device == "cuda_host"
    assert np.shares_memory(interop.to_numpy(x), a)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "complex64"])
def test_upload_of_read_only_memory_leaves_the_warning_filters_alone(
    dtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one-copy upload to a PyTorch device takes read-only memory as it is.

    Run on the meta device, which every PyTorch build has: it takes the path of an
    upload to a GPU (no data lands there, so the values are the gpu test's).
    ``torch.from_numpy`` warns that it cannot mark a tensor over read-only memory
    read-only, and this suite turns warnings into errors; silencing the warning
    with ``warnings.catch_warnings`` would change filters that every thread shares.
    """
    torch = pytest.importorskip("torch")
    import warnings

    import ml_dtypes

    def shared_state_changed(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the upload changed the process's warning filters")

    a = np.arange(6).astype(getattr(ml_dtypes, dtype, None) or np.dtype(dtype))
    a.setflags(write=False)
    backend = _registry.get(torch.ones(1))
    monkeypatch.setattr(warnings, "catch_warnings", shared_state_changed)
    monkeypatch.setattr(warnings, "filterwarnings", shared_state_changed)
    t = backend.from_numpy(a, device=torch.device("meta"), copy=False)
    assert t.device.type == "meta" and t.shape == (6,)
    assert t.dtype == getattr(torch, dtype)
