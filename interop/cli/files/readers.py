"""Readers of tensor files: each describes its arrays (key, shape, dtype) before reading them.

PyTorch files written by ``torch.save`` (``.pt``, ``.pth``, ``.bin``) are loaded
with ``weights_only=True`` so that no arbitrary object is ever unpickled, with
the sparse tensors' invariants checked (indices within the shape), and
flattened to dotted keys (:mod:`interop.cli.files.flatten`); ``.safetensors``
files are read from their own layout (:mod:`interop.cli.files.safetensors`);
Parquet and Arrow IPC files with pyarrow (:mod:`interop.cli.files.arrow`);
NumPy ``.npy``/``.npz`` files are read with ``allow_pickle=False``, each array's
shape and dtype taken from its ``.npy`` header before any data is read, so that a
zip of compressed zeros is measured, not expanded.
"""

from __future__ import annotations

import functools
import math
import pickle
import pickletools
import re
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

import interop
from interop.cli.errors import ConvertError, quote, shown, untrusted
from interop.cli.files.arrow import read_arrow
from interop.cli.files.entry import Contents, Entry
from interop.cli.files.flatten import flatten
from interop.cli.files.limits import Limits, check_key, check_shape
from interop.cli.files.safetensors import read_safetensors

__all__ = ["INPUTS", "read"]

#: The input formats, by file suffix.
INPUTS = {
    ".pt": "pytorch",
    ".pth": "pytorch",
    ".bin": "pytorch",
    ".safetensors": "safetensors",
    ".npy": "npy",
    ".npz": "npz",
    ".parquet": "parquet",
    ".arrow": "arrow",
    ".feather": "arrow",
}
# The largest .npy header read (NumPy's own default).
_NPY_HEADER_LIMIT = 10_000
# What torch.load's refusal says before the unpickler's own message, which names
# the refused object, in the versions whose refusal carries that message in its text.
_WEIGHTS_ONLY_DETAIL = "WeightsUnpickler error:"
# The weights-only unpickler's refusal of an opcode it does not implement.
_OPERAND = re.compile(r"Unsupported operand (\d+)")
# Pickle opcodes by their byte, to name one that the unpickler refused.
_OPCODES = {ord(op.code): op.name for op in pickletools.opcodes}


# -- PyTorch -------------------------------------------------------------------------------------


def _refusal(exc: pickle.UnpicklingError) -> str:
    """The sentence of torch.load's refusal that says what it refused, ending a sentence.

    torch.load raises its own ``UnpicklingError`` while handling the one of its
    ``weights_only`` unpickler ("Trying to load unsupported GLOBAL posix.system
    whose module posix is blocked."), which is therefore the refusal's
    ``__context__``; its text wraps that message in paragraphs of advice, in a
    layout that changes between versions (torch 2.13 puts it after a blank
    line, earlier versions after :data:`_WEIGHTS_ONLY_DETAIL`, or not at all).
    A refusal of an opcode ("Unsupported operand 149": the unpickler stopped
    before it reached any object) gets the opcode's name.
    """
    inner = exc.__context__
    if isinstance(inner, pickle.UnpicklingError) and str(inner).strip():
        reason = quote(inner)
    else:
        text = str(exc)
        start = text.find(_WEIGHTS_ONLY_DETAIL)
        if start < 0:
            reason = quote(exc)
        else:
            reason = quote(pickle.UnpicklingError(text[start + len(_WEIGHTS_ONLY_DETAIL) :]))
    operand = _OPERAND.fullmatch(reason.rstrip("."))
    if operand is not None and int(operand[1]) in _OPCODES:
        reason = f"{reason.rstrip('.')} (the pickle opcode {_OPCODES[int(operand[1])]})"
    return reason if reason.endswith((".", "!", "?")) else reason + "."


def _read_pytorch(path: Path, limits: Limits, each_path: bool) -> Contents:
    try:
        import torch
    except ImportError as exc:
        raise ConvertError(
            f"expected PyTorch to read {shown(path)}, got no torch module. hint: pip install torch"
        ) from exc
    where = shown(path)
    with untrusted(
        f"expected a PyTorch file written by torch.save, got {where} that cannot be read",
        "the file is damaged or was not written by torch.save, or it holds a sparse tensor "
        "whose indices lie outside its shape (converting one would read memory out of "
        "bounds); save it again from a copy you trust",
    ):
        # Files in the legacy (pre-zip) format cannot be memory-mapped.
        mappable = zipfile.is_zipfile(path)
        try:
            # torch.load warns about its own internals as it rebuilds some
            # tensors (TypedStorage is deprecated, quantized constructors are
            # deprecated, complex32 is experimental): nothing the user can act
            # on, and an error's one line must stay the only one on stderr. What
            # is wrong with the file itself raises.
            # weights_only=True rebuilds sparse tensors unchecked unless the
            # invariant checks are on: indices outside a tensor's shape would
            # make densifying it read and write out of bounds.
            with warnings.catch_warnings(), torch.sparse.check_sparse_tensor_invariants():
                warnings.simplefilter("ignore")
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mappable)
        except pickle.UnpicklingError as exc:
            raise ConvertError(
                f"refused to load {where}: it is not a weights-only checkpoint; torch.load "
                "with weights_only=True, which runs no code from the file, rejected it: "
                f"{_refusal(exc)} hint: a file that holds Python objects other than tensors, "
                "containers and numbers, or uses pickle opcodes that the weights-only "
                "unpickler lacks, can be read only by unpickling it, which can run arbitrary "
                "code; if you trust it, load it in Python and save its tensors with "
                "torch.save(state_dict) or safetensors"
            ) from exc
    flat = flatten(
        obj, path.stem, limits, lambda v: isinstance(v, torch.Tensor), where, each_path=each_path
    )
    entries = []
    for key, value in flat.leaves.items():
        try:
            # Sparse tensors are written densely; their dense size counts against
            # --max-bytes like any other.
            plan = interop.explain(value, sparse="dense")
        except interop.InteropError as exc:
            raise ConvertError(f"cannot convert {key!r}: {quote(exc)}") from exc
        if plan.dtype is None:
            raise ConvertError(f"cannot tell the dtype of {key!r} before converting it")
        shape = tuple(int(n) for n in value.shape)
        entries.append(Entry(key, shape, plan.dtype, functools.partial(_identity, value)))
    return Contents(entries, flat.skipped, flat.aliases)


