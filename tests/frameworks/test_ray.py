"""Ray Data through :mod:`interop.ray`: a real local pipeline, exact dtypes end to end.

One local cluster (``num_cpus=2``) serves the whole module. Its workers import this
checkout (``PYTHONPATH``), as the driver does. Each pipeline takes seconds (Ray
schedules tasks in worker processes): the tests are in the slow tier.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import interop

pytestmark = [
    pytest.mark.slow,
    # Ray's own deprecation notices about its settings, raised inside Ray (every
    # other warning, the library's included, stays an error).
    pytest.mark.filterwarnings(r"ignore::DeprecationWarning:ray\..*"),
    # JAX warns at every fork once it is imported (by other tests of the session);
    # Ray starts its processes with one.
    pytest.mark.filterwarnings(r"ignore:os\.fork\(\) was called:RuntimeWarning"),
]

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pa = pytest.importorskip("pyarrow")
torch = pytest.importorskip("torch")

from ray.data.extensions import ArrowTensorArray  # noqa: E402

import interop.ray as iray  # noqa: E402  (needs ray)

ROOT = Path(__file__).resolve().parents[2]

# bfloat16 bit patterns that a cast would change: NaN payloads, both signs, subnormals.
BF16_BITS = np.array(
    [0x7FC1, 0xFFC3, 0x7F81, 0x0001, 0x8001, 0x3F80, 0xC2F7, 0x7F80], dtype=np.uint16
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": env},
    )
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    try:
        yield
    finally:
        ray.shutdown()


def _source(n: int = 16) -> Any:
    x = np.arange(n * 4, dtype=np.float32).reshape(n, 4)
    bits = np.resize(BF16_BITS, n * 2).reshape(n, 2)
    return ray.data.from_items([{"x": x[i], "bits": bits[i]} for i in range(n)]), x, bits


def _torch_udf(batch: dict[str, Any]) -> dict[str, Any]:
    x = batch["x"]
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float32
    w = torch.ones(4, 3, requires_grad=True)
    y = x @ w  # a model's output: it requires grad
    bits = batch["bits"].to(torch.int32).to(torch.int16)  # uint16 bits, reinterpreted below
    return {
        "y": y,
        "bf16": bits.view(torch.bfloat16),
        "nested": {"f8": (x[:, :2] / 8).to(torch.float8_e4m3fn), "id": x[:, 0].long()},
    }


def _jax_udf(batch: dict[str, Any]) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp

    assert isinstance(batch["y"], jax.Array) and batch["bf16"].dtype == jnp.bfloat16
    return {"y2": batch["y"] * 2, "bf16": batch["bf16"], "nested": batch["nested"]}


def test_pipeline_keeps_bfloat16_bit_exact_end_to_end(cluster: None, tmp_path: Path) -> None:
    pytest.importorskip("jax")
    ds, x, bits = _source()
    ds = iray.map_batches(ds, _torch_udf, to="torch", batch_size=8)
    ds = iray.map_batches(ds, _jax_udf, to="jax", batch_size=8)
    ds.write_parquet(str(tmp_path / "out"))
    back = ray.data.read_parquet(str(tmp_path / "out"))
    batches = list(iray.iter_batches(back, to="jax", batch_size=16))
    assert len(batches) == 1
    batch = batches[0]
    order = np.argsort(interop.to_numpy(batch["nested"]["id"]))
    bf16 = interop.to_numpy(batch["bf16"])[order]
    assert bf16.dtype == ml_dtypes.bfloat16
    assert np.array_equal(bf16.view(np.uint16), bits)  # NaN payloads included
    np.testing.assert_array_equal(interop.to_numpy(batch["y2"])[order], 2 * (x @ np.ones((4, 3))))
    f8 = interop.to_numpy(batch["nested"]["f8"])[order]
    assert f8.dtype == ml_dtypes.float8_e4m3fn
    assert np.array_equal(f8, (x[:, :2] / 8).astype(ml_dtypes.float8_e4m3fn))


def test_plain_ray_reads_the_exact_dtypes_too(cluster: None) -> None:
    ds, _, bits = _source()
    out = iray.map_batches(ds, _torch_udf, to="torch").take_batch(16)
    assert out["bf16"].dtype == ml_dtypes.bfloat16
    assert sorted(out["bf16"].view(np.uint16).ravel().tolist()) == sorted(bits.ravel().tolist())


def test_batches_reach_fn_in_the_framework_asked(cluster: None) -> None:
    ds, x, _ = _source(8)

    def check(batch: dict[str, Any]) -> dict[str, Any]:
        assert isinstance(batch["x"], np.ndarray) and not batch["x"].flags.writeable
        return {"x": batch["x"] + 1}

    out = iray.map_batches(ds, check, to="numpy").take_batch(8)
    np.testing.assert_array_equal(np.sort(out["x"], axis=0), x + 1)
    torch_batches = list(iray.iter_batches(ds, to="torch", batch_size=4))
    assert all(isinstance(b["x"], torch.Tensor) for b in torch_batches)
    got = torch.cat([b["x"] for b in torch_batches]).numpy()
    np.testing.assert_array_equal(got[np.argsort(got[:, 0])], x)


class Scale:
    """A callable class, as Ray runs models: built once per actor."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {"x": batch["x"] * self.factor}


