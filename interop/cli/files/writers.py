"""The output formats: what each array becomes (decided before writing), and the writers.

Each format (:data:`OUTPUTS`, by file suffix) says which dtypes it stores, how
large a file of given arrays can get (checked against ``--max-bytes`` before
writing), and writes ``(name, array)`` pairs to an open file, converting one
array at a time where the format allows.

- ``.npz``/``.npy``: NumPy's own dtypes only (and records of them); bfloat16 or
  float8 would be kept as raw bytes without their type, so they are refused
  (``--upcast`` or ``--dtype``).
- ``.safetensors``: its own codes, bfloat16 and five float8 formats included.
- ``.parquet``/``.arrow``/``.feather``: booleans, integers, floating-point and
  complex numbers of up to 64 bits a part and the ``ml_dtypes`` formats, the
  exact ones Arrow lacks as ``interop.dtype`` (see :mod:`interop.cli.files.arrow`).

A refusal's hint names only what takes the refused dtype: the other formats that
store it, and ``--upcast`` or ``--dtype`` where they apply.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from interop import InteropError, _dtypes, to_numpy
from interop.cli.errors import ConvertError, quote
from interop.cli.files import arrow, safetensors
from interop.cli.files.entry import Entry
from interop.cli.files.limits import output_size
from interop.cli.files.names import member_names, text_names

__all__ = [
    "OUTPUTS",
    "Bar",
    "Output",
    "Planned",
    "convert_array",
    "output_dtype",
    "write_npy",
    "write_npz",
]

#: ``(name, shape, dtype)`` of each array a writer is about to write, in order.
Planned = Sequence[tuple[str, Sequence[int], np.dtype[Any]]]
Arrays = Iterator[tuple[str, np.ndarray[Any, Any]]]


def _is_float(dtype: np.dtype[Any]) -> bool:
    """Whether ``dtype`` holds real floating-point numbers (NumPy's or ml_dtypes' own)."""
    if dtype.kind == "f":
        return True
    if dtype.type.__module__ != "ml_dtypes":
        return False
    target = _dtypes.upcast_target(dtype)
    if target is not None and target.kind == "c":  # complex32: finfo describes its parts
        return False
    import ml_dtypes

    try:
        ml_dtypes.finfo(dtype)
    except (ValueError, TypeError):
        return False
    return True


def output_dtype(
    entry: Entry, upcast: bool, cast: np.dtype[Any] | None, output: Output
) -> np.dtype[Any]:
    """The dtype ``entry`` is written as, refused if the ``output`` format cannot store it.

    Args:
        entry: The array.
        upcast: Whether nonstandard dtypes become the nearest standard one.
        cast: The dtype floating-point arrays are cast to, if any.
        output: The output format.

    Raises:
        ConvertError: The entry holds Python objects (numbers that no dtype holds
            exactly), or the result would have a dtype that the format cannot
            store with its type (bfloat16 in a .npy file, ...).
    """
    dtype = entry.dtype
    if dtype.hasobject:
        raise ConvertError(
            f"expected numbers that a dtype holds exactly, got Python objects in "
            f"{entry.key!r}: numbers such as integers beyond 64 bits, or integers that the "
            "floating-point dtype of the numbers beside them would round. hint: leave it out "
            "(--keys or --keys-regex select the other arrays), or store such numbers as strings"
        )
    if upcast:
        dtype = _dtypes.upcast_target(dtype) or dtype
    if cast is not None and _is_float(dtype):
        dtype = cast
    if not output.stores(dtype):
        raise ConvertError(
            f"expected dtypes that {output.name} files store, got {dtype} in {entry.key!r}: "
            f"{output.refusal}. hint: {_instead(dtype, output)}"
        )
    return dtype


def _instead(dtype: np.dtype[Any], output: Output) -> str:
    """What writes ``dtype``, which ``output`` refuses: only what takes it, so the hint works.

    The other formats that store it, ``--upcast`` where its nearest standard
    dtype is one that ``output`` stores, and ``--dtype`` for floating-point data;
    where none does, leaving it out.
    """
    ways = []
    formats = [
        suffix
        for suffix in _HINTED
        if OUTPUTS[suffix].stores is not output.stores and OUTPUTS[suffix].stores(dtype)
    ]
    if formats:
        listed = ", ".join(formats[:-1]) + " and " + formats[-1] if len(formats) > 1 else formats[0]
        ways.append(f"{listed} files keep it exactly")
    target = _dtypes.upcast_target(dtype)
    if target is not None and output.stores(target):
        ways.append(f"--upcast (upcast=True) writes it as {target}, exactly")
    if _is_float(dtype):
        ways.append("--dtype (dtype=) float32 or float64 casts it")
    if not ways:
        ways.append("leave it out (--keys or --keys-regex select the other arrays)")
    return "; ".join(ways)


def _numpy_stores(dtype: np.dtype[Any]) -> bool:
    """Whether a .npy file keeps ``dtype`` as its type: NumPy's own, or records of them."""
    if dtype.subdtype is not None:
        return _numpy_stores(dtype.subdtype[0])
    if dtype.fields is not None:
        return all(_numpy_stores(field[0]) for field in dtype.fields.values())
    return _dtypes.is_standard(dtype)


def _safetensors_stores(dtype: np.dtype[Any]) -> bool:
    return safetensors.safetensors_code(dtype) is not None


