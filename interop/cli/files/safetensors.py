"""``.safetensors`` files, read from the format itself and validated before any data is read.

The format: 8 bytes (a little-endian length ``N``), ``N`` bytes of a JSON object
mapping each tensor's name to ``{"dtype", "shape", "data_offsets": [begin, end]}``
(plus an optional ``"__metadata__"`` object of strings), then the data, where each
tensor's bytes lie at ``begin:end``. As the format requires (and as the
``safetensors`` library checks), the tensors tile the data exactly: sorted by
offset, each starts where the one before ends, the last ends at the end of the
file, and each spans ``prod(shape) * itemsize`` bytes. Reading the data directly
brings every dtype back exactly, bfloat16 and float8 included.
"""

from __future__ import annotations

import functools
import json
import math
import mmap
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from interop import _dtypes
from interop.cli.errors import ConvertError, shown, untrusted
from interop.cli.files.entry import Entry
from interop.cli.files.limits import MAX_DEPTH, Limits, check_key, check_shape

__all__ = [
    "METADATA",
    "read_safetensors",
    "safetensors_code",
    "safetensors_header",
    "write_safetensors",
]

# safetensors dtype codes -> NumPy dtype names (ml_dtypes names where NumPy has none).
_DTYPES = {
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
    "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E5M2FNUZ": "float8_e5m2fnuz",
}
# NumPy dtype name -> safetensors dtype code, for writing. (The format's F4 and F6
# codes pack values below a byte; ml_dtypes keeps one per byte, so those are not
# written.)
_CODES = {name: code for code, name in _DTYPES.items()}
#: The header's one name that is not a tensor: its optional object of strings.
METADATA = "__metadata__"
#: The largest header accepted, as in the ``safetensors`` library.
MAX_HEADER_BYTES = 100_000_000
# The brackets of a header, scanned in chunks of this many, to find its depth.
_SCAN_CHUNK = 1 << 20
_OPENING = frozenset(b"[{")
_BRACKETS = bytes(sorted(b"[]{}"))
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)


def _depth(header: bytes) -> int:
    """How deeply the JSON text ``header`` nests, without parsing it."""
    # Strings may hold brackets: blank them out first (a JSON string cannot hold a
    # raw quote; an escaped one is a backslash pair).
    text = header.replace(b"\\\\", b"").replace(b'\\"', b"")
    parts = text.split(b'"')
    brackets = b"".join(parts[::2]).translate(None, _NOT_BRACKETS)
    deepest = level = 0
    for start in range(0, len(brackets), _SCAN_CHUNK):
        chunk = np.frombuffer(brackets, np.uint8, min(_SCAN_CHUNK, len(brackets) - start), start)
        steps = np.where((chunk == ord("[")) | (chunk == ord("{")), 1, -1).astype(np.int64)
        levels = np.cumsum(steps) + level
        deepest, level = max(deepest, int(levels.max())), int(levels[-1])
    return deepest


def _unique(where: str) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """An ``object_pairs_hook`` that refuses a name given twice in one JSON object."""

    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ConvertError(
                    f"expected unique names in the header of {where}, got {key!r} "
                    "twice: which one holds the data is ambiguous"
                )
            seen.add(key)
        return dict(pairs)

    return build


def _header(path: Path, size: int) -> tuple[dict[str, Any], int]:
    """The parsed header of ``path`` and the offset where its data starts."""
    where = shown(path)
    with untrusted(f"cannot read {where}"), open(path, "rb") as f:
        head = f.read(8)
        length = int.from_bytes(head, "little")
        if len(head) < 8 or length > min(size - 8, MAX_HEADER_BYTES):
            raise ConvertError(
                f"expected a safetensors file, got {where} of {size} bytes with a header "
                f"length of {length}: the file is truncated or not safetensors"
            )
        raw = f.read(length)
    if _depth(raw) > MAX_DEPTH:
        raise ConvertError(
            f"expected a safetensors header nested at most {MAX_DEPTH} deep, got deeper "
            f"nesting in {where}"
        )
    try:
        header = json.loads(raw, object_pairs_hook=_unique(where))
    except ConvertError:  # from _unique, a ValueError too
        raise
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise ConvertError(
            f"expected a JSON header in the safetensors file {where}, got unreadable "
            f"bytes ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(header, dict):
        raise ConvertError(f"expected a JSON object as the header of {where}")
    return header, 8 + length


def _is_count(value: object) -> bool:
    return type(value) is int and value >= 0


def _tensor(key: str, info: object, where: str) -> tuple[np.dtype[Any], tuple[int, ...], int, int]:
    """The dtype, shape and data offsets that ``info`` gives ``key``, validated."""
    if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
        raise ConvertError(
            f"expected an object with dtype, shape and data_offsets for {key!r} in {where}, "
            f"got {str(info)[:80]!r}"
        )
    code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    dtype_name = _DTYPES.get(code) if isinstance(code, str) else None
    dtype = None
    if dtype_name is not None:
        dtype = (
            _dtypes.ml_dtype(dtype_name) if not hasattr(np, dtype_name) else np.dtype(dtype_name)
        )
    if dtype is None:
        raise ConvertError(
            f"expected a safetensors dtype this version understands ({', '.join(_DTYPES)}) "
            f"for {key!r} in {where}, got {json.dumps(code)[:40]}"
        )
    if not isinstance(shape, list) or not all(_is_count(n) for n in shape):
        raise ConvertError(
            f"expected a list of non-negative integers as the shape of {key!r} in {where}, "
            f"got {json.dumps(shape)[:80]}"
        )
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))):
        raise ConvertError(
            f"expected data_offsets [begin, end] of non-negative integers for {key!r} in "
            f"{where}, got {json.dumps(offsets)[:80]}"
        )
    # Before the product below, which a shape of many long dimensions makes slow.
    check_shape(key, shape, dtype, where)
    begin, end = offsets
    nbytes = math.prod(shape) * dtype.itemsize
    if end - begin != nbytes:
        raise ConvertError(
            f"expected {nbytes} bytes for {key!r} in {where} ({dtype} of shape "
            f"{tuple(shape)}), got data_offsets [{begin}, {end}]: the file is damaged"
        )
    return dtype, tuple(shape), begin, end


