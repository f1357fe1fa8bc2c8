"""``interop convert`` on hostile inputs, in this process: one clean line, or a valid file.

Every failure must exit 2 with exactly one line ``interop convert: error: ...`` on
stderr and leave nothing behind; every success must write a file that its
format's own readers accept, with each value exact. Each hostile file is made
here, small, in ``tmp_path``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import re
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


def test_a_plain_pickle_is_refused_as_no_weights_only_checkpoint(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    # pickle.dump (protocol 4 and later) frames its data: the weights-only unpickler
    # stops at the first opcode, before any object, and says only its number.
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"w": Blocked()}, f, protocol=4)
    error = failed(capsys, tmp_path / "evil.pt", tmp_path / "o.npz")
    assert error.startswith(
        f"interop convert: error: refused to load {str(tmp_path / 'evil.pt')!r}: it is not a "
        "weights-only checkpoint; torch.load with weights_only=True, which runs no code from "
        "the file, rejected it: Unsupported operand 149 (the pickle opcode FRAME). hint: "
    ), error
    assert files(tmp_path) == ["evil.pt"]


def test_a_weights_only_refusal_ends_its_sentence_before_the_hint(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.ones(1), "x": Blocked()}, tmp_path / "evil.pt")
    error = failed(capsys, tmp_path / "evil.pt", tmp_path / "o.npz")
    assert "it is not a weights-only checkpoint" in error
    assert error.count(" hint: ") == 1 and ". hint: " in error, error
    # Reasons without a full stop of their own get one.
    assert readers._refusal(pickle.UnpicklingError("Unsupported operand 149")) == (
        "Unsupported operand 149 (the pickle opcode FRAME)."
    )
    assert readers._refusal(pickle.UnpicklingError("Unsupported operand 7")) == (
        "Unsupported operand 7."  # no pickle opcode: left as it is
    )
    assert readers._refusal(pickle.UnpicklingError("blocked")) == "blocked."


def test_valid_sparse_tensors_load_with_the_invariant_checks_restored(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    dense = torch.tensor([[0.0, 2.5, 0.0], [-1.0, 0.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CSR support is in beta
        csr = dense.to_sparse_csr()
    torch.save({"coo": dense.to_sparse(), "csr": csr}, tmp_path / "s.pt")
    checking = torch.sparse.check_sparse_tensor_invariants.is_enabled()
    back = interop.load(tmp_path / "s.pt")
    assert torch.sparse.check_sparse_tensor_invariants.is_enabled() is checking
    for key in ("coo", "csr"):
        assert back[key].view(np.uint32).tolist() == dense.numpy().view(np.uint32).tolist()


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


# -- the empty key: a key like any other ---------------------------------------------------------


@pytest.mark.parametrize("suffix", OUTPUTS)
def test_an_empty_key_is_kept_not_named_after_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, suffix: str
) -> None:
    torch = pytest.importorskip("torch")
    needs(suffix)
    # The stem of both files is "ckpt", which an empty key used to become.
    tree = {"": torch.tensor([1.5, -2.0]), "ckpt": torch.zeros(1), "k": {"": torch.ones(3)}}
    torch.save(tree, tmp_path / "ckpt.pt")
    status, out, err = convert(capsys, tmp_path / "ckpt.pt", tmp_path / f"ckpt{suffix}")
    assert status == 0, err
    assert "renamed" not in out
    back = interop.load(tmp_path / f"ckpt{suffix}", flat=True)
    assert {k: v.tolist() for k, v in back.items()} == {
        "": [1.5, -2.0],
        "ckpt": [0.0],
        "k.": [1.0, 1.0, 1.0],
    }
    if suffix == ".npz":
        with np.load(tmp_path / "ckpt.npz") as z:
            assert sorted(z.files) == ["", "ckpt", "k."]
    # A lone tensor at the top is still named after the file.
    torch.save(torch.arange(2), tmp_path / "lone.pt")
    status, _, err = convert(capsys, tmp_path / "lone.pt", tmp_path / f"lone{suffix}")
    assert status == 0, err
    assert list(interop.load(tmp_path / f"lone{suffix}", flat=True)) == ["lone"]


def test_flattening_tells_an_empty_key_from_the_top_level() -> None:
    tree = {"": np.zeros(1), "a": {"": np.ones(1), "b": np.ones(2)}, ".": {"": np.ones(3)}}
    leaves = flatten.flatten(tree, "root", limits.Limits(1 << 30), lambda v: False, "t").leaves
    assert list(leaves) == ["", "a.", "a.b", ".."]
    top = flatten.flatten(np.zeros(1), "root", limits.Limits(1 << 30), lambda v: False, "t")
    assert list(top.leaves) == ["root"]
    skipped = flatten.flatten({"": "text"}, "root", limits.Limits(1 << 30), lambda v: False, "t")
    assert skipped.skipped == [" (str)"]


# -- refused dtypes: refused before writing, with a hint that works ------------------------------


def _exact_sources(directory: Path) -> dict[str, Path]:
    """Files of one array each, of dtypes some outputs refuse, each in a format that keeps it."""
    import ml_dtypes

    sources = {}
    numpy_kept = {
        "float128": np.arange(3, dtype=np.longdouble) / 3,
        "complex256": np.arange(3, dtype=np.clongdouble) * (1 + 1j) / 3,
        "structured": np.array([(1.5, 2), (-0.0, 3)], dtype="f4,i4"),
        "datetime": np.array(["2020-01-01", "NaT"], dtype="M8[D]"),
        "strings": np.array(["ab", "c"]),
        "big-endian": np.array([1.5, np.inf], dtype=">f4"),
        "complex128": np.array([1 + 2j, np.nan], dtype=np.complex128),
    }
    for name, array in numpy_kept.items():
        np.savez(directory / f"{name}.npz", x=array)
        sources[name] = directory / f"{name}.npz"
    if importlib.util.find_spec("pyarrow") is not None:
        for name in ("bfloat16", "int4", "float8_e3m4", "complex32", "uint2"):
            array = np.arange(3).astype(getattr(ml_dtypes, name))
            interop.save({"x": array}, directory / f"{name}.arrow")
            sources[name] = directory / f"{name}.arrow"
    return sources


def _same_bits(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> bool:
    """The same dtype, shape and bits, in whichever byte order each is stored."""
    a, b = (x.astype(x.dtype.newbyteorder("=")) for x in (a, b))
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_every_refusal_is_made_before_writing_and_its_hint_works(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    sources = _exact_sources(tmp_path)
    outputs = [s for s in OUTPUTS if s == ".npz" or s == ".safetensors" or arrow_installed()]
    refused = 0
    for name, src in sources.items():
        original = interop.load(src)["x"]
        for suffix in outputs:
            dst = tmp_path / f"{name}-out{suffix}"
            before = files(tmp_path)
            status, _, err = convert(capsys, src, dst)
            if status == 0:
                assert _same_bits(interop.load(dst)["x"], original), (name, suffix)
                continue
            refused += 1
            # Refused up front, by dtype, before a temporary file was made.
            assert err.startswith("interop convert: error: expected dtypes that "), err
            assert err.count("\n") == 1 and files(tmp_path) == before, err
            hint = err.split(". hint: ")[1]
            named = re.findall(r"\.npz|\.safetensors|\.parquet|\.arrow", hint.split(";")[0])
            for other in named:  # each format the hint names keeps it exactly
                kept = tmp_path / f"{name}-hint-{suffix[1:]}{other}"
                status, _, err = convert(capsys, src, kept)
                assert status == 0, (name, suffix, other, err)
                assert _same_bits(interop.load(kept)["x"], original), (name, other)
            for option in ("--upcast", "--dtype"):
                if option in hint:
                    extra = ("--upcast",) if option == "--upcast" else ("--dtype", "float64")
                    status, _, err = convert(capsys, src, tmp_path / f"opt{suffix}", *extra)
                    assert status == 0, (name, suffix, option, err)
                    (tmp_path / f"opt{suffix}").unlink()
            assert named or "--upcast" in hint or "--dtype" in hint, hint
    assert refused >= 20


def arrow_installed() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


def test_the_arrow_outputs_refuse_up_front_what_the_arrow_writer_refuses(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    # float128 and records passed the check and failed halfway through the write.
    for dtype in ("f16", "c32", "f4,i4", "M8[s]", "U2", "V4"):
        array = np.zeros(2, dtype=np.dtype(dtype))
        assert not writers.OUTPUTS[".arrow"].stores(array.dtype), dtype
        with pytest.raises(ConvertError, match=r"expected dtypes that \.arrow files store"):
            interop.save({"x": array}, tmp_path / "x.arrow")
    assert files(tmp_path) == []


def test_records_of_numpy_dtypes_are_kept_in_npz_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # np.save keeps a record's type; it was refused as if it kept only raw bytes.
    import ml_dtypes

    record = np.array(
        [(1.5, [1, 2], (3,)), (np.nan, [4, 5], (6,))],
        dtype=[("f", "<f4"), ("v", "<i2", (2,)), ("n", [("z", ">u8")])],
    )
    np.savez(tmp_path / "in.npz", x=record)
    status, _, err = convert(capsys, tmp_path / "in.npz", tmp_path / "out.npz")
    assert status == 0, err
    with np.load(tmp_path / "out.npz") as z:
        assert _same_bits(z["x"], record)
    # A record of an ml_dtypes field would lose the field's type: refused.
    bf16 = np.zeros(2, dtype=[("w", ml_dtypes.bfloat16)])
    assert not writers.OUTPUTS[".npz"].stores(bf16.dtype)
    error = failed(capsys, tmp_path / "in.npz", tmp_path / "o.safetensors")
    assert error.endswith(". hint: .npz files keep it exactly\n"), error


@pytest.mark.parametrize("suffix", [".parquet", ".arrow"])
def test_an_input_column_with_nulls_is_one_line_with_a_hint(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, suffix: str
) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    table = pa.table({"a": pa.array([1.0, None, 3.0]), "b": pa.array([1, 2, 3])})
    src = tmp_path / f"in{suffix}"
    if suffix == ".parquet":
        pq.write_table(table, src)
    else:
        feather.write_feather(table, src)
    error = failed(capsys, src, tmp_path / "out.npz")
    assert error == (
        "interop convert: error: cannot convert 'a': tree['a']: expected an Arrow array "
        "without nulls, got `pyarrow.lib.ChunkedArray` of double with 1 null in 3 values: "
        "NumPy has no null, and a number in its place would be a value that was never "
        "there. hint: the command line takes no dtype= for nulls: fill them first "
        "(pyarrow.compute.fill_null) and write the file again, or convert the column in "
        "Python with interop.to_numpy(column, dtype=np.float64) for NaN in their place\n"
    )
    assert files(tmp_path) == [src.name]
    # What the hint says works.
    filled = table.set_column(0, "a", pa.compute.fill_null(table.column("a"), 0.0))
    pq.write_table(filled, tmp_path / "filled.parquet")
    status, _, err = convert(capsys, tmp_path / "filled.parquet", tmp_path / "out.npz")
    assert status == 0, err
    with np.load(tmp_path / "out.npz") as z:
        assert z["a"].tolist() == [1.0, 0.0, 3.0] and z["b"].tolist() == [1, 2, 3]
