"""Tensor files for ``interop convert``: bounded, safe reading, and all-or-nothing writing.

Every check that can be made before writing is made before writing: the input's
structure (:mod:`~interop.cli.files.readers`, :mod:`~interop.cli.files.safetensors`),
its size against :class:`~interop.cli.files.limits.Limits`, every array's output
dtype, the member names (:mod:`~interop.cli.files.names`) and the destination.
Then the arrays are converted one at a time into a temporary file that is renamed
into place when complete (:mod:`~interop.cli.files.atomic`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import math
import os
import re
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interop import _dtypes
from interop.cli.errors import ConvertError, printable, shown
from interop.cli.files.atomic import existing_mode, write_atomic
from interop.cli.files.entry import Entry
from interop.cli.files.limits import MAX_ARRAYS, Limits, free_bytes
from interop.cli.files.readers import INPUTS, read
from interop.cli.files.writers import OUTPUTS, Bar, Output, convert_array, output_dtype

__all__ = [
    "INPUTS",
    "OUTPUTS",
    "ConvertError",
    "Summary",
    "check_destination",
    "convert",
    "input_format",
    "output_format",
    "write",
]
#: Inputs at least this large get a progress bar when stderr is a terminal.
PROGRESS_BYTES = 64 << 20
_DTYPE_HINT = "name one such as float32, float16 or float64"


@dataclasses.dataclass
class Summary:
    """What :func:`convert` wrote.

    Attributes:
        arrays: How many arrays.
        nbytes: Their bytes.
        skipped: The entries that are not arrays or numbers, as ``"key (type)"``.
        aliases: ``(key, first key)`` for each later reference to an object written
            under its first key.
        renamed: ``(key, name)`` for each key that is unsafe as a name in the
            output file, written under an escaped name.
    """

    arrays: int
    nbytes: int
    skipped: list[str]
    aliases: list[tuple[str, str]]
    renamed: list[tuple[str, str]]


def check_destination(dst: Path, force: bool) -> None:
    """Refuse ``dst`` unless it is a new file in an existing directory (or ``force``)."""
    if not dst.parent.is_dir():
        raise ConvertError(f"expected an existing output directory, got {shown(dst.parent)}")
    if not os.path.lexists(dst):
        return
    try:
        kind = os.lstat(dst).st_mode
    except OSError as exc:
        raise ConvertError(f"cannot examine the output {shown(dst)}: {exc.strerror}") from exc
    if os.path.isdir(dst):
        raise ConvertError(f"expected an output file, got {shown(dst)}, which is a directory")
    if not (stat.S_ISREG(kind) or stat.S_ISLNK(kind)):
        raise ConvertError(
            f"expected an output file, got {shown(dst)}, which is not a regular file"
        )
    if not force:
        what = "exists" if os.path.exists(dst) else "exists (a link to a missing file)"
        raise ConvertError(
            f"expected a new output file, got {shown(dst)}, which {what}. hint: --force replaces it"
        )


def input_format(src: Path) -> str:
    """The input format of the file ``src``, by its suffix (a value of :data:`INPUTS`)."""
    fmt = INPUTS.get(src.suffix.lower())
    if fmt is None:
        raise ConvertError(
            f"expected an input file ending in one of {', '.join(INPUTS)}, got {src.name!r}"
        )
    return fmt


def output_format(dst: Path) -> Output:
    """The output format of the file ``dst``, by its suffix, with the libraries it needs."""
    output = OUTPUTS.get(dst.suffix.lower())
    if output is None:
        raise ConvertError(
            f"expected an output file ending in one of {', '.join(OUTPUTS)}, got {dst.name!r}"
        )
    if output.requires is not None:
        output.requires(dst)
    return output


def cast_dtype(dtype: Any) -> np.dtype[Any] | None:
    """The standard floating-point dtype that ``--dtype`` names, checked."""
    if dtype is None:
        return None
    try:
        target: np.dtype[Any] = np.dtype(dtype)
    except (TypeError, ValueError, SyntaxError) as exc:
        # np.dtype parses strings of its own grammar: an unknown name raises
        # TypeError, a malformed shape ValueError, unbalanced brackets SyntaxError.
        raise ConvertError(
            f"expected a NumPy dtype name for --dtype (dtype=), got {_short(repr(dtype))}. "
            f"hint: {_DTYPE_HINT}"
        ) from exc
    if not _dtypes.is_standard(target) or target.kind != "f":
        raise ConvertError(
            f"expected a floating-point dtype that .npy files store for --dtype (dtype=), got "
            f"{_short(str(target))}. hint: {_DTYPE_HINT}"
        )
    return target


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _options(
    src: Path, dst: Path, dtype: str | None, keys_regex: str | Sequence[str]
) -> tuple[str, np.dtype[Any] | None, list[re.Pattern[str]]]:
    """The input format, the --dtype and the compiled --keys-regex, checked."""
    fmt = input_format(src)
    output_format(dst)
    target = cast_dtype(dtype)
    patterns = []
    for expr in _one_or_many(keys_regex):
        try:
            patterns.append(re.compile(expr))
        except re.error as exc:
            raise ConvertError(f"expected a regular expression, got {expr!r}: {exc}") from exc
    return fmt, target, patterns


def _one_or_many(patterns: str | Sequence[str]) -> tuple[str, ...]:
    """Patterns given as a sequence, or one given as a str (not a sequence of characters)."""
    return (patterns,) if isinstance(patterns, str) else tuple(patterns)


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    upcast: bool = False,
    keys: str | Sequence[str] = (),
    keys_regex: str | Sequence[str] = (),
    dtype: str | None = None,
    force: bool = False,
    progress: bool | None = None,
    max_bytes: int | None = None,
    max_arrays: int = MAX_ARRAYS,
) -> Summary:
    """Convert the tensor file ``src`` to the tensor file ``dst``.

    Args:
        src: A ``.pt``/``.pth``/``.bin`` (``torch.save``), ``.safetensors``, ``.npy``,
            ``.npz``, ``.parquet`` or ``.arrow``/``.feather`` (Arrow IPC) file.
        dst: A ``.npz`` file (or ``.npy`` when exactly one array is selected), which
            stores NumPy's own dtypes only; a ``.safetensors`` file, which also
            stores bfloat16 and float8; or a ``.parquet`` or ``.arrow`` file, which
            store every numeric dtype exactly (see :mod:`interop.cli.files.arrow`).
        upcast: Write bfloat16, float8 and other nonstandard dtypes as the nearest
            standard dtype holding every value (float32, ...).
        keys: Glob patterns (``fnmatch``) on the flattened, dotted keys, or one
            pattern as a str; an array is kept if any pattern or regex matches
            (all are kept when none is given).
        keys_regex: Regular expressions searched in the keys, or one as a str.
        dtype: Cast every floating-point array to this NumPy dtype (integer, bool
            and complex arrays are kept as they are).
        force: Replace ``dst`` if it exists (a file or a link, never a directory),
            keeping its permission bits.
        progress: Show a progress bar on stderr; ``None``: on a terminal, for inputs
            of at least 64 MB. Never where Python has no stderr (started closed).
        max_bytes: The most bytes the output may take, checked before writing;
            ``None``: the free space at the destination.
        max_arrays: The most arrays the input may hold.

    Returns:
        How many arrays and bytes were written, the entries skipped (objects
        that are not arrays or numbers, such as strings or ``None``), the
        aliases (later references to an object already written) and the renamed
        keys.

    Raises:
        ConvertError: The conversion cannot go ahead; ``dst`` is as it was.

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
    keys = _one_or_many(keys)
    fmt, target, patterns = _options(src, dst, dtype, keys_regex)
    if not src.is_file():
        what = "a directory" if src.is_dir() else "no such file"
        raise ConvertError(f"expected an input file, got {shown(src)}: {what}")
    check_destination(dst, force)
    limits = Limits(free_bytes(dst.parent) if max_bytes is None else max_bytes, max_arrays)

    closers: list[Callable[[], None]] = []
    try:
        contents = read(src, fmt, limits, closers)
        entries = contents.entries
        if keys or patterns:
            entries = [
                e
                for e in entries
                if any(fnmatch.fnmatchcase(e.key, k) for k in keys)
                or any(p.search(e.key) for p in patterns)
            ]
            if not entries:
                raise ConvertError(f"expected --keys to select arrays, got none from {shown(src)}")
        if not entries:
            raise ConvertError(f"expected arrays in {shown(src)}, got none")
        if sys.stderr is None:  # (started with stderr closed: a bar has nowhere to go)
            progress = False
        elif progress is None:
            progress = sys.stderr.isatty() and src.stat().st_size >= PROGRESS_BYTES
        label = f"{printable(src.name)} -> {printable(dst.name)}" if progress else None
        written, renamed = write(
            entries, dst, upcast=upcast, target=target, limits=limits, bar=label
        )
    finally:
        for close in closers:
            # An mmap still exported to a live array closes when that array goes.
            with contextlib.suppress(BufferError):
                close()
    return Summary(len(entries), written, contents.skipped, contents.aliases, renamed)