def test_callable_class_with_concurrency(cluster: None) -> None:
    ds, x, _ = _source(8)
    ds = iray.map_batches(ds, Scale, to="torch", concurrency=1, fn_constructor_args=(3.0,))
    out = ds.take_batch(8)
    np.testing.assert_array_equal(np.sort(out["x"], axis=0), 3 * x)


def test_errors_inside_fn_reach_the_caller_with_their_message(cluster: None) -> None:
    ds, _, _ = _source(4)

    def broken(batch: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("the model exploded on purpose")

    with pytest.raises(Exception, match="the model exploded on purpose"):
        iray.map_batches(ds, broken, to="torch").take_batch(4)

    def scalar(batch: dict[str, Any]) -> dict[str, Any]:
        return {"loss": batch["x"].sum(), "x": batch["x"]}

    with pytest.raises(Exception, match=r"output\['loss'\].*reshape"):
        iray.map_batches(ds, scalar, to="torch").take_batch(4)
    with pytest.raises(TypeError, match="batch_format"):
        iray.map_batches(ds, scalar, batch_format="numpy")


def test_importing_interop_never_imports_ray() -> None:
    code = (
        "import sys, interop, pyarrow\n"
        "interop.to_numpy(pyarrow.array([1]))\n"
        "print('ray' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_batches_out_refuse_keys_that_name_one_column() -> None:
    for batch, where in (
        ({1: np.zeros(2), "1": np.ones(2)}, "output"),
        ({"a": {1: np.zeros(2), "1": np.ones(2)}}, r"output\['a'\]"),
    ):
        with pytest.raises(interop.ConversionError, match=rf"{where}, got \[1, '1'\].*hint"):
            iray.to_arrow_table(batch)
    table = iray.to_arrow_table({1: np.zeros(2), "b": {2: np.ones(2)}})
    assert table.column_names == ["1", "b"]


def test_a_batch_over_several_blocks_keeps_every_row() -> None:
    # A batch that spans blocks arrives as a table of several chunks per column.
    part = pa.table({"flag": [True, False, True], "x": [1.0, 2.0, 3.0]})
    out = iray.to_framework(pa.concat_tables([part, part]), to="torch")
    assert out["flag"].tolist() == [True, False, True] * 2
    assert out["x"].tolist() == [1.0, 2.0, 3.0] * 2


def test_a_list_column_pyarrow_refuses_is_named_with_a_hint() -> None:
    rows = [np.ones(2, dtype=np.float32), object()]
    with pytest.raises(interop.ConversionError, match=r"output\['emb'\]: .*hint: return one array"):
        iray.to_arrow_table({"emb": rows})
    assert iray.to_arrow_table({"tags": ["a", "b"]}).column("tags").to_pylist() == ["a", "b"]


def _tensor_rows_with_nulls() -> tuple[Any, np.ndarray[Any, Any]]:
    # Ray combines blocks whose schemas differ (a UDF left the column out of some)
    # into one batch this way: the missing rows become nulls.
    x = np.arange(6, dtype=np.float32).reshape(2, 3) + 1
    with_x = pa.table({"id": [0, 1], "x": ArrowTensorArray.from_numpy(x)})
    batch = pa.concat_tables([with_x, pa.table({"id": [2, 3]})], promote_options="default")
    return batch, x


def test_null_rows_of_a_ray_tensor_column_are_refused_as_to_numpy_refuses() -> None:
    batch, x = _tensor_rows_with_nulls()
    column = batch.column("x")
    with pytest.raises(interop.ConversionError) as direct:
        interop.to_numpy(column)
    hint = r"2 nulls in 4 values: .*hint: fill them first .*dtype=object to get None for each null"
    for table in (batch, batch.combine_chunks()):
        for to in ("numpy", "torch"):
            with pytest.raises(interop.ConversionError, match=rf"tree\['x'\]: .*{hint}") as got:
                iray.to_framework(table, to=to)
            # The hint goes on to say how a batch gets the dtype= that it asks for.
            assert str(got.value) == f"tree['x']: {direct.value}{_RAY_DTYPE_ADVICE}"
    # A take with a null index (Ray's own conversion fails on this one).
    taken = pa.table({"x": ArrowTensorArray.from_numpy(x).take(pa.array([0, None]))})
    with pytest.raises(interop.ConversionError, match=r"1 null in 2 values"):
        iray.to_framework(taken)
    # dtype=object of to_numpy gives None for each value of a null row.
    rows = interop.to_numpy(column, dtype=object).tolist()
    assert rows == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [None] * 3, [None] * 3]


_RAY_DTYPE_ADVICE = (
    "; interop.ray's batches take no dtype=: convert such a column in a function of your "
    "own that Ray gives pyarrow batches (ds.map_batches(fn, batch_format='pyarrow'), "
    "ds.iter_batches(batch_format='pyarrow')), with interop.to_numpy(batch.column(name), "
    "dtype=...), or give its rows one shape and no nulls"
)


def _variable_shape_rows() -> Any:
    rows = np.empty(2, object)
    rows[:] = [np.ones(2, np.float32), np.zeros(3, np.float32)]
    return ArrowTensorArray.from_numpy(rows)


def test_a_variable_shape_tensor_column_is_refused_with_a_hint_for_ray() -> None:
    table = pa.table({"v": _variable_shape_rows()})
    with pytest.raises(interop.ConversionError, match=r"hint: pass dtype=object") as direct:
        interop.to_numpy(table.column("v"))
    for to in ("numpy", "torch"):
        with pytest.raises(interop.ConversionError) as got:
            iray.to_framework(table, to=to)
        assert str(got.value) == f"tree['v']: {direct.value}{_RAY_DTYPE_ADVICE}"
        assert got.value.keyword is None
    # What the hint says works: the column converted with a dtype=.
    rows = interop.to_numpy(table.column("v"), dtype=object)
    assert [r.tolist() for r in rows] == [[1.0, 1.0], [0.0, 0.0, 0.0]]
    # Refusals that ask for no dtype= are left as they are.
    with pytest.raises(interop.ConversionError) as words:
        iray.to_framework(pa.table({"s": ["a"]}))
    assert "interop.ray" not in str(words.value)


def test_a_pipeline_of_rows_of_different_shapes_is_refused_with_a_hint_for_ray(
    cluster: None,
) -> None:
    ds = ray.data.from_items([{"x": np.ones(2, np.float32)}, {"x": np.ones(3, np.float32)}])
    with pytest.raises(interop.ConversionError, match=r"tree\['x'\]: .*Python objects") as got:
        list(iray.iter_batches(ds, batch_size=2))
    assert str(got.value).endswith(_RAY_DTYPE_ADVICE)


def test_a_ray_tensor_column_without_nulls_is_ray_s_own_read_only_view() -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    column = ArrowTensorArray.from_numpy(x)
    out = iray.to_framework(pa.table({"x": column}))["x"]
    np.testing.assert_array_equal(out, x)
    assert np.shares_memory(out, column.to_numpy()) and not out.flags.writeable


def test_an_empty_ray_tensor_column_gives_an_empty_array() -> None:
    full = pa.table({"x": ArrowTensorArray.from_numpy(np.zeros((2, 3), np.float32))})
    for empty in (
        full.filter(pa.array([False, False])),  # (no chunk left)
        full.slice(0, 0),
        pa.Table.from_batches([], full.schema),
    ):
        out = iray.to_framework(empty)["x"]
        assert out.shape == (0, 3) and out.dtype == np.float32 and not out.flags.writeable
        tensor = iray.to_framework(empty, to="torch")["x"]
        assert tuple(tensor.shape) == (0, 3) and tensor.dtype == torch.float32


def _drop_odd(block: Any) -> Any:
    """A UDF that leaves the tensor column out of some blocks."""
    return block.drop_columns(["x"]) if block.column("id")[0].as_py() % 2 else block


def test_a_pipeline_whose_blocks_lack_a_tensor_column_raises(cluster: None) -> None:
    ds = ray.data.from_items([{"id": i, "x": np.full(3, i + 1, np.float32)} for i in range(4)])
    ds = ds.repartition(4).map_batches(_drop_odd, batch_format="pyarrow", batch_size=1)
    ds = ds.materialize()
    for to in ("numpy", "torch"):
        with pytest.raises(interop.ConversionError, match=r"tree\['x'\]: .*2 nulls in 4 values"):
            list(iray.iter_batches(ds, batch_size=4, to=to))
