"""Tensor files for ``interop convert``: safe reading, and writing that never leaves half a file.

Inputs: PyTorch files written by ``torch.save`` (``.pt``, ``.pth``, ``.bin``),
loaded with ``weights_only=True`` so that no arbitrary object is ever unpickled;
``.safetensors`` files, read directly from their documented layout (a JSON header
and raw little-endian bytes) so that every dtype, bfloat16 and float8 included,
comes back exactly; and NumPy ``.npy``/``.npz`` files, loaded with
``allow_pickle=False``. Nested containers (state dicts, optimizer states) are
flattened to dotted keys.

Output: ``.npz`` (or ``.npy`` for a single array), written to a temporary file in
the destination's directory and renamed into place only once complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import functools
import json
import mmap
import os
import pickle
import re
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from interop import _dtypes
from interop._api import to_numpy

__all__ = ["ConvertError", "Summary", "convert"]

INPUTS = {
    ".pt": "pytorch",
    ".pth": "pytorch",
    ".bin": "pytorch",
    ".safetensors": "safetensors",
    ".npy": "npy",
    ".npz": "npz",
}
OUTPUTS = (".npz", ".npy")
#: Inputs at least this large get a progress bar when stderr is a terminal.
PROGRESS_BYTES = 64 << 20

# safetensors dtype codes -> NumPy dtype names (ml_dtypes names where NumPy has none).
_SAFETENSORS_DTYPES = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "U16": "uint16",
    "I16": "int16",
    "U32": "uint32",
    "I32": "int32",
    "U64": "uint64",
    "I64": "int64",
    "F16": "float16",
    "F32": "float32",
    "F64": "float64",
    "C64": "complex64",
    "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "F8_E8M0": "float8_e8m0fnu",
}


class ConvertError(Exception):
    """A conversion that cannot go ahead; nothing has been written.

    Attributes:
        code: The exit status: 1 for an input that cannot be read or converted,
            2 for a usage error (unknown format, existing output, bad option).
    """

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclasses.dataclass
class _Entry:
    key: str
    nbytes: int
    load: Callable[[], Any]


@dataclasses.dataclass
class Summary:
    """What :func:`convert` wrote."""

    arrays: int
    nbytes: int
    skipped: list[str]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# -- reading -------------------------------------------------------------------------------------


def _identity(value: Any) -> Any:
    return value


def _join(prefix: str, key: object) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _flatten(
    obj: Any, prefix: str, out: dict[str, Any], skipped: list[str], is_tensor: Callable[[Any], bool]
) -> None:
    """Flatten nested containers to dotted keys; Python numbers become arrays."""
    if is_tensor(obj) or isinstance(obj, np.ndarray):
        leaf: Any = obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            _flatten(v, _join(prefix, k), out, skipped, is_tensor)
        return
    elif isinstance(obj, (list, tuple)):
        if obj and all(isinstance(v, (bool, int, float, complex)) for v in obj):
            leaf = np.asarray(obj)  # a list of numbers (betas, param ids) is one array
        else:
            for i, v in enumerate(obj):
                _flatten(v, _join(prefix, i), out, skipped, is_tensor)
            return
    elif isinstance(obj, (bool, int, float, complex)):
        leaf = np.asarray(obj)
    else:
        skipped.append(f"{prefix or '(top level)'} ({type(obj).__name__})")
        return
    if prefix in out:
        raise ConvertError(f"expected unique keys, got {prefix!r} twice after flattening")
    out[prefix] = leaf


def _read_pytorch(path: Path, skipped: list[str]) -> list[_Entry]:
    try:
        import torch
    except ImportError as exc:
        raise ConvertError(
            f"expected PyTorch to read {path.name}, got no torch module. hint: pip install torch"
        ) from exc
    try:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            # Files in the legacy (pre-zip) format cannot be memory-mapped.
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ConvertError(
            f"refused to load {path}: it holds Python objects other than tensors, "
            "containers and numbers, and unpickling those can run arbitrary code "
            f"(torch.load with weights_only=True: {_first_line(exc)}). "
            "hint: if you trust the file, load it in Python and save its tensors with "
            "torch.save(state_dict) or safetensors"
        ) from exc
    except Exception as exc:
        raise ConvertError(
            f"expected a PyTorch file written by torch.save, got {path} that cannot be "
            f"read ({type(exc).__name__}: {_first_line(exc)}); it may be truncated"
        ) from exc
    flat: dict[str, Any] = {}
    _flatten(obj, "", flat, skipped, lambda v: isinstance(v, torch.Tensor))
    entries = []
    for key, value in flat.items():
        nbytes = value.nbytes if hasattr(value, "nbytes") else 0
        entries.append(_Entry(key or path.stem, nbytes, functools.partial(_identity, value)))
    return entries


def _read_safetensors(path: Path, closers: list[Callable[[], None]]) -> list[_Entry]:
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ConvertError(f"expected a safetensors file, got {path} of {size} bytes")
        header_len = int.from_bytes(head, "little")
        if header_len > size - 8 or header_len > 100 << 20:
            raise ConvertError(
                f"expected a safetensors header of at most {size - 8} bytes, got a length "
                f"of {header_len} in {path}: the file is truncated or not safetensors"
            )
        try:
            header = json.loads(f.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConvertError(
                f"expected a JSON header in the safetensors file {path}, got unreadable "
                f"bytes ({_first_line(exc)})"
            ) from exc
    if not isinstance(header, dict):
        raise ConvertError(f"expected a JSON object as the header of {path}")
    start = 8 + header_len
    data_len = size - start
    with open(path, "rb") as f:
        buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    if buffer is not None:
        closers.append(buffer.close)
    entries = []
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            code, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ConvertError(
                f"expected dtype, shape and data_offsets for {key!r} in {path}"
            ) from exc
        name = _SAFETENSORS_DTYPES.get(code)
        dtype = _dtypes.ml_dtype(name) if name and not hasattr(np, name) else name
        if dtype is None:
            raise ConvertError(
                f"expected a safetensors dtype this version understands, got {code} for {key!r}"
            )
        dt = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        if end > data_len or end - begin != count * dt.itemsize or begin < 0:
            raise ConvertError(
                f"expected {key!r} within the {data_len} data bytes of {path}, got bytes "
                f"{begin}..{end}: the file is truncated or damaged"
            )

        def load(dt: np.dtype[Any] = dt, offset: int = start + begin, count: int = count,
                 shape: Sequence[int] = tuple(shape)) -> np.ndarray[Any, Any]:  # fmt: skip
            if count == 0:
                return np.empty(shape, dtype=dt)
            raw = np.frombuffer(buffer, dtype=np.uint8, count=count * dt.itemsize, offset=offset)  # type: ignore[arg-type]
            return raw.view(dt.newbyteorder("<") if dt.byteorder == "=" else dt).reshape(shape)

        entries.append(_Entry(key, end - begin, load))
    return entries


def _read_numpy(path: Path, fmt: str, closers: list[Callable[[], None]]) -> list[_Entry]:
    try:
        if fmt == "npy":
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            return [_Entry(path.stem, array.nbytes, lambda: array)]
        npz = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Python objects" in str(exc):
            raise ConvertError(
                f"refused to load {path}: it holds Python objects (an object array), and "
                "unpickling those can run arbitrary code"
            ) from exc
        raise ConvertError(f"cannot read {path} as a NumPy file: {_first_line(exc)}") from exc
    except Exception as exc:
        raise ConvertError(
            f"cannot read {path} as a NumPy file ({type(exc).__name__}: {_first_line(exc)}); "
            "it may be truncated"
        ) from exc
    closers.append(npz.close)
    sizes = {i.filename.removesuffix(".npy"): i.file_size for i in npz.zip.infolist()}
    return [_Entry(k, sizes.get(k, 0), functools.partial(npz.__getitem__, k)) for k in npz.files]


def _read(
    path: Path, fmt: str, skipped: list[str], closers: list[Callable[[], None]]
) -> list[_Entry]:
    if fmt == "pytorch":
        return _read_pytorch(path, skipped)
    if fmt == "safetensors":
        return _read_safetensors(path, closers)
    return _read_numpy(path, fmt, closers)


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


def _array(entry: _Entry, upcast: bool, dtype: np.dtype[Any] | None) -> np.ndarray[Any, Any]:
    try:
        value = entry.load()
        array = to_numpy(value, upcast=upcast)
        if dtype is not None and _is_float(array.dtype) and array.dtype != dtype:
            array = to_numpy(array, dtype=dtype)
    except ConvertError:
        raise
    except Exception as exc:
        raise ConvertError(
            f"cannot convert {entry.key!r}: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc
    if array.dtype.kind == "O" or not _dtypes.is_standard(array.dtype):
        raise ConvertError(
            f"expected dtypes that .npy files store, got {array.dtype} in {entry.key!r}: "
            "a .npy file would keep only its raw bytes, not its type. hint: --upcast "
            "writes bfloat16 and float8 as float32 (exactly), or choose one with --dtype"
        )
    return array


# -- writing -------------------------------------------------------------------------------------


class _Bar:
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


def _write_npz(f: IO[bytes], arrays: Iterator[tuple[str, np.ndarray[Any, Any]]]) -> None:
    # What np.savez does, one array at a time, so that arrays are converted as they
    # are written instead of all being held at once.
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, array in arrays:
            with zf.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    upcast: bool = False,
    keys: Sequence[str] = (),
    keys_regex: Sequence[str] = (),
    dtype: str | None = None,
    force: bool = False,
    progress: bool | None = None,
) -> Summary:
    """Convert the tensor file ``src`` to the NumPy file ``dst``.

    Args:
        src: A ``.pt``/``.pth``/``.bin`` (``torch.save``), ``.safetensors``, ``.npy``
            or ``.npz`` file.
        dst: A ``.npz`` file, or ``.npy`` when exactly one array is selected.
        upcast: Write bfloat16, float8 and other nonstandard dtypes as the nearest
            standard dtype holding every value (float32, ...).
        keys: Glob patterns (``fnmatch``) on the flattened, dotted keys; an array is
            kept if any pattern or regex matches (all are kept when none is given).
        keys_regex: Regular expressions searched in the keys.
        dtype: Cast every floating-point array to this NumPy dtype (integer, bool
            and complex arrays are kept as they are).
        force: Overwrite ``dst`` if it exists.
        progress: Show a progress bar on stderr; ``None``: on a terminal, for inputs
            of at least 64 MB.

    Returns:
        How many arrays and bytes were written, and the entries skipped (objects
        that are not arrays or numbers, such as strings or ``None``).

    Raises:
        ConvertError: Nothing was written; ``code`` is the exit status.

    Example:
        >>> import numpy as np, tempfile, pathlib
        >>> from interop._files import convert
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> np.savez(d / "in.npz", a=np.arange(3.0), b=np.ones(2))
        >>> convert(d / "in.npz", d / "a.npy", keys=["a"]).arrays
        1
        >>> np.load(d / "a.npy")
        array([0., 1., 2.])
    """
    src, dst = Path(src), Path(dst)
    fmt = INPUTS.get(src.suffix.lower())
    if fmt is None:
        known = ", ".join(INPUTS)
        raise ConvertError(
            f"expected an input file ending in one of {known}, got {src.name!r}", code=2
        )
    if dst.suffix.lower() not in OUTPUTS:
        raise ConvertError(f"expected an output file ending in .npz or .npy, got {dst.name!r}", 2)
    target = None
    if dtype is not None:
        try:
            target = np.dtype(dtype)
        except TypeError as exc:
            raise ConvertError(
                f"expected a NumPy dtype name for --dtype, got {dtype!r}", 2
            ) from exc
        if not _dtypes.is_standard(target) or target.kind != "f":
            raise ConvertError(
                f"expected a floating-point dtype that .npy files store, got {target}", 2
            )
    patterns = []
    for expr in keys_regex:
        try:
            patterns.append(re.compile(expr))
        except re.error as exc:
            raise ConvertError(f"expected a regular expression, got {expr!r}: {exc}", 2) from exc
    if not src.is_file():
        what = "a directory" if src.is_dir() else "no such file"
        raise ConvertError(f"expected an input file, got {str(src)!r}: {what}")
    if dst.exists() and not force:
        raise ConvertError(
            f"expected a new output file, got {str(dst)!r}, which exists. hint: --force "
            "replaces it",
            2,
        )
    if not dst.parent.is_dir():
        raise ConvertError(f"expected an existing output directory, got {str(dst.parent)!r}", 2)

    skipped: list[str] = []
    closers: list[Callable[[], None]] = []
    try:
        entries = _read(src, fmt, skipped, closers)
        if keys or patterns:
            entries = [
                e
                for e in entries
                if any(fnmatch.fnmatchcase(e.key, k) for k in keys)
                or any(p.search(e.key) for p in patterns)
            ]
            if not entries:
                raise ConvertError(f"expected --keys to select arrays, got none from {src}")
        if not entries:
            raise ConvertError(f"expected arrays in {src}, got none")
        if dst.suffix.lower() == ".npy" and len(entries) != 1:
            raise ConvertError(
                f"expected one array for a .npy output, got {len(entries)}. hint: write "
                ".npz, or select one array with --keys",
                2,
            )
        total = sum(e.nbytes for e in entries)
        if progress is None:
            progress = sys.stderr.isatty() and src.stat().st_size >= PROGRESS_BYTES
        bar = _Bar(total, f"{src.name} -> {dst.name}") if progress else None
        written = 0

        def arrays() -> Iterator[tuple[str, np.ndarray[Any, Any]]]:
            nonlocal written
            for entry in entries:
                array = _array(entry, upcast, target)
                yield entry.key, array
                written += array.nbytes
                if bar is not None:
                    bar.update(entry.nbytes)

        _write_atomic(dst, arrays)
        if bar is not None:
            bar.close()
    finally:
        for close in closers:
            # An mmap still exported to a live array closes when that array goes.
            with contextlib.suppress(BufferError):
                close()
    return Summary(len(entries), written, skipped)


def _write_atomic(
    dst: Path, arrays: Callable[[], Iterator[tuple[str, np.ndarray[Any, Any]]]]
) -> None:
    """Write to a temporary file beside ``dst`` and rename it into place when complete."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if dst.suffix.lower() == ".npz":
                _write_npz(f, arrays())
            else:
                ((_, array),) = list(arrays())
                np.lib.format.write_array(f, array, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
