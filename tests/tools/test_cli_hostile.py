"""``interop convert`` on hostile inputs, in this process: one clean line, or a valid file.

Every failure must exit 2 with exactly one line ``interop convert: error: ...`` on
stderr and leave nothing behind; every success must write a file that its
format's own readers accept, with each value exact. Each hostile file is made
here, small, in ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import interop
from interop.cli import main
from interop.cli.errors import ConvertError
from interop.cli.files import arrow, flatten, limits, readers, writers

OUTPUTS = [".npz", ".safetensors", ".arrow", ".parquet"]


def convert(capsys: pytest.CaptureFixture[str], *args: Any) -> tuple[int, str, str]:
    """``interop convert ARGS``: the exit status, stdout and stderr."""
    status = main(["convert", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


def failed(capsys: pytest.CaptureFixture[str], *args: Any) -> str:
    """The error of ``interop convert ARGS``, checked to be one line with exit status 2."""
    status, _, err = convert(capsys, *args)
    assert status == 2, err
    assert err.startswith("interop convert: error: "), err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    return err


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def safetensors_file(path: Path, header: dict[str, Any], data: bytes = b"") -> None:
    """A safetensors file with this header (JSON, non-ASCII escaped) and data."""
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def safetensors_names(path: Path) -> list[str]:
    """The tensor names of a safetensors file, its header read as strict UTF-8 JSON."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length].decode("utf-8"))
    return [name for name in header if name != "__metadata__"]


def needs(suffix: str) -> None:
    if suffix in (".arrow", ".parquet"):
        pytest.importorskip("pyarrow")


# -- shapes: at most 64 dimensions, and a size that NumPy can hold -------------------------------

HOSTILE_SHAPES = {
    "70-dims": ([1] * 70, "at most 64 dimensions"),
    "70-dims-empty": ([0] * 70, "at most 64 dimensions"),
    "empty-2**80-bytes": ([2**40, 2**40, 0], "no NumPy array is that large"),
    "empty-2**64-dim": ([2**64, 0], "no NumPy array is that large"),
    "empty-long-list": ([2**62] * 10_000 + [0], "at most 64 dimensions"),
}


@pytest.mark.parametrize(("shape", "message"), HOSTILE_SHAPES.values(), ids=HOSTILE_SHAPES.keys())
@pytest.mark.parametrize("suffix", OUTPUTS)
def test_safetensors_shapes_numpy_cannot_hold_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, suffix: str, shape: list[int], message: str
) -> None:
    needs(suffix)
    # A header that is valid but for the shape: x's bytes, then y's, tile the data.
    size = 4 if all(shape) else 0
    x = {"dtype": "F32", "shape": shape, "data_offsets": [0, size]}
    y = {"dtype": "F32", "shape": [1], "data_offsets": [size, size + 4]}
    safetensors_file(tmp_path / "in.safetensors", {"x": x, "y": y}, bytes(size + 4))
    assert message in failed(capsys, tmp_path / "in.safetensors", tmp_path / f"o{suffix}")
    assert files(tmp_path) == ["in.safetensors"]
    # interop.load reads with the same readers, and raises the same error.
    with pytest.raises(ConvertError, match=message):
        interop.load(tmp_path / "in.safetensors")


def test_torch_tensors_of_more_dimensions_than_numpy_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch")
    torch.save({"x": torch.zeros([1] * 65)}, tmp_path / "t.pt")
    assert "at most 64 dimensions" in failed(capsys, tmp_path / "t.pt", tmp_path / "o.npz")
    assert files(tmp_path) == ["t.pt"]


def test_output_sizes_are_exact_for_any_declared_shape() -> None:
    pytest.importorskip("pyarrow")
    # Python integers: no int64 product to overflow (np.prod raised OverflowError).
    planned = [("x", (2**64, 0), np.dtype(np.float32)), ("y", (3, 2**62), np.dtype(np.uint8))]
    assert writers.OUTPUTS[".safetensors"].size(planned) >= 3 * 2**62
    assert arrow.arrow_size(planned) >= 3 * 2**62
    limits.check_shape("x", (2**62, 0, 1), np.dtype(np.uint8), "here")  # as NumPy allows
    with pytest.raises(ConvertError, match="no NumPy array is that large"):
        limits.check_shape("x", (2**63, 0), np.dtype(np.uint8), "here")


# -- names that are not valid UTF-8 --------------------------------------------------------------