def _arrow_stores(dtype: np.dtype[Any]) -> bool:
    """Whether the Arrow writer (:mod:`interop.backends.arrow.writing`) takes ``dtype``.

    Arrow's own numbers and booleans, complex64 and complex128, the
    ``ml_dtypes`` formats it records by name, and complex32 (a record of two
    float16 where ``ml_dtypes`` lacks it); not float128, strings, dates or other
    records.
    """
    if dtype.names is not None:
        return dtype == _dtypes.complex32()
    if dtype.type.__module__ == "ml_dtypes":
        return dtype.name in _dtypes.NONSTANDARD
    return _dtypes.is_standard(dtype) and dtype.name in _dtypes.NUMPY_NAMES


@dataclasses.dataclass(frozen=True)
class Output:
    """An output format.

    Attributes:
        name: How messages name it (``".npz"``).
        stores: Whether it stores arrays of a dtype with their type.
        refusal: Why it refuses the dtypes it does not store (the hint that
            follows names only what stores the refused dtype).
        size: An upper bound on the bytes of a file of the planned arrays.
        write: Writes ``(name, array)`` pairs to an open file (given the path and
            the planned arrays, which the pairs follow in order).
        names: The names the keys are written under, and the keys renamed on the
            way (:mod:`interop.cli.files.names`).
        single: Whether the file holds exactly one array.
        check: Refuses planned arrays the format cannot hold for other reasons
            than their dtype, before anything is written.
        requires: Refuses the output file when a library that writes the format
            is missing, before anything is read or written.
    """

    name: str
    stores: Callable[[np.dtype[Any]], bool]
    refusal: str
    size: Callable[[Planned], int]
    write: Callable[[IO[bytes], Arrays, Path, Planned], None]
    names: Callable[[Sequence[str]], tuple[list[str], list[tuple[str, str]]]] = text_names
    single: bool = False
    check: Callable[[Planned], None] | None = None
    requires: Callable[[Path], None] | None = None


_NUMPY_REFUSAL = "a .npy file would keep only its raw bytes, not its type"
_SAFETENSORS_REFUSAL = "the format has no dtype code for it"
_ARROW_REFUSAL = (
    "they hold booleans, integers, floating-point and complex numbers of up to 64 bits a "
    "part, and the ml_dtypes formats"
)
# The formats a refusal's hint may name, in the order it names them.
_HINTED = (".npz", ".safetensors", ".parquet", ".arrow")


def _npz(f: IO[bytes], arrays: Arrays, path: Path, planned: Planned) -> None:
    write_npz(f, arrays)


def _npy(f: IO[bytes], arrays: Arrays, path: Path, planned: Planned) -> None:
    write_npy(f, arrays)


def _unnamed(keys: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """The keys as they are: a .npy file stores no name."""
    return list(keys), []


def _safetensors(f: IO[bytes], arrays: Arrays, path: Path, planned: Planned) -> None:
    safetensors.write_safetensors(f, arrays, safetensors.safetensors_header(planned), planned)


def _safetensors_size(planned: Planned) -> int:
    data = sum(math.prod(shape) * dtype.itemsize for _, shape, dtype in planned)
    return data + len(safetensors.safetensors_header(planned))


def _safetensors_names(keys: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    return text_names(keys, reserved=(safetensors.METADATA,))


def _parquet(f: IO[bytes], arrays: Arrays, path: Path, planned: Planned) -> None:
    arrow.write_parquet(f, arrays, path)


def _parquet_check(planned: Planned) -> None:
    for name, shape, _ in planned:
        if len(shape) and 0 in shape:
            raise ConvertError(
                f"expected arrays with at least one value for a .parquet file, got {name!r} of "
                f"shape {tuple(shape)}: Parquet readers cannot read back a tensor of no values "
                "(a fixed-size list of size 0). hint: write .arrow or .safetensors"
            )


def _arrow_ipc(f: IO[bytes], arrays: Arrays, path: Path, planned: Planned) -> None:
    arrow.write_arrow(f, arrays, path)


_ARROW = Output(
    ".arrow", _arrow_stores, _ARROW_REFUSAL, arrow.arrow_size, _arrow_ipc, requires=arrow.require
)

#: The output formats, by file suffix.
OUTPUTS: dict[str, Output] = {
    ".npz": Output(
        ".npy",
        _numpy_stores,
        _NUMPY_REFUSAL,
        lambda planned: output_size(planned, True),
        _npz,
        names=member_names,
    ),
    ".npy": Output(
        ".npy",
        _numpy_stores,
        _NUMPY_REFUSAL,
        lambda planned: output_size(planned, False),
        _npy,
        names=_unnamed,
        single=True,
    ),
    ".safetensors": Output(
        ".safetensors",
        _safetensors_stores,
        _SAFETENSORS_REFUSAL,
        _safetensors_size,
        _safetensors,
        names=_safetensors_names,
    ),
    ".parquet": Output(
        ".parquet",
        _arrow_stores,
        _ARROW_REFUSAL,
        arrow.arrow_size,
        _parquet,
        check=_parquet_check,
        requires=arrow.require,
    ),
    ".arrow": _ARROW,
    ".feather": dataclasses.replace(_ARROW, name=".feather"),
}


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
