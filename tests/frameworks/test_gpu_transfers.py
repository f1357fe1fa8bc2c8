"""Device-to-host transfers on a real CUDA device: races, layouts, prefetch, pinned memory.

Every test needs a CUDA device (the ``gpu`` marker; skipped without one). The race
tests queue the kernel that writes a tensor behind ``torch.cuda._sleep`` (a GPU
spin of a given number of clock cycles), so that a copy not ordered after it, or a
result read before its copy landed, shows the old values; results are compared
bit for bit. The same behaviours are tested on CPU against the strict simulated
device (``tests/contract/test_device_batches.py``) and, for what does not depend
on the device, on CPU tensors (``test_torch_device_copies.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest

import interop
from interop import _copies

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.filterwarnings("ignore:Sparse (CSR|CSC|BSR|BSC) tensor support:UserWarning"),
    pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors:UserWarning"),
]

# GPU clock cycles of the spin that delays a writing kernel: tens of milliseconds on
# current GPUs (1-2 GHz), far longer than the copies of these tests.
SLEEP_CYCLES = 100_000_000


@pytest.fixture
def torch() -> Any:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    return torch


def late(torch: Any, values: Any) -> Any:
    """A new tensor on ``values``' device that a kernel queued behind a GPU spin fills.

    Until the spin ends, the tensor holds zeros: a copy not ordered after the write
    shows zeros instead of ``values``, and a result read before its copy completed
    shows whatever its host buffer held. Nothing here waits for the device, so the
    spins of several such tensors add up.
    """
    with torch.cuda.device(values.device):
        out = torch.zeros_like(values)
        torch.cuda._sleep(SLEEP_CYCLES)
        out.copy_(values)
    return out


def bits(a: np.ndarray) -> np.ndarray:
    """The bytes of ``a``, for bit-exact comparisons (NaN payloads, signed zeros)."""
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


def assert_same(got: Any, expected: Any) -> None:
    if isinstance(expected, np.ndarray) and expected.dtype == object:
        assert got.dtype == object and got.shape == expected.shape
        for g, e in zip(got.ravel(), expected.ravel(), strict=True):
            assert_same(g, e)
        return
    assert type(got) is np.ndarray
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_array_equal(bits(got), bits(expected))


# -- races: every result waits for the kernel that wrote it ------------------------------


def test_tree_waits_for_the_kernels_writing_its_leaves(torch: Any) -> None:
    values = {
        "f32": torch.randn(1 << 16, device="cuda"),
        "bf16": torch.randn(4096, device="cuda").to(torch.bfloat16),
        "u8": torch.randint(0, 256, (3, 1000), dtype=torch.uint8, device="cuda"),
    }
    expected = {k: interop.to_numpy(v.cpu()) for k, v in values.items()}
    tree = {"f32": late(torch, values["f32"]), "more": [late(torch, values["bf16"])]}
    tree["more"].append((late(torch, values["u8"]).t(),))
    out = interop.to_numpy_tree(tree)
    assert_same(out["f32"], expected["f32"])
    assert_same(out["more"][0], expected["bf16"])
    assert_same(out["more"][1][0], expected["u8"].T)


def test_tree_converted_on_a_side_stream(torch: Any) -> None:
    values = torch.randn(1 << 18, device="cuda")
    expected = values.cpu().numpy()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        # Written on the side stream, copied on it (the current stream there).
        x = late(torch, values)
        out = interop.to_numpy_tree({"x": [x, x[::3]]})
    assert_same(out["x"][0], expected)
    assert_same(out["x"][1], expected[::3])


def test_pipeline_batches_wait_for_their_kernels(torch: Any) -> None:
    values = [torch.randn(1 << 16, device="cuda") * i for i in range(4)]
    expected = [v.cpu().numpy() for v in values]

    def batches() -> Iterator[Any]:
        for v in values:
            yield {"x": late(torch, v)}

    got = list(interop.iter_numpy(batches(), prefetch=2))
    for batch, want in zip(got, expected, strict=True):
        assert_same(batch["x"], want)


def test_numpy_function_waits_for_its_arguments(torch: Any) -> None:
    values = torch.randn(1 << 16, device="cuda", dtype=torch.float64)

    @interop.numpy_function(like="a")
    def twice(a: np.ndarray, more: list[np.ndarray]) -> np.ndarray:
        return np.asarray(a + more[0])

    out = twice(late(torch, values), [late(torch, values)])
    np.testing.assert_array_equal(out.cpu().numpy(), (values * 2).cpu().numpy())


def test_leaves_on_two_devices(torch: Any) -> None:
    if torch.cuda.device_count() < 2:
        pytest.skip("needs two CUDA devices")
    a = torch.randn(1 << 16, device="cuda:0")
    b = torch.randn(1 << 16, device="cuda:1")
    expected = (a.cpu().numpy(), b.cpu().numpy())
    with torch.cuda.device(0):  # cuda:1's copy runs on cuda:1's own current stream
        out = interop.to_numpy_tree([late(torch, a), {"b": late(torch, b)}])
    assert_same(out[0], expected[0])
    assert_same(out[1]["b"], expected[1])


# -- every layout and dtype that to_numpy converts -----------------------------------


def _layout_tree(torch: Any) -> dict[str, Any]:
    dense = torch.randn(16, 16, device="cuda")
    dense = dense * (torch.rand(16, 16, device="cuda") > 0.7)
    return {
        "coo": dense.to_sparse(),
        "csr": dense.to_sparse_csr(),
        "jagged": torch.nested.nested_tensor(
            [torch.randn(2, 3, device="cuda"), torch.randn(5, 3, device="cuda")],
            layout=torch.jagged,
        ),
        "uint4": torch.randint(0, 16, (64,), dtype=torch.uint8, device="cuda").view(torch.uint4),
        "int4": torch.randint(0, 16, (8, 8), dtype=torch.uint8, device="cuda").view(torch.int4),
        "uint1": torch.randint(0, 2, (64,), dtype=torch.uint8, device="cuda").view(torch.uint1),
        "float8_e4m3fn": (torch.randn(64, device="cuda") * 100).to(torch.float8_e4m3fn),
        "float8_e5m2": torch.randn(8, 8, device="cuda").to(torch.float8_e5m2).t(),
        "e8m0": torch.randint(0, 255, (64,), dtype=torch.uint8, device="cuda").view(
            torch.float8_e8m0fnu
        ),
        "float4": torch.randint(0, 256, (8, 4), dtype=torch.uint8, device="cuda").view(
            torch.float4_e2m1fn_x2
        ),
        "bfloat16": torch.randn(64, device="cuda").to(torch.bfloat16)[::2],
        "uint16": torch.randint(-(1 << 15), 1 << 15, (64,), dtype=torch.int16, device="cuda").view(
            torch.uint16
        ),
    }


OPTIONS = {"sparse": "dense", "ragged": "object"}


def test_tree_of_sparse_nested_and_shell_dtype_leaves(torch: Any) -> None:
    tree = _layout_tree(torch)
    expected = {k: interop.to_numpy(v, **OPTIONS) for k, v in tree.items()}
    out = interop.to_numpy_tree(tree, **OPTIONS)
    for key, want in expected.items():
        assert_same(out[key], want)


def test_pipeline_of_sparse_nested_and_shell_dtype_leaves(torch: Any) -> None:
    trees = [_layout_tree(torch) for _ in range(3)]
    expected = [{k: interop.to_numpy(v, **OPTIONS) for k, v in t.items()} for t in trees]
    got = list(interop.iter_numpy(trees, prefetch=2, **OPTIONS))
    for batch, want in zip(got, expected, strict=True):
        for key in want:
            assert_same(batch[key], want[key])


def test_numpy_function_of_shell_dtype_and_sparse_arguments(torch: Any) -> None:
    tree = _layout_tree(torch)
    seen: dict[str, Any] = {}

    @interop.numpy_function
    def keep(args: dict[str, Any]) -> int:
        seen.update(args)
        return 0

    with interop.options(**OPTIONS):  # the options in force at call time apply
        keep(tree)
    for key, leaf in tree.items():
        assert_same(seen[key], interop.to_numpy(leaf, **OPTIONS))


# -- large leaves: staged into pageable memory, pinned memory bounded -----------------


def test_large_leaves_are_bit_exact_and_pageable(torch: Any) -> None:
    bound = _copies.PINNED_BATCH_BYTES
    big = torch.randn(bound // 4 + 12_345, device="cuda")
    odd = torch.randint(
        0, 16, (5 * _copies.STAGING_BYTES + 7,), dtype=torch.uint8, device="cuda"
    ).view(torch.uint4)
    wide = torch.randn(2048, 8193, device="cuda").t()  # not contiguous
    small = torch.randn(1000, device="cuda")
    tree = {"big": big, "odd": odd, "wide": wide, "small": small}
    expected = {k: interop.to_numpy(v) for k, v in tree.items()}  # blocking, one by one
    tree["big"] = late(torch, big)
    tree["wide"] = late(torch, wide.t()).t()
    out = interop.to_numpy_tree(tree)
    for key, want in expected.items():
        assert_same(out[key], want)
    # The large leaves landed in pageable memory of their own, the small one in
    # pinned memory.
    for key in ("big", "odd", "wide"):
        assert not torch.from_numpy(out[key].view(np.uint8)).is_pinned()
    assert torch.from_numpy(out["small"]).is_pinned()
    out["big"][...] = 0  # the caller's own memory
    assert_same(out["wide"], expected["wide"])


def test_pinned_memory_held_after_a_large_tree(torch: Any) -> None:
    """A tree of 512 MiB pins at most the bound (the earlier copies pinned all of it)."""
    stats = torch.cuda.host_memory_stats
    bound = _copies.PINNED_BATCH_BYTES
    staging = _copies.STAGING_BYTES
    leaves = [torch.randn(8 << 20, device="cuda") for _ in range(16)]  # 32 MiB each
    expected = [x.cpu().numpy() for x in leaves]
    torch.cuda.synchronize()
    before = stats().get("active_bytes.current", 0)
    torch.cuda.reset_peak_host_memory_stats()
    out = interop.to_numpy_tree(leaves)
    after = stats()
    for got, want in zip(out, expected, strict=True):
        assert_same(got, want)
    assert after["active_bytes.current"] - before <= bound + staging
    assert after["active_bytes.peak"] - before <= bound + staging
    pinned = [torch.from_numpy(a).is_pinned() for a in out]
    assert sum(pinned) == bound // (32 << 20)


# -- prefetch overlaps ---------------------------------------------------------------


def test_prefetch_does_not_wait_for_the_next_batch(torch: Any) -> None:
    """Handing out batch 0 waits for batch 0's copy, not for batch 1's kernels and copy.

    Each batch is produced behind a GPU spin. With prefetch=1, batch 1's spin and
    copy are queued when batch 0 is handed out: a ``stream.synchronize()`` would wait
    for both spins (about twice the time, and the stream idle afterwards); waiting on
    batch 0's event leaves batch 1's work running. The spin is timed with CUDA events.
    """
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    torch.cuda._sleep(SLEEP_CYCLES)
    end.record()
    end.synchronize()
    spin_ms = start.elapsed_time(end)

    def batches() -> Iterator[Any]:
        for i in range(3):
            torch.cuda._sleep(SLEEP_CYCLES)  # the work producing batch i
            yield torch.full((1 << 16,), float(i), device="cuda")

    torch.cuda.synchronize()
    it = iter(interop.iter_numpy(batches(), prefetch=1))
    t0 = time.perf_counter()
    first = next(it)
    waited_ms = (time.perf_counter() - t0) * 1000
    busy = not torch.cuda.current_stream().query()
    assert (first == 0).all()
    assert busy, "handing out batch 0 waited for batch 1's work"
    assert waited_ms < 1.6 * spin_ms, (waited_ms, spin_ms)
    rest = list(it)
    assert [float(b[0]) for b in rest] == [1.0, 2.0]


# -- interrupted walks -------------------------------------------------------------


class Interrupting(Mapping[str, Any]):
    """A mapping whose iteration is interrupted (Ctrl-C) after its first key."""

    def __init__(self, first: Any) -> None:
        self.first = first

    def __getitem__(self, key: str) -> Any:
        return self.first

    def __len__(self) -> int:
        return 2

    def __iter__(self) -> Iterator[str]:
        yield "first"
        raise KeyboardInterrupt


def test_interrupted_walk_waits_for_the_copies_it_started(torch: Any) -> None:
    a = late(torch, torch.randn(1 << 16, device="cuda"))
    b = late(torch, torch.randn(1 << 16, device="cuda"))
    with pytest.raises(KeyboardInterrupt):
        interop.to_numpy_tree([a, Interrupting(b)])
    # The copies started (behind the spins) were waited for before being dropped.
    assert torch.cuda.current_stream().query()


def test_error_in_a_later_leaf_waits_for_the_copies_started(torch: Any) -> None:
    a = late(torch, torch.randn(1 << 16, device="cuda"))
    with pytest.raises(interop.ConversionError, match=r"^tree\[1\]: "):
        interop.to_numpy_tree([a, torch.empty(1, device="meta")])
    assert torch.cuda.current_stream().query()


# -- CuPy and JAX --------------------------------------------------------------------


def test_cupy_tree_with_small_and_staged_leaves() -> None:
    cupy = pytest.importorskip("cupy")
    bound = _copies.PINNED_BATCH_BYTES
    tree = {
        "small": cupy.arange(1000, dtype=cupy.float32),
        "big": cupy.random.standard_normal(bound // 8 + 999),
        "odd": cupy.random.randint(0, 255, 5 * _copies.STAGING_BYTES + 5, dtype=cupy.uint8),
        "wide": cupy.random.standard_normal((1024, 9001), dtype=cupy.float32).T,
    }
    expected = {k: cupy.asnumpy(v) for k, v in tree.items()}
    out = interop.to_numpy_tree(tree)
    for key, want in expected.items():
        assert_same(out[key], want)
    got = list(interop.iter_numpy([tree, tree], prefetch=1))
    for batch in got:
        for key, want in expected.items():
            assert_same(batch[key], want)


def test_jax_array_sharded_over_gpus() -> None:
    jax = pytest.importorskip("jax")
    gpus = [d for d in jax.devices() if d.platform != "cpu"]
    if len(gpus) < 2:
        pytest.skip("needs two JAX GPU devices")
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(gpus), ("x",))
    values = np.arange(len(gpus) * 1024, dtype=np.float32).reshape(len(gpus), 1024)
    x = jax.device_put(values, NamedSharding(mesh, PartitionSpec("x")))
    assert_same(interop.to_numpy(x), values)
    assert_same(interop.to_numpy_tree({"x": [x]})["x"][0], values)


def test_jax_gpu_arrays_are_copied_to_the_host_once() -> None:
    """One device-to-host copy per array: the host copy JAX keeps, read through a view.

    ``np.array(jax.device_get(x))`` copied twice (JAX's host copy, then the result's)
    and held the data twice in host memory.
    """
    jax = pytest.importorskip("jax")
    gpus = [d for d in jax.devices() if d.platform != "cpu"]
    if not gpus:
        pytest.skip("needs a JAX GPU device")
    values = np.arange(4096, dtype=np.float32).reshape(64, 64) - 0.5
    x = jax.device_put(values, gpus[0])
    out = interop.to_numpy(x)
    assert_same(out, values)
    assert interop.explain(x).readonly and not out.flags.writeable
    assert np.shares_memory(out, np.asarray(x))
    copied = interop.to_numpy(x, copy=True)
    assert copied.flags.writeable and not np.shares_memory(copied, out)
    # A tree starts every copy (copy_to_host_async) before reading any, each once.
    leaves = [jax.device_put(values + i, gpus[0]) for i in range(8)]
    tree = interop.to_numpy_tree({"leaves": leaves})
    for leaf, got in zip(leaves, tree["leaves"], strict=True):
        assert np.shares_memory(got, np.asarray(leaf)) and not got.flags.writeable
    for i, got in enumerate(tree["leaves"]):
        assert_same(got, values + i)
    half = interop.to_numpy(x, dtype=np.float16)  # cast on the device: a private copy
    assert half.flags.writeable
    assert_same(half, values.astype(np.float16))
