"""Failures of the file API (``interop.save``, ``interop.load``) found by probing it, kept as tests.

Each test says what went wrong before the fix. Every file is made here, small, in
``tmp_path``; a hostile one is a few kilobytes that would expand to megabytes.
"""

from __future__ import annotations

import array
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import interop
from interop.cli.errors import ConvertError
from interop.cli.files import convert

SAVE_SUFFIXES = [".safetensors", ".npz", ".parquet", ".arrow"]


def _needs(suffix: str) -> None:
    if suffix in (".parquet", ".arrow"):
        pytest.importorskip("pyarrow")


@pytest.mark.parametrize("suffix", SAVE_SUFFIXES)
def test_save_writes_an_array_under_each_key_it_appears_at(suffix: str, tmp_path: Path) -> None:
    # A tied weight (one array under two keys) was written under its first key
    # only, and the second was neither returned as left out nor warned of.
    _needs(suffix)
    w = np.arange(6.0).reshape(2, 3)
    block = {"w": np.ones(2), "b": np.zeros(1)}
    tree = {"embed": {"weight": w}, "lm_head": {"weight": w}, "enc": block, "dec": block}
    path = tmp_path / f"tied{suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert interop.save({**tree, "name": "tied"}, path) == ["name (str)"]
    back = interop.load(path, flat=True)
    assert sorted(back) == ["dec.b", "dec.w", "embed.weight", "enc.b", "enc.w", "lm_head.weight"]
    np.testing.assert_array_equal(back["lm_head.weight"], w)
    np.testing.assert_array_equal(back["dec.w"], block["w"])
    listed = tmp_path / f"list{suffix}"
    a = np.arange(3, dtype=np.int32)
    assert interop.save([a, a, a], listed) == []
    assert sorted(interop.load(listed, flat=True)) == ["0", "1", "2"]


def test_save_bounds_the_paths_through_shared_containers(tmp_path: Path) -> None:
    # Following every path to a shared object must not follow 2**40 of them.
    tree: Any = {"x": np.zeros(1), "note": "text"}
    for _ in range(40):
        tree = {"a": tree, "b": tree}
    with pytest.raises(ConvertError, match="at most 100000"):
        interop.save(tree, tmp_path / "dag.npz")
    assert list(tmp_path.iterdir()) == []


def test_load_gives_a_tensor_of_a_pytorch_file_under_each_key(tmp_path: Path) -> None:
    # load dropped every key of a .pt file that referred to a tensor already
    # loaded (decoder.embed below), with no warning: torch.load gives all three.
    torch = pytest.importorskip("torch")
    w = torch.arange(4.0)
    layer = {"w": torch.ones(2)}
    torch.save(
        {"encoder": {"embed": w}, "decoder": {"embed": w}, "a": layer, "b": layer},
        tmp_path / "m.pt",
    )
    out = interop.load(tmp_path / "m.pt")
    assert sorted(out) == ["a", "b", "decoder", "encoder"]
    assert out["decoder"]["embed"] is out["encoder"]["embed"]  # one tensor, one array
    np.testing.assert_array_equal(out["decoder"]["embed"], np.arange(4.0))
    assert out["b"]["w"] is out["a"]["w"]
    # A later key alone is loaded too, and into any framework.
    alone = interop.load(tmp_path / "m.pt", keys=["decoder.*"], flat=True)
    assert list(alone) == ["decoder.embed"]
    tensors = interop.load(tmp_path / "m.pt", to="torch", flat=True)
    assert tensors["decoder.embed"] is tensors["encoder.embed"]
    # The bytes of a shared tensor count once against max_bytes.
    assert len(interop.load(tmp_path / "m.pt", keys=["*embed"], max_bytes=32, flat=True)) == 2


def test_load_bounds_the_paths_through_shared_containers_of_a_pytorch_file(
    tmp_path: Path,
) -> None:
    torch = pytest.importorskip("torch")
    tree: Any = {"x": torch.zeros(1)}
    for _ in range(40):
        tree = {"a": tree, "b": tree}  # 2**40 paths, in a file of a few KB
    torch.save(tree, tmp_path / "dag.pt")
    with pytest.raises(ConvertError, match="at most 1000 repeated references"):
        interop.load(tmp_path / "dag.pt", max_arrays=1000)


