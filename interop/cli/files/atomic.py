"""Output that appears whole or not at all: a temporary file renamed into place."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from interop.cli.files.writers import write_npz

__all__ = ["write_atomic"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(
    dst: Path, arrays: Callable[[], Iterator[tuple[str, np.ndarray[Any, Any]]]]
) -> None:
    """Write to a temporary file beside ``dst`` and rename it into place when complete."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            if dst.suffix.lower() == ".npz":
                write_npz(f, arrays())
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