def write(
    entries: list[Entry],
    dst: Path,
    *,
    upcast: bool,
    target: np.dtype[Any] | None,
    limits: Limits,
    bar: str | None,
) -> tuple[int, list[tuple[str, str]]]:
    """Write ``entries`` to ``dst`` in its format, all or nothing; the bytes and the renamed keys.

    Every array's output dtype, the names and the size are checked before anything
    is written.

    Args:
        entries: The arrays, described before their data is read.
        dst: The output file; its suffix names the format.
        upcast: Whether nonstandard dtypes become the nearest standard one.
        target: The dtype floating-point arrays are cast to, if any.
        limits: The bounds the output must keep within.
        bar: The label of a progress bar to show, or ``None`` for none.

    Raises:
        ConvertError: The output cannot be written; ``dst`` is as it was.
    """
    output = output_format(dst)
    if output.single and len(entries) != 1:
        raise ConvertError(
            f"expected one array for a .npy output, got {len(entries)}. hint: write "
            ".npz, or select one array with --keys"
        )
    dtypes = [output_dtype(e, upcast, target, output) for e in entries]
    names, renamed = output.names([e.key for e in entries])
    planned = list(zip(names, (e.shape for e in entries), dtypes, strict=True))
    if output.check is not None:
        output.check(planned)
    limits.check_bytes(output.size(planned), dst)
    sizes = [math.prod(e.shape) * d.itemsize for e, d in zip(entries, dtypes, strict=True)]
    progress = Bar(sum(sizes), bar) if bar is not None else None
    written = 0

    def arrays() -> Iterator[tuple[str, np.ndarray[Any, Any]]]:
        nonlocal written
        for entry, name, dtype, size in zip(entries, names, dtypes, sizes, strict=True):
            yield name, convert_array(entry, dtype, upcast)
            written += size
            if progress is not None:
                progress.update(size)

    def write_file(f: Any, pairs: Iterator[tuple[str, np.ndarray[Any, Any]]]) -> None:
        output.write(f, pairs, dst, planned)

    try:
        # Only a file that --force replaces is there: it keeps its permission bits.
        write_atomic(dst, write_file, arrays, existing_mode(dst))
    finally:
        if progress is not None:
            progress.close()
    return written, renamed