@pytest.mark.parametrize("suffix", OUTPUTS)
def test_keys_with_lone_surrogates_are_written_escaped_in_every_format(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, suffix: str
) -> None:
    needs(suffix)
    u8 = {"dtype": "U8", "shape": [1]}
    # "\udcff" is what os.fsdecode makes of the byte 0xff in a file name.
    keys = ["a\udcff", "a%ED%B3%BF", "ok"]
    header = {k: {**u8, "data_offsets": [i, i + 1]} for i, k in enumerate(keys)}
    safetensors_file(tmp_path / "in.safetensors", header, bytes([7, 8, 9]))
    status, out, err = convert(capsys, tmp_path / "in.safetensors", tmp_path / f"o{suffix}")
    assert status == 0 and err == "", err
    assert "renamed 1 keys that are unsafe as names" in out
    assert "'a\\udcff' as 'a%ED%B3%BF~1'" in out  # escaped, then made unique
    back = interop.load(tmp_path / f"o{suffix}", flat=True)
    assert {k: v.tolist() for k, v in back.items()} == {
        "a%ED%B3%BF~1": [7],
        "a%ED%B3%BF": [8],
        "ok": [9],
    }
    if suffix == ".safetensors":
        assert safetensors_names(tmp_path / "o.safetensors") == ["a%ED%B3%BF~1", "a%ED%B3%BF", "ok"]


@pytest.mark.skipif(sys.platform != "linux", reason="file names of any bytes")
@pytest.mark.parametrize("suffix", OUTPUTS)
def test_an_input_file_name_that_is_not_utf8_names_a_valid_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, suffix: str
) -> None:
    needs(suffix)
    src = tmp_path / os.fsdecode(b"w\xff.npy")  # the key of a .npy input is its stem
    np.save(src, np.arange(3.0))
    status, out, err = convert(capsys, src, tmp_path / f"o{suffix}")
    assert status == 0 and err == "", err
    assert "'w\\udcff' as 'w%ED%B3%BF'" in out
    back = interop.load(tmp_path / f"o{suffix}", flat=True)
    assert list(back) == ["w%ED%B3%BF"] and back["w%ED%B3%BF"].tolist() == [0.0, 1.0, 2.0]


