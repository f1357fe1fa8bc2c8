"""Tensor files for ``interop convert``: safe reading, and writing that never leaves half a file.

Inputs (see :mod:`interop.cli.files.readers`): PyTorch files written by
``torch.save``, loaded with ``weights_only=True``; ``.safetensors``, read from its
documented layout; NumPy ``.npy``/``.npz``, loaded with ``allow_pickle=False``.
Nested containers are flattened to dotted keys.

Output: ``.npz`` (or ``.npy`` for a single array), written to a temporary file in
the destination's directory and renamed into place only once complete
(:mod:`interop.cli.files.atomic`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interop import _dtypes
from interop.cli.errors import ConvertError
from interop.cli.files.atomic import write_atomic
from interop.cli.files.readers import INPUTS, read
from interop.cli.files.writers import Bar, convert_array

__all__ = ["ConvertError", "Summary", "convert"]

OUTPUTS = (".npz", ".npy")
#: Inputs at least this large get a progress bar when stderr is a terminal.
PROGRESS_BYTES = 64 << 20


@dataclasses.dataclass
class Summary:
    """What :func:`convert` wrote."""

    arrays: int
    nbytes: int
    skipped: list[str]


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
        >>> from interop.cli.files import convert
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
        entries = read(src, fmt, skipped, closers)
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
        bar = Bar(total, f"{src.name} -> {dst.name}") if progress else None
        written = 0

        def arrays() -> Iterator[tuple[str, np.ndarray[Any, Any]]]:
            nonlocal written
            for entry in entries:
                array = convert_array(entry, upcast, target)
                yield entry.key, array
                written += array.nbytes
                if bar is not None:
                    bar.update(entry.nbytes)

        write_atomic(dst, arrays)
        if bar is not None:
            bar.close()
    finally:
        for close in closers:
            # An mmap still exported to a live array closes when that array goes.
            with contextlib.suppress(BufferError):
                close()
    return Summary(len(entries), written, skipped)