def _identity(value: Any) -> Any:
    return value


# -- NumPy ---------------------------------------------------------------------------------------


def _npy_header(f: IO[bytes], what: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """The shape and dtype of the .npy data that ``f`` is at the start of, read from its header."""
    with untrusted(f"cannot read {what} as a NumPy file"):
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f, _NPY_HEADER_LIMIT)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f, _NPY_HEADER_LIMIT)
        else:
            raise ConvertError(
                f"expected a .npy file of format 1.0 or 2.0, got {version[0]}.{version[1]} in "
                f"{what}"
            )
    if dtype.hasobject:
        raise ConvertError(
            f"refused to load {what}: it holds Python objects (an object array), and "
            "unpickling those can run arbitrary code"
        )
    return tuple(shape), dtype


def _read_npy(path: Path) -> list[Entry]:
    where = shown(path)
    with untrusted(f"cannot read {where}"), open(path, "rb") as f:
        shape, dtype = _npy_header(f, where)
        needed = f.tell() + math.prod(shape) * dtype.itemsize
        size = path.stat().st_size
    if size < needed:
        raise ConvertError(
            f"expected {needed} bytes in {where} for its {dtype} array of shape {shape}, got "
            f"{size}: the file is truncated"
        )
    with untrusted(f"cannot read {where} as a NumPy file"):
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    return [Entry(path.stem, shape, dtype, functools.partial(_identity, array))]


def _load_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, what: str) -> np.ndarray[Any, Any]:
    with untrusted(f"cannot read {what}"), zf.open(info) as member:
        return np.lib.format.read_array(  # type: ignore[no-any-return]
            member, allow_pickle=False, max_header_size=_NPY_HEADER_LIMIT
        )


def _read_npz(path: Path, limits: Limits, closers: list[Callable[[], None]]) -> list[Entry]:
    where = shown(path)
    with untrusted(f"cannot read {where} as a NumPy .npz file"):
        zf = zipfile.ZipFile(path)
    closers.append(zf.close)
    members = zf.infolist()
    limits.check_arrays(len(members), where)
    entries = []
    keys: set[str] = set()
    for info in members:
        key = info.filename.removesuffix(".npy")
        check_key(key)
        what = f"{info.filename!r} in {where}"
        if key in keys:
            raise ConvertError(f"expected unique names in {where}, got {key!r} twice")
        keys.add(key)
        with untrusted(f"cannot read {what}"), zf.open(info) as member:
            shape, dtype = _npy_header(member, what)
            needed = member.tell() + math.prod(shape) * dtype.itemsize
        if info.file_size < needed:
            raise ConvertError(
                f"expected {needed} bytes in {what} for its {dtype} array of shape {shape}, "
                f"got {info.file_size}: the file is truncated or damaged"
            )
        entries.append(Entry(key, shape, dtype, functools.partial(_load_member, zf, info, what)))
    return entries


def read(
    path: Path,
    fmt: str,
    limits: Limits,
    closers: list[Callable[[], None]],
    *,
    each_path: bool = False,
) -> Contents:
    """The arrays of the ``fmt`` file ``path``, described before their data is read.

    Args:
        path: The input file.
        fmt: Its format, a value of :data:`INPUTS`.
        limits: The bounds the file must keep within.
        closers: Receives what to close once the arrays are written (memory maps, zips).
        each_path: In a PyTorch file, give a tensor under each key that refers to
            it (an entry per key, and ``aliases`` pairing each later key with the
            first), rather than under its first key only (see
            :func:`~interop.cli.files.flatten.flatten`).

    Raises:
        ConvertError: The file cannot be read, is unsafe to load, or exceeds ``limits``.
    """
    if fmt == "pytorch":
        contents = _read_pytorch(path, limits, each_path)
    elif fmt == "safetensors":
        contents = Contents(read_safetensors(path, limits, closers))
    elif fmt == "npz":
        contents = Contents(_read_npz(path, limits, closers))
    elif fmt in ("parquet", "arrow"):
        contents = read_arrow(path, fmt, limits, closers)
    else:
        contents = Contents(_read_npy(path))
    # Whatever the format, every array must be one that NumPy can make: a torch
    # tensor may have more dimensions, a header may declare any shape.
    where = shown(path)
    for entry in contents.entries:
        check_shape(entry.key, entry.shape, entry.dtype, where)
    return contents
