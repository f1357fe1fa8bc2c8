"""Readers of tensor files: each returns the file's arrays as lazily loaded entries.

PyTorch files written by ``torch.save`` (``.pt``, ``.pth``, ``.bin``) are loaded
with ``weights_only=True`` so that no arbitrary object is ever unpickled;
``.safetensors`` files are read directly from their documented layout (a JSON
header and raw little-endian bytes) so that every dtype, bfloat16 and float8
included, comes back exactly; NumPy ``.npy``/``.npz`` files are loaded with
``allow_pickle=False``. Nested containers (state dicts, optimizer states) are
flattened to dotted keys.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import mmap
import pickle
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interop import _dtypes
from interop.cli.errors import ConvertError, first_line

__all__ = ["INPUTS", "Entry", "read"]

INPUTS = {
    ".pt": "pytorch",
    ".pth": "pytorch",
    ".bin": "pytorch",
    ".safetensors": "safetensors",
    ".npy": "npy",
    ".npz": "npz",
}
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


@dataclasses.dataclass
class Entry:
    """One array of a file: its key, its size, and how to load it."""

    key: str
    nbytes: int
    load: Callable[[], Any]


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


def _read_pytorch(path: Path, skipped: list[str]) -> list[Entry]:
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
            f"(torch.load with weights_only=True: {first_line(exc)}). "
            "hint: if you trust the file, load it in Python and save its tensors with "
            "torch.save(state_dict) or safetensors"
        ) from exc
    except Exception as exc:
        raise ConvertError(
            f"expected a PyTorch file written by torch.save, got {path} that cannot be "
            f"read ({type(exc).__name__}: {first_line(exc)}); it may be truncated"
        ) from exc
    flat: dict[str, Any] = {}
    _flatten(obj, "", flat, skipped, lambda v: isinstance(v, torch.Tensor))
    entries = []
    for key, value in flat.items():
        nbytes = value.nbytes if hasattr(value, "nbytes") else 0
        entries.append(Entry(key or path.stem, nbytes, functools.partial(_identity, value)))
    return entries


def _read_safetensors(path: Path, closers: list[Callable[[], None]]) -> list[Entry]:
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
                f"bytes ({first_line(exc)})"
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

        entries.append(Entry(key, end - begin, load))
    return entries


def _read_numpy(path: Path, fmt: str, closers: list[Callable[[], None]]) -> list[Entry]:
    try:
        if fmt == "npy":
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            return [Entry(path.stem, array.nbytes, lambda: array)]
        npz = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Python objects" in str(exc):
            raise ConvertError(
                f"refused to load {path}: it holds Python objects (an object array), and "
                "unpickling those can run arbitrary code"
            ) from exc
        raise ConvertError(f"cannot read {path} as a NumPy file: {first_line(exc)}") from exc
    except Exception as exc:
        raise ConvertError(
            f"cannot read {path} as a NumPy file ({type(exc).__name__}: {first_line(exc)}); "
            "it may be truncated"
        ) from exc
    closers.append(npz.close)
    sizes = {i.filename.removesuffix(".npy"): i.file_size for i in npz.zip.infolist()}
    return [Entry(k, sizes.get(k, 0), functools.partial(npz.__getitem__, k)) for k in npz.files]


def read(
    path: Path, fmt: str, skipped: list[str], closers: list[Callable[[], None]]
) -> list[Entry]:
    if fmt == "pytorch":
        return _read_pytorch(path, skipped)
    if fmt == "safetensors":
        return _read_safetensors(path, closers)
    return _read_numpy(path, fmt, closers)