def read_safetensors(path: Path, limits: Limits, closers: list[Callable[[], None]]) -> list[Entry]:
    """The tensors of the safetensors file ``path``, each read from a memory map when loaded."""
    where = shown(path)
    with untrusted(f"cannot read {where}"):
        size = path.stat().st_size
    header, start = _header(path, size)
    header.pop(METADATA, None)
    limits.check_arrays(len(header), where)
    tensors = []
    for key, info in header.items():
        check_key(key)
        tensors.append((key, *_tensor(key, info, where)))
    # The tensors must tile the data: no gap, no overlap, nothing past the end.
    expected = 0
    for key, _, _, begin, end in sorted(tensors, key=lambda t: (t[3], t[4])):
        if begin != expected:
            raise ConvertError(
                f"expected the data of {key!r} to start at byte {expected} of the "
                f"data in {where}, got data_offsets [{begin}, {end}]: "
                + ("it overlaps another tensor" if begin < expected else "a gap before it")
            )
        expected = end
    if expected != size - start:
        raise ConvertError(
            f"expected {expected} bytes of data in {where}, got {size - start}: the file is "
            "truncated or damaged"
        )
    with untrusted(f"cannot map {where}"), open(path, "rb") as f:
        buffer = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if expected else None
    if buffer is not None:
        closers.append(buffer.close)

    def load(
        key: str, dtype: np.dtype[Any], shape: tuple[int, ...], begin: int, end: int
    ) -> np.ndarray[Any, Any]:
        with untrusted(f"cannot read {key!r} in {where}"):
            if buffer is None or begin == end:
                return np.empty(shape, dtype=dtype)
            raw = np.frombuffer(buffer, dtype=np.uint8, count=end - begin, offset=start + begin)  # type: ignore[call-overload]
            # safetensors data is little-endian whatever the machine.
            little = dtype.newbyteorder("<") if dtype.byteorder == "=" else dtype
            return raw.view(little).reshape(shape)

    return [
        Entry(key, shape, dtype, functools.partial(load, key, dtype, shape, begin, end))
        for key, dtype, shape, begin, end in tensors
    ]


# -- writing --------------------------------------------------------------------------------------


def safetensors_code(dtype: np.dtype[Any]) -> str | None:
    """The safetensors dtype code of ``dtype`` (``"BF16"``, ...), or ``None`` if it has none."""
    if dtype.byteorder == ">":
        return None
    return _CODES.get(dtype.name)


def safetensors_header(arrays: Sequence[tuple[str, Sequence[int], np.dtype[Any]]]) -> bytes:
    """The header (length prefix included) of a file of these ``(name, shape, dtype)``, in order.

    The tensors tile the data in order, as :func:`read_safetensors` requires; the
    JSON is padded with spaces to a multiple of 8 bytes, as the ``safetensors``
    library writes it, so that the data starts aligned.
    """
    header: dict[str, Any] = {}
    offset = 0
    for name, shape, dtype in arrays:
        code = safetensors_code(dtype)
        if code is None:
            raise ConvertError(f"expected a dtype that safetensors stores, got {dtype} in {name!r}")
        end = offset + math.prod(shape) * dtype.itemsize
        header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [offset, end]}
        offset = end
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text


def write_safetensors(
    f: IO[bytes],
    arrays: Iterator[tuple[str, np.ndarray[Any, Any]]],
    header: bytes,
    planned: Sequence[tuple[str, Sequence[int], np.dtype[Any]]],
) -> None:
    """Write ``(name, array)`` pairs to ``f`` after ``header``, one array at a time.

    ``planned`` is what the header was made from: each array must come as planned
    (the converter checks that), in that order.
    """
    f.write(header)
    for (_, array), (_, _, dtype) in zip(arrays, planned, strict=True):
        # safetensors data is little-endian whatever the machine (a no-op on most).
        little = array.astype(dtype.newbyteorder("<"), copy=False)
        # The array's own C-ordered memory as bytes (or one contiguous copy of it).
        f.write(memoryview(np.ascontiguousarray(little).reshape(-1).view(np.uint8)))  # type: ignore[arg-type]
