"""Output that appears whole or not at all: a temporary file renamed into place.

The temporary file lies beside the destination, so that the rename stays on one
filesystem, under a short name of its own (``.interop-<16 hex digits>.tmp``):
the destination's name plus a suffix would be too long for the filesystem when
that name is near its limit (255 bytes). It is created with the permissions the
destination will have, and is removed on any exception, ``KeyboardInterrupt``
(SIGINT) included. :func:`signals_raise` turns SIGTERM and SIGHUP into an
exception too, so that they also clean up instead of killing the process
mid-write.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import IO, Any

import numpy as np

from interop.cli.errors import ConvertError, shown

__all__ = ["Terminated", "existing_mode", "signals_raise", "write_atomic"]

# The signals that end a process by default and that a user or a supervisor sends
# to stop a command; SIGINT already raises KeyboardInterrupt.
_TERMINATING = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)
_BLOCKED = {signal.SIGINT, *_TERMINATING}
_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_BINARY", 0)
)


class Terminated(BaseException):
    """A terminating signal arrived; like ``KeyboardInterrupt``, not an ``Exception``.

    Attributes:
        signum: The signal's number.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """Within this block, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread.

    Outside the main thread (where Python cannot install handlers) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise) for s in _TERMINATING}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP until the block ends (where the platform can).

    A signal that arrives in between is delivered, and raises, when the block ends.
    """
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def existing_mode(dst: Path) -> int | None:
    """The permission bits of the file at ``dst`` (through a link), or ``None`` if none is there."""
    if not os.path.exists(dst):
        return None
    try:
        return stat.S_IMODE(os.stat(dst).st_mode)
    except OSError as exc:
        raise ConvertError(f"cannot read the permissions of {shown(dst)}: {exc}") from exc


def write_atomic(
    dst: Path,
    write: Callable[[IO[bytes], Iterator[tuple[str, np.ndarray[Any, Any]]]], None],
    arrays: Callable[[], Iterator[tuple[str, np.ndarray[Any, Any]]]],
    mode: int | None,
) -> None:
    """Write ``arrays()`` with ``write`` to a temporary file and rename it to ``dst`` when complete.

    Args:
        dst: The destination.
        write: Writes ``(name, array)`` pairs to an open binary file.
        arrays: Makes the pairs, converting each array as it is asked for.
        mode: The permission bits of the new file; ``None`` for a new file's
            default (``0o666`` less the umask).

    Raises:
        ConvertError: From ``arrays``, or when the file cannot be written; the
            temporary file is gone and ``dst`` is as it was.
    """
    tmp = dst.parent / f".interop-{secrets.token_hex(8)}.tmp"
    created = False
    try:
        # A signal held here arrives when the block ends, with `created` telling
        # the handlers below whether there is a file to remove.
        with _signals_held():
            # With the default mode the umask applies, as for any new file; a
            # replaced file gets its old bits below (chmod ignores the umask).
            fd = os.open(tmp, _FLAGS, 0o666 if mode is None else 0o600)
            created = True
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.chmod(tmp, mode)
            write(f, arrays())
            f.flush()
            os.fsync(f.fileno())
        with _signals_held():
            os.replace(tmp, dst)
            created = False
    except OSError as exc:
        if created:
            _remove(tmp)
        raise ConvertError(f"cannot write {shown(dst)}: {exc.strerror}") from exc
    except BaseException:
        if created:
            _remove(tmp)
        raise


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
