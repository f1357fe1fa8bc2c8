"""Tensor files from Python: :func:`load` and :func:`save`, with exact dtypes.

The readers and writers of ``interop convert`` (:mod:`interop.cli.files`), as a
Python API: the same formats, the same safety (nothing is ever unpickled; inputs
are bounded and checked before their data is read; output appears whole or not at
all), and the same exact dtypes. A bfloat16 PyTorch checkpoint saved as
``.safetensors``, ``.parquet`` or ``.arrow`` reloads into JAX or TensorFlow with
the same bits, NaN payloads included, since no value is ever cast on the way.

Exported lazily by :mod:`interop` (``interop.load``, ``interop.save``), so that
``import interop`` does not import the file formats.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import math
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interop import _api, _convert
from interop._convert.targets import resolve
from interop._errors import InteropError
from interop._plan import is_masked_array, mask_loss
from interop.cli.errors import ConvertError, quote, shown
from interop.cli.files import cast_dtype, check_destination, input_format, output_format, write
from interop.cli.files.entry import Entry
from interop.cli.files.flatten import flatten
from interop.cli.files.limits import MAX_ARRAYS, Limits, free_bytes
from interop.cli.files.readers import read

__all__ = ["load", "save"]

_NO_LIMIT = 1 << 62


def _nest(flat: dict[str, Any], where: str) -> dict[str, Any]:
    """``{"a.b": x}`` as ``{"a": {"b": x}}``; refused where a key is also a prefix of another."""
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, last = key.split(".")
        node = tree
        for i, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConvertError(
                    f"expected keys that nest, got {'.'.join(parents[: i + 1])!r} as an array "
                    f"and as a prefix of {key!r} in {where}. hint: load(..., flat=True) keeps "
                    "the dotted keys"
                )
            node = child
        if last in node:
            raise ConvertError(
                f"expected keys that nest, got {key!r} as an array and as a prefix of other "
                f"keys in {where}. hint: load(..., flat=True) keeps the dotted keys"
            )
        node[last] = value
    return tree


def load(
    path: str | os.PathLike[str],
    /,
    *,
    to: str | None = None,
    device: Any = None,
    keys: str | Sequence[str] = (),
    flat: bool = False,
    max_arrays: int = MAX_ARRAYS,
    max_bytes: int | None = None,
) -> dict[str, Any]:
    """Read every array of a tensor file, with its exact dtype, into a nested dict.

    Formats, by suffix: ``.safetensors``; ``.parquet`` and ``.arrow``/``.feather``
    (Arrow IPC), as :func:`save` writes them or as tables of rows (one array per
    column); ``.npz``/``.npy`` (``allow_pickle=False``); and PyTorch's
    ``.pt``/``.pth``/``.bin`` (``torch.load(weights_only=True)``, never arbitrary
    unpickling). bfloat16, float8 and the other ``ml_dtypes`` formats come back
    bit for bit.

    A PyTorch file may hold one tensor under several keys (tied weights, such as
    an embedding shared with the output layer): each of those keys gets it, as
    the same array object under each key, as ``torch.load`` gives the same tensor.

    Args:
        path: The file.
        to: The framework of the arrays (``"torch"``, ``"jax"``, ``"tensorflow"``,
            ...); ``None``: NumPy arrays. Checked before the file is read.
        device: Where to put them (``"cuda:0"``, ...), as in :func:`interop.convert`.
        keys: Glob patterns on the dotted keys, or one pattern as a str: only
            matching arrays are read.
        flat: Return ``{"model.w": ...}`` instead of ``{"model": {"w": ...}}``.
        max_arrays: The most arrays the file may hold.
        max_bytes: The most bytes its arrays may take (``None``: no bound).

    Returns:
        The arrays, under nested keys (the dotted keys split at each ``.``), or
        under the dotted keys with ``flat=True``. Each array owns its memory
        (shared only by the keys of one tensor of a PyTorch file).

    Raises:
        ConvertError: (``interop.cli.errors.ConvertError``, an
            :class:`~interop.InteropError` and a ``ValueError``) ``to`` names no
            installed framework, or the file cannot be
            read, is unsafe to load, exceeds the bounds, or holds keys that do
            not nest (``"a"`` and ``"a.b"``).
        InteropError: An array cannot be converted to ``to``.

    Example:
        >>> import tempfile, pathlib, ml_dtypes, numpy as np, interop
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "w.safetensors"
        >>> w = np.array([1.5, -2.0], dtype=ml_dtypes.bfloat16)
        >>> _ = interop.save({"layer": {"w": w}}, path)
        >>> interop.load(path)["layer"]["w"]
        array([1.5, -2], dtype=dtype(bfloat16))
    """
    _check_target(to)
    patterns = (keys,) if isinstance(keys, str) else tuple(keys)
    src = Path(path)
    fmt = input_format(src)
    if not src.is_file():
        what = "a directory" if src.is_dir() else "no such file"
        raise ConvertError(f"expected a file, got {shown(src)}: {what}")
    limits = Limits(_NO_LIMIT if max_bytes is None else max_bytes, max_arrays)
    closers: list[Callable[[], None]] = []
    out: dict[str, Any] = {}
    try:
        contents = read(src, fmt, limits, closers, each_path=True)
        entries = contents.entries
        if patterns:
            entries = [e for e in entries if any(fnmatch.fnmatchcase(e.key, k) for k in patterns)]
        # A tensor under several keys is loaded once, under the first key selected.
        first_key = dict(contents.aliases)
        sources = {first_key.get(e.key, e.key): e for e in entries}
        total = sum(math.prod(e.shape) * e.dtype.itemsize for e in sources.values())
        limits.check_bytes(total, src)
        loaded: dict[str, Any] = {}
        for entry in entries:
            source = first_key.get(entry.key, entry.key)
            if source not in loaded:
                loaded[source] = _load_entry(entry, to, device)
            out[entry.key] = loaded[source]
    finally:
        for close in closers:
            # A memory map still exported to an array closes when that array goes.
            with contextlib.suppress(BufferError):
                close()
    return out if flat else _nest(out, shown(src))


def _check_target(to: str | None) -> None:
    """Refuse a ``to`` that names no installed framework, before any file is read."""
    if to is None:
        return
    try:
        resolve(to, None)
    except (TypeError, ValueError, ImportError) as exc:
        raise ConvertError(
            f"expected to= to name an installed framework, got {to!r}: {quote(exc)}"
        ) from exc


def _load_entry(entry: Entry, to: str | None, device: Any) -> Any:
    try:
        # A copy: the data may be a view of a memory map of the file, which a later
        # change to the file would change under the caller.
        array = _api.to_numpy(entry.load(), copy=True, sparse="dense")
        if to is None or to == "numpy":
            if device is not None:
                return _convert.convert(array, "numpy", device=device)
            return array
        return _convert.convert(array, to, device=device)
    except InteropError as exc:
        if isinstance(exc, ConvertError):
            raise
        raise type(exc)(f"{entry.key!r}: {exc}") from exc


def _is_array(value: Any) -> bool:
    framework = _api.framework_of(value)
    return framework is not None and framework != "python"


def save(
    tree: Any,
    path: str | os.PathLike[str],
    /,
    *,
    overwrite: bool = True,
    upcast: bool = False,
    dtype: Any = None,
    max_bytes: int | None = None,
    progress: bool = False,
) -> list[str]:
    """Write the arrays of a nested structure to a tensor file, under dotted keys.

    The format is the file's suffix: ``.safetensors`` (its own dtypes: bfloat16
    and five float8 formats included), ``.parquet`` or ``.arrow`` (every numeric
    dtype, exactly: see the documentation's Scale-out page), ``.npz`` (NumPy's own dtypes
    only; ``upcast=True`` writes bfloat16 and float8 as float32), or ``.npy`` for
    one array. Arrays of any framework are converted on the way, on any device;
    nothing is cast unless asked. The file is written to a temporary file beside
    it and renamed into place when complete.

    An array that appears under several keys (tied weights, such as an embedding
    shared with the output layer, or a container of arrays under two keys) is
    written under each of them, so that every key comes back from :func:`load`.

    Args:
        tree: Dicts, lists and tuples of arrays (any framework) and numbers;
            ``{"model": {"w": w}}`` is written under the key ``"model.w"``.
        path: The file.
        overwrite: Replace an existing file (never a directory).
        upcast: Write nonstandard dtypes as the nearest standard dtype.
        dtype: Cast floating-point arrays to this standard dtype.
        max_bytes: The most bytes the file may take; ``None``: the free space.
        progress: Show a progress bar on stderr.

    Returns:
        The entries that were not written, which are neither arrays nor numbers
        (strings, ``None``, ...), as ``"key (type)"``.

    A key that is unsafe as a name in the format (a lone surrogate, a path
    separator in ``.npz``, ...) is written escaped, with a :class:`UserWarning`
    naming it: :func:`interop.load` gives back the escaped name. Any other key,
    the empty key ``""`` included, is written as it is; only a lone array given
    as ``tree``, which has no key, is written under the file's stem.

    Raises:
        ConvertError: (``interop.cli.errors.ConvertError``, an
            :class:`~interop.InteropError` and a ``ValueError``) The file cannot be
            written (a dtype the format cannot store, ``dtype`` is not a standard
            floating-point dtype, the format needs pyarrow and it is missing, a
            limit, the destination); an existing file is left as it was.

    Example:
        >>> import tempfile, pathlib, numpy as np, interop
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "ckpt.npz"
        >>> interop.save({"w": np.ones(2), "name": "demo"}, path)
        ['name (str)']
    """
    dst = Path(path)
    # The format (and the library it needs) and the dtype are checked before any
    # array of the tree is converted.
    output_format(dst)
    target = cast_dtype(dtype)
    check_destination(dst, overwrite)
    limits = Limits(free_bytes(dst.parent) if max_bytes is None else max_bytes)
    flat = flatten(tree, dst.stem, limits, _is_array, "the tree", each_path=True)
    entries = []
    described: dict[int, tuple[tuple[int, ...], np.dtype[Any], Any]] = {}  # id -> shape, ...
    for key, value in flat.leaves.items():
        # An array under several keys (flat.aliases) is one object: described once.
        known = described.get(id(value))
        if known is None:
            known = described[id(value)] = _describe(key, value)
        shape, leaf_dtype, data = known
        entries.append(Entry(key, shape, leaf_dtype, functools.partial(_identity, data)))
    if not entries:
        raise ConvertError("expected arrays or numbers to save, got none")
    _, renamed = write(
        entries,
        dst,
        upcast=upcast,
        target=target,
        limits=limits,
        bar=f"saving {dst.name}" if progress else None,
    )
    if renamed:
        # interop.load gives these names back, not the keys: say so.
        shown_names = ", ".join(f"{key!r} as {name!r}" for key, name in renamed[:10])
        more = f" and {len(renamed) - 10} more" if len(renamed) > 10 else ""
        warnings.warn(
            f"saved {len(renamed)} keys that are unsafe as names in {dst.name} escaped: "
            f"{shown_names}{more}. hint: rename them before saving, or load them by these "
            "names",
            UserWarning,
            stacklevel=2,
        )
    return flat.skipped


def _describe(key: str, value: Any) -> tuple[tuple[int, ...], np.dtype[Any], Any]:
    """The shape and dtype of the array leaf ``value``, and what to write (converted if need be)."""
    try:
        plan = _api.explain(value, sparse="dense")
        # The dtype known only once the data arrives, or no shape to read (a
        # buffer, an __array__ object, an Arrow ChunkedArray): convert it now.
        if plan.dtype is None or not hasattr(value, "shape"):
            value = _api.to_numpy(value, sparse="dense")
            plan = _api.explain(value)
    except InteropError as exc:
        raise ConvertError(f"cannot convert {key!r}: {quote(exc)}") from exc
    assert plan.dtype is not None
    if is_masked_array(value):
        # No file format here carries a mask: the data alone, where nothing is masked.
        value = _unmasked(key, value)
    return tuple(int(n) for n in value.shape), plan.dtype, value


def _unmasked(key: str, value: Any) -> np.ndarray[Any, Any]:
    """The data of the masked array ``value``, or :class:`ConvertError` where an entry is masked."""
    lost = mask_loss(value)
    if lost is not None:
        raise ConvertError(
            f"cannot save {key!r}: expected an array without masked entries, got a masked "
            f"array of {value.size} entries with entries masked: no file format carries "
            "the mask, and the values under it "
            "would become data. hint: fill them first (x.filled(value)), and save the mask "
            "as an array of its own (np.ma.getmaskarray(x)) to keep it"
        )
    data: np.ndarray[Any, Any] = np.asarray(value.data)
    return data


def _identity(value: Any) -> Any:
    return value
