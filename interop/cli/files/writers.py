"""Writers of NumPy files, with a progress bar, and the conversion of each array on the way."""

from __future__ import annotations

import sys
import time
import zipfile
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from interop import _dtypes, to_numpy
from interop.cli.errors import ConvertError, first_line
from interop.cli.files.readers import Entry

__all__ = ["Bar", "convert_array", "write_npz"]

# -- converting ----------------------------------------------------------------------------------


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


def convert_array(entry: Entry, upcast: bool, dtype: np.dtype[Any] | None) -> np.ndarray[Any, Any]:
    try:
        value = entry.load()
        array = to_numpy(value, upcast=upcast)
        if dtype is not None and _is_float(array.dtype) and array.dtype != dtype:
            array = to_numpy(array, dtype=dtype)
    except ConvertError:
        raise
    except Exception as exc:
        raise ConvertError(
            f"cannot convert {entry.key!r}: {type(exc).__name__}: {first_line(exc)}"
        ) from exc
    if array.dtype.kind == "O" or not _dtypes.is_standard(array.dtype):
        raise ConvertError(
            f"expected dtypes that .npy files store, got {array.dtype} in {entry.key!r}: "
            "a .npy file would keep only its raw bytes, not its type. hint: --upcast "
            "writes bfloat16 and float8 as float32 (exactly), or choose one with --dtype"
        )
    return array


# -- writing -------------------------------------------------------------------------------------


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
    # What np.savez does, one array at a time, so that arrays are converted as they
    # are written instead of all being held at once.
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, array in arrays:
            with zf.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
