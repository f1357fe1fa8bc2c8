"""JAX arrays sharded over several devices, and arrays spread over several processes.

JAX fixes its device count when it starts, so these cases run in fresh subprocesses:
one with four CPU devices (``--xla_force_host_platform_device_count=4``) for the
sharded and replicated layouts, and two cooperating processes (``jax.distributed``
over localhost) for arrays that are not fully addressable. Each case is a function
of the script below; the subprocess runs them all once and reports each one, and
each test here asserts on its own case.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("jax")

ROOT = Path(__file__).resolve().parents[2]

FOUR_DEVICES = textwrap.dedent(
    """
    import json, sys, traceback
    import numpy as np
    import jax, jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec as P
    import interop
    from interop.backends.jax import placement

    assert jax.device_count() == 4, jax.devices()
    mesh1 = jax.make_mesh((4,), ("x",))
    mesh2 = jax.make_mesh((2, 2), ("x", "y"))
    G = np.arange(32.0, dtype=np.float32).reshape(8, 4)

    def put(spec, mesh=mesh1, a=G):
        return jax.device_put(a, NamedSharding(mesh, spec))

    def case_sharded_rows_assemble():
        x = put(P("x"))
        assert not x.is_fully_replicated and len(x.sharding.device_set) == 4
        plan = interop.explain(x)
        assert plan.steps == ("assemble_shards",), plan.steps
        assert not plan.zero_copy and "assembled" in plan.copy_reason
        assert plan.device == "4 cpu devices" and not plan.transfer
        out = interop.to_numpy(x)
        np.testing.assert_array_equal(out, G)
        assert out.dtype == np.float32 and out.flags.writeable and out.flags.owndata
        for shard in x.addressable_shards:
            assert not np.shares_memory(out, np.asarray(shard.data))
        assert not np.shares_memory(out, np.asarray(x))
        out[0, 0] = -1  # the caller's own: JAX's view of the array is unchanged
        assert np.asarray(x)[0, 0] == 0.0

    def case_sharded_columns_and_partly_replicated():
        # Rows split over "x", replicated over "y": every piece lives on two devices.
        x = put(P("x", None), mesh2)
        assert not x.is_fully_replicated
        np.testing.assert_array_equal(interop.to_numpy(x), G)
        y = put(P(None, "y"), mesh2)
        np.testing.assert_array_equal(interop.to_numpy(y), G)
        z = put(P("x", "y"), mesh2)
        np.testing.assert_array_equal(interop.to_numpy(z, copy=True), G)

    def case_sharded_copy_false_raises():
        x = put(P("x"))
        try:
            interop.to_numpy(x, copy=False)
        except interop.CopyRequiredError as exc:
            assert "sharded over 4 cpu devices" in str(exc), exc
        else:
            raise AssertionError("copy=False did not raise")

    def case_sharded_dtype_and_upcast():
        import ml_dtypes
        x = put(P("x"), a=G.astype(ml_dtypes.bfloat16))
        out = interop.to_numpy(x)
        assert out.dtype == np.dtype(ml_dtypes.bfloat16)
        np.testing.assert_array_equal(out.astype(np.float32), G)
        up = interop.to_numpy(x, upcast=True)
        assert up.dtype == np.float32
        assert interop.explain(x, upcast=True).steps == ("assemble_shards", "upcast")
        assert interop.to_numpy(put(P("x")), dtype=np.int64).dtype == np.int64

    def case_fully_replicated_is_a_local_view():
        x = put(P())
        assert x.is_fully_replicated and len(x.sharding.device_set) == 4
        plan = interop.explain(x)
        assert plan.steps == ("local_replica", "numpy_view", "readonly"), plan.steps
        assert plan.zero_copy and plan.readonly
        out = interop.to_numpy(x)
        np.testing.assert_array_equal(out, G)
        assert np.shares_memory(out, np.asarray(x.addressable_data(0)))
        assert not out.flags.writeable
        copied = interop.to_numpy(x, copy=True)
        assert copied.flags.writeable
        assert not any(np.shares_memory(copied, np.asarray(s.data)) for s in x.addressable_shards)

    def case_placement_of_real_arrays():
        def where(x):
            return placement(
                x.is_fully_addressable,
                x.is_fully_replicated,
                len(x.sharding.device_set),
                len(x.sharding.addressable_devices),
            )
        assert where(put(P("x"))) == "assemble"
        assert where(put(P())) == "replica"
        assert where(jnp.arange(3.0)) == "single"

    def case_host_view_of_a_multi_device_array_is_none():
        from interop import _registry
        from tests.support.entry_points import results
        np.testing.assert_array_equal(interop.to_numpy(jnp.arange(3.0)), [0, 1, 2])
        for x in (put(P("x")), put(P()), put(P("x", "y"), mesh2)):
            assert _registry.view_of(type(x)) is not None  # the host view exists for the type
            for _, _, out in results(lambda: x):
                np.testing.assert_array_equal(out, G)
            assert _registry.host_view(x) is None  # never an answer, never an error
        x = put(P("x"))
        x.delete()
        assert _registry.host_view(x) is None

    def case_output_of_a_sharded_computation():
        x = put(P("x"))
        y = jax.jit(lambda a: a * 2)(x)
        assert not y.is_fully_replicated
        np.testing.assert_array_equal(interop.to_numpy(y), G * 2)

    results = {}
    for name, fn in sorted(globals().items()):
        if name.startswith("case_"):
            try:
                fn()
                results[name] = "ok"
            except BaseException:
                results[name] = traceback.format_exc()
    print("RESULTS " + json.dumps(results))
    """
)

CASES = [
    "case_fully_replicated_is_a_local_view",
    "case_host_view_of_a_multi_device_array_is_none",
    "case_output_of_a_sharded_computation",
    "case_placement_of_real_arrays",
    "case_sharded_columns_and_partly_replicated",
    "case_sharded_copy_false_raises",
    "case_sharded_dtype_and_upcast",
    "case_sharded_rows_assemble",
]


def _env(device_count: int) -> dict[str, str]:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={device_count}"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture(scope="module")
def four_device_results() -> dict[str, str]:
    proc = subprocess.run(
        [sys.executable, "-c", FOUR_DEVICES],
        env=_env(4),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULTS ")]
    assert proc.returncode == 0 and lines, proc.stdout + proc.stderr
    results: dict[str, str] = json.loads(lines[-1][len("RESULTS ") :])
    assert sorted(results) == CASES, "update CASES to match the script"
    return results


@pytest.mark.parametrize("case", CASES)
def test_four_cpu_devices(four_device_results: dict[str, str], case: str) -> None:
    outcome = four_device_results[case]
    assert outcome == "ok", outcome


# -- several processes ------------------------------------------------------------------

TWO_PROCESSES = textwrap.dedent(
    """
    import json, sys, traceback
    process_id, port = int(sys.argv[1]), sys.argv[2]
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"localhost:{port}", num_processes=2, process_id=process_id
    )
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    import interop

    report = {}
    try:
        assert jax.process_count() == 2 and jax.device_count() == 4
        mesh = jax.make_mesh((4,), ("x",))
        G = np.arange(8.0, dtype=np.float32)
        sharded = jax.make_array_from_callback(G.shape, NamedSharding(mesh, P("x")), lambda i: G[i])
        replicated = jax.make_array_from_callback(G.shape, NamedSharding(mesh, P()), lambda i: G[i])
        assert not sharded.is_fully_addressable and not replicated.is_fully_addressable
        for call in (interop.to_numpy, interop.explain):
            try:
                call(sharded)
            except interop.ConversionError as exc:
                report.setdefault("sharded_error", str(exc))
            else:
                report["sharded_error"] = None
        if process_id == 0:
            # Only this process converts: a collective here would wait for the other
            # process forever, so finishing proves the local replica is read alone.
            report["replicated_steps"] = list(interop.explain(replicated).steps)
            out = interop.to_numpy(replicated)
            report["replicated_values"] = out.tolist()
            report["replicated_copy"] = interop.to_numpy(replicated, copy=True).tolist()
    except BaseException:
        report["crash"] = traceback.format_exc()
    print("RESULTS " + json.dumps(report), flush=True)
    jax.distributed.shutdown()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def two_process_results() -> list[dict[str, Any]]:
    port = str(_free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TWO_PROCESSES, str(i), port],
            env=_env(2),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    reports = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=180)
            lines = [line for line in out.splitlines() if line.startswith("RESULTS ")]
            assert lines, out + err
            reports.append(json.loads(lines[-1][len("RESULTS ") :]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for report in reports:
        assert "crash" not in report, report["crash"]
    return reports


def test_not_fully_addressable_sharded_array_names_process_allgather(
    two_process_results: list[dict[str, Any]],
) -> None:
    for report in two_process_results:
        message = report["sharded_error"]
        assert message is not None, "converting a multi-process sharded array did not raise"
        assert "jax.experimental.multihost_utils.process_allgather" in message
        assert "several processes" in message


def test_not_fully_addressable_replicated_array_is_the_local_copy(
    two_process_results: list[dict[str, Any]],
) -> None:
    report = two_process_results[0]
    assert report["replicated_steps"] == ["local_replica", "numpy_view", "readonly"]
    assert report["replicated_values"] == list(range(8))
    assert report["replicated_copy"] == list(range(8))
