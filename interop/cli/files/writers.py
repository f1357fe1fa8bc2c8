"""What each array becomes (decided before writing), its conversion, and the NumPy file writers."""

from __future__ import annotations

import sys
import time
import zipfile
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from interop import InteropError, _dtypes, to_numpy
from interop.cli.errors import ConvertError, quote
from interop.cli.files.entry import Entry

__all__ = ["Bar", "convert_array", "output_dtype", "write_npy", "write_npz"]


def _is_float(dtype: np.dtype[Any]) -> bool:
    if dtype.kind == "f":
        return True
    if dtype.type.__module__ != "ml_dtypes":
        return False
    import ml_dtypes

    try:
        ml_dtypes.finfo(dtype)
    except (ValueError, TypeError):
        return False
    return True


def output_dtype(entry: Entry, upcast: bool, cast: np.dtype[Any] | None) -> np.dtype[Any]:
    """The dtype ``entry`` is written as, refused if a .npy file cannot store it.

    Args:
        entry: The array.
        upcast: Whether nonstandard dtypes become the nearest standard one.
        cast: The dtype floating-point arrays are cast to, if any.

    Raises:
        ConvertError: The result would be an object array, or have a dtype that
            .npy files keep only as raw bytes (bfloat16, float8, ...).
    """
    dtype = entry.dtype
    if upcast:
        dtype = _dtypes.upcast_target(dtype) or dtype
    if cast is not None and _is_float(dtype):
        dtype = cast
    if dtype.hasobject or not _dtypes.is_standard(dtype):
        raise ConvertError(
            f"expected dtypes that .npy files store, got {dtype} in {entry.key!r}: "
            "a .npy file would keep only its raw bytes, not its type. hint: --upcast writes "
            "bfloat16 and float8 as float32 (exactly), or choose one with --dtype"
        )
    return dtype


def convert_array(entry: Entry, dtype: np.dtype[Any], upcast: bool) -> np.ndarray[Any, Any]:
    """Load ``entry`` and convert it to a NumPy array of ``dtype`` and the entry's shape.

    Raises:
        ConvertError: The array cannot be read or converted, or does not come out
            with the shape and dtype its file declared (what --max-bytes was
            checked against).
    """
    value = entry.load()
    try:
        array = to_numpy(value, upcast=upcast, sparse="dense", dtype=dtype)
    except InteropError as exc:
        raise ConvertError(
            f"cannot convert {entry.key!r}: {type(exc).__name__}: {quote(exc)}"
        ) from exc
    if array.dtype != dtype or array.shape != entry.shape:
        raise ConvertError(
            f"expected {entry.key!r} to convert to {dtype} of shape {entry.shape}, "
            f"got {array.dtype} of shape {array.shape}"
        )
    return array


class Bar:
    """A progress bar on stderr: tqdm when installed, otherwise a small one of our own."""

    def __init__(self, total: int, label: str) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.label = label
        self.last = 0.0
        try:
            from tqdm import tqdm  # type: ignore[import-untyped, import-not-found]
        except ImportError:
            self.tqdm = None
        else:
            self.tqdm = tqdm(total=total, unit="B", unit_scale=True, desc=label, file=sys.stderr)

    def update(self, n: int) -> None:
        self.done += n
        if self.tqdm is not None:
            self.tqdm.update(n)
            return
        now = time.monotonic()
        if now - self.last >= 0.1 or self.done >= self.total:
            self.last = now
            width = 30
            filled = int(width * self.done / self.total)
            sys.stderr.write(
                f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                f"{100 * self.done / self.total:5.1f}% of {self.total / 2**20:.1f} MB"
            )
            sys.stderr.flush()

    def close(self) -> None:
        if self.tqdm is not None:
            self.tqdm.close()
        else:
            sys.stderr.write("\n")
            sys.stderr.flush()


def write_npz(f: IO[bytes], arrays: Iterator[tuple[str, np.ndarray[Any, Any]]]) -> None:
    """Write ``(member name, array)`` pairs to ``f`` as a .npz file, one array at a time.

    What ``np.savez`` does, except that arrays are converted as they are written
    instead of all being held at once.
    """
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, array in arrays:
            with zf.open(name, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def write_npy(f: IO[bytes], arrays: Iterator[tuple[str, np.ndarray[Any, Any]]]) -> None:
    """Write the single array of ``arrays`` to ``f`` as a .npy file."""
    for _, array in arrays:
        np.lib.format.write_array(f, array, allow_pickle=False)
