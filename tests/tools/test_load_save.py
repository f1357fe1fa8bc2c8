"""``interop.load`` and ``interop.save``: tensor files from Python, bit-exact across frameworks."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import interop
from interop import InteropError
from interop.cli.errors import ConvertError
from tests.conftest import load_framework

ROOT = Path(__file__).resolve().parents[2]
EXACT = [".safetensors", ".parquet", ".arrow"]
# bfloat16 bit patterns that a cast would change: NaN payloads of both signs, a
# signalling NaN, subnormals.
BF16_BITS = np.array([0x7FC1, 0xFFC3, 0x7F81, 0x0001, 0x8001, 0x3F80, 0xC2F7], dtype=np.uint16)


def _bf16() -> np.ndarray[Any, Any]:
    return BF16_BITS.view(ml_dtypes.bfloat16).reshape(7, 1)


def _bits(x: Any) -> np.ndarray[Any, Any]:
    a = interop.to_numpy(x)
    assert a.dtype == ml_dtypes.bfloat16, a.dtype
    return a.view(np.uint16).ravel()


def _needs(suffix: str) -> None:
    if suffix in (".parquet", ".arrow"):
        pytest.importorskip("pyarrow")


@pytest.mark.parametrize("suffix", EXACT)
@pytest.mark.parametrize("target", ["jax", "tensorflow", "torch"])
def test_torch_bfloat16_checkpoint_reloads_bit_exactly(
    suffix: str, target: str, tmp_path: Path
) -> None:
    _needs(suffix)
    torch = pytest.importorskip("torch")
    load_framework(target)
    w = torch.from_numpy(BF16_BITS.view(np.int16).copy()).view(torch.bfloat16).reshape(7, 1)
    checkpoint = {"model": {"w": w, "b": torch.zeros(3)}, "step": 10}
    path = tmp_path / f"ckpt{suffix}"
    assert interop.save(checkpoint, path) == []
    params = interop.load(path, to=target)
    assert np.array_equal(_bits(params["model"]["w"]), BF16_BITS)
    assert interop.framework_of(params["model"]["w"]) == target
    assert interop.to_numpy(params["step"]).tolist() == 10


@pytest.mark.parametrize("suffix", [*EXACT, ".npz"])
def test_every_numeric_dtype_round_trips(suffix: str, tmp_path: Path) -> None:
    _needs(suffix)
    tree = {
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3),
        "i64": np.arange(4),
        "flag": np.array([True, False, True]),
        "scalar": np.float64(2.5),
    }
    if suffix != ".parquet":  # Parquet readers cannot read back a tensor of no values
        tree["empty"] = np.zeros((0, 3), np.float16)
    if suffix != ".npz":
        tree["bf16"] = _bf16()
        tree["f8"] = np.arange(8, dtype=np.float32).astype(ml_dtypes.float8_e5m2)
    if suffix in (".parquet", ".arrow"):  # formats that hold every dtype
        tree["i4"] = np.arange(-8, 8).astype(ml_dtypes.int4).reshape(4, 4)
        tree["c64"] = np.array([1 + 2j, -3j], np.complex64)
        tree["c128"] = np.array([1 + 2j], np.complex128)
    path = tmp_path / f"all{suffix}"
    interop.save(tree, path)
    back = interop.load(path)
    assert set(back) == set(tree)
    for key, a in tree.items():
        got = back[key]
        assert got.dtype == np.asarray(a).dtype and got.shape == np.shape(a), key
        assert got.tobytes() == np.asarray(a).tobytes(), key
        assert got.flags.writeable


def test_nested_and_flat_keys_and_selection(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    tree = {"enc": {"w": np.ones(2), "b": np.zeros(1)}, "dec": {"w": np.full(3, 2.0)}}
    interop.save(tree, path)
    assert set(interop.load(path, flat=True)) == {"enc.w", "enc.b", "dec.w"}
    assert interop.load(path)["enc"]["w"].tolist() == [1.0, 1.0]
    assert set(interop.load(path, keys=["*.w"], flat=True)) == {"enc.w", "dec.w"}
    clash = tmp_path / "clash.npz"
    np.savez(clash, **{"a": np.ones(1), "a.b": np.ones(1)})
    with pytest.raises(InteropError, match="flat=True"):
        interop.load(clash)
    assert set(interop.load(clash, flat=True)) == {"a", "a.b"}


def test_save_reports_what_it_leaves_out_and_refuses_what_it_cannot_store(
    tmp_path: Path,
) -> None:
    skipped = interop.save({"w": np.ones(2), "name": "run-1", "none": None}, tmp_path / "a.npz")
    assert skipped == ["name (str)", "none (NoneType)"]
    path = tmp_path / "bf.npz"
    with pytest.raises(InteropError, match=r"bfloat16.*upcast=True"):
        interop.save({"w": _bf16()}, path)
    assert list(tmp_path.iterdir()) == [tmp_path / "a.npz"]  # nothing half-written
    interop.save({"w": _bf16()}, path, upcast=True)
    assert interop.load(path)["w"].dtype == np.float32
    with pytest.raises(InteropError, match="safetensors"):
        interop.save({"i4": np.zeros(2, ml_dtypes.int4)}, tmp_path / "i4.safetensors")
    if importlib.util.find_spec("pyarrow") is not None:
        with pytest.raises(InteropError, match="no values"):
            interop.save({"e": np.zeros((0, 2))}, tmp_path / "e.parquet")
    with pytest.raises(InteropError, match="exists"):
        interop.save({"w": np.ones(2)}, path, overwrite=False)
    with pytest.raises(InteropError, match="ending in"):
        interop.save({"w": np.ones(2)}, tmp_path / "w.csv")
    with pytest.raises(InteropError, match="ending in"):
        interop.load(tmp_path / "w.csv")


@pytest.mark.parametrize("suffix", [".npz", ".safetensors", ".parquet"])
def test_save_warns_of_keys_it_writes_escaped(suffix: str, tmp_path: Path) -> None:
    # A key that is no valid text (a file name read with os.fsdecode) is escaped;
    # load gives the escaped name back, so save says so.
    path = tmp_path / f"keys{suffix}"
    with pytest.warns(UserWarning, match=r"1 keys .* 'w\\udcff' as 'w%ED%B3%BF'"):
        interop.save({"w\udcff": np.ones(2), "ok": np.zeros(2)}, path)
    assert sorted(interop.load(path)) == ["ok", "w%ED%B3%BF"]


@pytest.mark.parametrize("dtype", ["(f4,3)", "10000000000000000000000f4", "f4,i4", "int8", 3.5])
def test_save_refuses_a_bad_dtype_before_writing(dtype: Any, tmp_path: Path) -> None:
    # np.dtype raised SyntaxError for "(f4,3)" and ValueError for the long shape.
    with pytest.raises(ConvertError, match=r"for --dtype \(dtype=\), got .*\. hint: name one"):
        interop.save({"w": np.ones(2)}, tmp_path / "w.npz", dtype=dtype)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [*EXACT, ".npz"])
def test_an_empty_key_round_trips_as_itself(suffix: str, tmp_path: Path) -> None:
    _needs(suffix)
    # The file's stem is "k", which the key "" used to become (and then clash with).
    a, b, c = np.array([1.5, -0.0]), np.arange(3, dtype=np.int16), np.array([np.nan])
    path = tmp_path / f"k{suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is renamed, so nothing is warned of
        assert interop.save({"": a, "k": b, "n": {"": c}}, path) == []
    flat = interop.load(path, flat=True)
    assert list(flat) == ["", "k", "n."]
    for key, expected in {"": a, "k": b, "n.": c}.items():
        assert flat[key].dtype == expected.dtype
        assert flat[key].tobytes() == expected.tobytes(), key
    nested = interop.load(path)
    assert nested[""].tobytes() == a.tobytes() and nested["n"][""].tobytes() == c.tobytes()


def test_records_of_numpy_dtypes_round_trip_through_npz(tmp_path: Path) -> None:
    record = np.array([(1.5, 7), (np.nan, -1)], dtype=[("x", "<f8"), ("y", ">i4")])
    interop.save({"r": record}, tmp_path / "r.npz")
    back = interop.load(tmp_path / "r.npz")["r"]
    assert back.dtype == record.dtype and back.tobytes() == record.tobytes()
    # The formats that refuse records say so before writing, and name .npz.
    with pytest.raises(ConvertError, match=r"hint: \.npz files keep it exactly$"):
        interop.save({"r": record}, tmp_path / "r.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.npz"]


def test_save_converts_arrays_of_any_framework(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    leaves: dict[str, Any] = {"grad": torch.ones(3, requires_grad=True) * 2}
    for name in ("jax", "tensorflow"):
        framework = load_framework(name)
        leaves[name] = framework.make(np.arange(3, dtype=np.float32))
    path = tmp_path / "mixed.safetensors"
    interop.save(leaves, path)
    back = interop.load(path, to="torch")
    assert back["grad"].tolist() == [2.0, 2.0, 2.0] and not back["grad"].requires_grad
    assert back["jax"].tolist() == [0.0, 1.0, 2.0]


def test_load_reads_pytorch_files_without_unpickling_objects(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.arange(3.0).to(torch.bfloat16)}, tmp_path / "ok.pt")
    assert interop.load(tmp_path / "ok.pt")["w"].dtype == ml_dtypes.bfloat16
    torch.save({"w": torch.ones(1), "obj": Exploding()}, tmp_path / "evil.pt")
    with pytest.raises(InteropError, match="refused to load"):
        interop.load(tmp_path / "evil.pt")


class Exploding:
    """An object whose unpickling would run code: torch.save keeps it as a class reference."""


def test_import_interop_does_not_import_the_file_formats() -> None:
    code = (
        "import sys, interop\n"
        "assert 'interop._io' not in sys.modules and 'interop.cli' not in sys.modules\n"
        "print(callable(interop.load), 'interop._io' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        interop.nothing  # noqa: B018


@pytest.mark.parametrize("suffix", [".npz", ".npy", ".safetensors", ".parquet", ".arrow"])
def test_a_masked_array_saves_its_data_only_where_nothing_is_masked(
    tmp_path: Path, suffix: str
) -> None:
    # No format carries a mask: the values under it would become data.
    for name in ("safetensors", "pyarrow"):
        if suffix in (".safetensors", ".parquet", ".arrow") and not importlib.util.find_spec(name):
            pytest.skip(f"{name} is not installed")
    masked = np.ma.masked_array([1.0, -999.0], mask=[False, True])
    with pytest.raises(InteropError, match="masked"):
        interop.save({"m": masked}, tmp_path / f"a{suffix}")
    assert not (tmp_path / f"a{suffix}").exists()
    clean = np.ma.masked_array([1.0, 2.0], mask=[False, False])
    interop.save({"m": clean}, tmp_path / f"b{suffix}")
    loaded = interop.load(tmp_path / f"b{suffix}")
    back = loaded if isinstance(loaded, np.ndarray) else next(iter(loaded.values()))
    assert type(back) is np.ndarray and back.tolist() == [1.0, 2.0]