def test_keys_given_as_a_str_are_one_pattern(tmp_path: Path) -> None:
    # A str was a sequence of one-character globs: "encoder.*" held "*", which
    # matched every key, and "encoder.w" matched none.
    path = tmp_path / "m.safetensors"
    interop.save({"encoder": {"w": np.ones(2)}, "decoder": {"w": np.zeros(2)}}, path)
    assert list(interop.load(path, keys="encoder.*", flat=True)) == ["encoder.w"]
    assert list(interop.load(path, keys="encoder.w", flat=True)) == ["encoder.w"]
    # The same in the converter behind `interop convert --keys`.
    assert convert(path, tmp_path / "a.npz", keys="encoder.*").arrays == 1
    assert convert(path, tmp_path / "b.npz", keys="encoder.w").arrays == 1
    assert convert(path, tmp_path / "c.npz", keys_regex="^dec").arrays == 1
    with np.load(tmp_path / "a.npz") as z:
        assert z.files == ["encoder.w"]


_ROWS = 300_000


def _compressed_zeros(path: Path, *, per_column: bool) -> None:
    """A file of one int64 column of many zero rows, compressed to a few KB, its data damaged.

    Every zstd frame of the data loses its magic number: whoever decompresses
    the column fails, so a clean refusal shows that it was never read.
    """
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"w": np.zeros(_ROWS, np.int64)})
    if per_column:
        table = table.replace_schema_metadata({b"interop.layout": b"one tensor per column"})
    if path.suffix == ".parquet":
        pq.write_table(table, path, compression="zstd")
    else:
        options = pa.ipc.IpcWriteOptions(compression="zstd")
        with pa.ipc.new_file(path, table.schema, options=options) as writer:
            writer.write_table(table)
    data = path.read_bytes()
    magic = b"\x28\xb5\x2f\xfd"
    assert magic in data and path.stat().st_size < 64 << 10
    path.write_bytes(data.replace(magic, b"\0\0\0\0"))


@pytest.mark.parametrize("suffix", [".parquet", ".arrow"])
def test_a_file_of_one_tensor_per_column_with_many_rows_is_refused_unread(
    suffix: str, tmp_path: Path
) -> None:
    # Its limits were checked for one row, then every row was decompressed
    # (50M rows: +576 MiB from a file of 228 KB) before the row count was refused.
    path = tmp_path / f"bomb{suffix}"
    _compressed_zeros(path, per_column=True)
    with pytest.raises(ConvertError, match=rf"one tensor per column, got {_ROWS}\."):
        interop.load(path, max_bytes=1000)


def test_the_rows_of_an_arrow_file_are_counted_unread(tmp_path: Path) -> None:
    # The rows of an Arrow IPC file were counted by reading, and decompressing,
    # each record batch before the byte limit was checked.
    path = tmp_path / "rows.arrow"
    _compressed_zeros(path, per_column=False)
    with pytest.raises(ConvertError, match="at most 1000 bytes"):
        interop.load(path, max_bytes=1000)


class _Frame:
    """An object with ``__array__`` only, as a data frame of a small library is."""

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray[Any, Any]:
        return np.arange(3.0)


def _chunked() -> Any:
    pa = pytest.importorskip("pyarrow")
    return pa.chunked_array([[1, 2], [3]])


@pytest.mark.parametrize(
    ("make", "want"),
    [
        (lambda: bytearray(b"abc"), np.array([97, 98, 99], np.uint8)),
        (lambda: array.array("f", [1, 2]), np.array([1, 2], np.float32)),
        (_Frame, np.arange(3.0)),
        (_chunked, np.array([1, 2, 3], np.int64)),
    ],
    ids=["bytearray", "array.array", "__array__", "ChunkedArray"],
)
@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_save_converts_array_leaves_that_have_no_shape(
    make: Any, want: np.ndarray[Any, Any], suffix: str, tmp_path: Path
) -> None:
    # Leaves that to_numpy accepts but that have no .shape raised a raw AttributeError.
    leaf = make()
    path = tmp_path / f"o{suffix}"
    assert interop.save({"x": leaf, "y": leaf}, path) == []
    back = interop.load(path)
    for key in ("x", "y"):
        assert back[key].dtype == want.dtype
        np.testing.assert_array_equal(back[key], want)


@pytest.mark.parametrize("to", ["tf", "no-such-framework", 3])
def test_load_refuses_an_unknown_target_before_reading_the_file(to: Any, tmp_path: Path) -> None:
    # The target was checked only once the first array was read, with a raw
    # ValueError; a file without arrays gave {} for any target.
    full = tmp_path / "a.npz"
    interop.save({"w": np.ones(3)}, full)
    empty = tmp_path / "e.safetensors"
    empty.write_bytes((2).to_bytes(8, "little") + b"{}")
    for path in (full, empty, tmp_path / "missing.npz"):
        with pytest.raises(ConvertError, match="expected to= to name an installed framework"):
            interop.load(path, to=to)
    assert interop.load(empty, to="numpy") == {}