def test_a_key_named_like_the_safetensors_metadata_is_escaped(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    np.savez(tmp_path / "in.npz", __metadata__=np.arange(2), w=np.ones(1))
    status, out, _ = convert(capsys, tmp_path / "in.npz", tmp_path / "o.safetensors")
    assert status == 0 and "'__metadata__' as '%5F_metadata__'" in out
    assert safetensors_names(tmp_path / "o.safetensors") == ["%5F_metadata__", "w"]
    assert interop.load(tmp_path / "o.safetensors")["%5F_metadata__"].tolist() == [0, 1]


# -- Arrow IPC inputs: read once, whatever their number of columns -------------------------------


def test_reading_an_arrow_file_is_linear_in_its_columns(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pa = pytest.importorskip("pyarrow")
    feather = pytest.importorskip("pyarrow.feather")
    codec = next((c for c in ("zstd", "lz4") if pa.Codec.is_available(c)), None)
    if codec is None:
        pytest.skip("pyarrow has no compression codec")
    # Decompressing allocates from pyarrow's pool: counting its allocations counts
    # the columns decompressed, once each if the file is read once.
    pool = pa.default_memory_pool()
    allocations = {}
    for n in (50, 200):
        table = pa.table({f"c{i}": np.array([float(i)]) for i in range(n)})
        feather.write_feather(table, tmp_path / f"w{n}.arrow", compression=codec)
        before = pool.num_allocations()
        status, _, err = convert(capsys, tmp_path / f"w{n}.arrow", tmp_path / f"w{n}.npz")
        assert status == 0, err
        allocations[n] = pool.num_allocations() - before
        with np.load(tmp_path / f"w{n}.npz") as z:
            assert len(z.files) == n and z[f"c{n - 1}"].tolist() == [n - 1.0]
    # 4 times the columns: 4 times the work (reading the table per column made it 16).
    assert allocations[200] <= 5 * allocations[50], allocations


# -- output names of any length the file system accepts -----------------------------------------


def test_an_output_name_of_the_longest_length_allowed_is_written(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    longest = os.pathconf(tmp_path, "PC_NAME_MAX") if hasattr(os, "pathconf") else 255
    np.save(tmp_path / "a.npy", np.arange(3))
    dst = tmp_path / ("a" * (longest - len(".npz")) + ".npz")
    status, _, err = convert(capsys, tmp_path / "a.npy", dst)
    assert status == 0, err
    with np.load(dst) as z:
        assert z["a"].tolist() == [0, 1, 2]
    assert files(tmp_path) == sorted(["a.npy", dst.name])  # no temporary file left


# -- PyTorch files: what weights_only refused, numbers kept exact, warnings held ----------------


class Blocked:
    """Unpickles as a call of ``os.getcwd``, from a module torch's unpickler blocks (harmless)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.getcwd, ())


def test_a_weights_only_refusal_names_the_refused_object(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.ones(1), "x": Blocked()}, tmp_path / "evil.pt")
    error = failed(capsys, tmp_path / "evil.pt", tmp_path / "o.npz")
    quoted = error.split("rejected it: ")[1].split(" hint: ")[0]
    assert "GLOBAL" in quoted and "getcwd" in quoted, quoted
    assert files(tmp_path) == ["evil.pt"]


def test_a_weights_only_refusal_in_the_older_layout_is_quoted_after_its_marker() -> None:
    # torch before 2.13 (and 2.13 for globals it has no rule for): the unpickler's
    # message follows "WeightsUnpickler error:" in the text.
    old = pickle.UnpicklingError(
        "Weights only load failed. Re-running `torch.load` with `weights_only` set to "
        "`False` will likely succeed.\n Please file an issue: WeightsUnpickler error: "
        "Unsupported global: GLOBAL m.Thing was not an allowed global by default. Please use "
        "`torch.serialization.add_safe_globals([Thing])`."
    )
    assert readers._refusal(old) == (
        "Unsupported global: GLOBAL m.Thing was not an allowed global by default."
    )
    assert readers._refusal(pickle.UnpicklingError("Load failed. Really.")) == "Load failed."


def test_number_lists_are_kept_exact_or_held_as_objects() -> None:
    tree = {
        "betas": (0.9, 0.999),
        "ids": [-1, 2**63 - 1],
        "big": [1, 2**64 - 1],
        "flags": [True, 2],
        "sign": [-1, 2**64 - 1],  # no integer dtype; float64 would round 2**64 - 1
        "mixed": [0.5, 2**53 + 1],  # float64 would round 2**53 + 1
        "huge": 10**400,
        "bool-huge": (True, 2**70),
        "numpy": [np.uint64(2**64 - 1), np.int64(-1)],
    }
    leaves = flatten.flatten(tree, "root", limits.Limits(1 << 30), lambda v: False, "t").leaves
    assert {k: v.dtype.kind for k, v in leaves.items()} == {
        "betas": "f",
        "ids": "i",
        "big": "u",
        "flags": "i",
        "sign": "O",
        "mixed": "O",
        "huge": "O",
        "bool-huge": "O",
        "numpy": "O",
    }
    assert leaves["sign"].tolist() == [-1, 2**64 - 1]  # the numbers themselves
    assert leaves["big"].tolist() == [1, 2**64 - 1]


def test_numbers_no_dtype_holds_are_refused_by_name_unless_left_out(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.ones(2), "n": [-1, 2**64 - 1]}, tmp_path / "m.pt")
    for suffix in (".npz", ".safetensors"):
        error = failed(capsys, tmp_path / "m.pt", tmp_path / f"o{suffix}")
        assert "numbers that a dtype holds exactly" in error and "'n'" in error, error
        assert "--keys" in error and "bfloat16" not in error, error
    assert files(tmp_path) == ["m.pt"]
    status, _, err = convert(capsys, tmp_path / "m.pt", tmp_path / "o.npz", "--keys", "w")
    assert status == 0, err


def test_warnings_of_a_failed_conversion_add_no_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # "a" casts to float16 with an overflow warning and is written; then the data
    # of "b" fails its CRC: the error must be the only line.
    np.savez(tmp_path / "in.npz", a=np.array([1e10]), b=np.arange(10_000.0))
    data = bytearray((tmp_path / "in.npz").read_bytes())
    with zipfile.ZipFile(tmp_path / "in.npz") as zf:
        info = zf.getinfo("b.npy")
    data[info.header_offset + 30 + len("b.npy") + 4000] ^= 0xFF
    (tmp_path / "bad.npz").write_bytes(bytes(data))
    to_float16 = (tmp_path / "o.npz", "--dtype", "float16")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert "Bad CRC-32" in failed(capsys, tmp_path / "bad.npz", *to_float16)
    assert [str(w.message) for w in seen] == []
    # After a conversion that succeeds, they are shown as usual.
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        status, _, _ = convert(capsys, tmp_path / "in.npz", *to_float16)
    assert status == 0
    assert [str(w.message) for w in seen] == ["overflow encountered in cast"]
