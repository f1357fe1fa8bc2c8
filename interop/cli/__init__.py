"""The ``interop`` command line: ``doctor`` (also what a bare ``interop`` runs) and ``convert``.

Exit status: 0 on success; ``doctor`` returns 1 if a conversion gave wrong values;
every failure of ``convert`` and every usage error return 2 with one line
``interop ...: error: ...`` on stderr (1 stays what Python returns for an
uncaught exception, a bug); an interrupted ``convert`` returns 128 plus the
signal's number (130 for Ctrl-C, 143 for SIGTERM). A failed or interrupted
``convert`` never leaves an output file behind.

Output to a closed pipe (``interop | head -1``) or descriptor ends the command
quietly, as SIGPIPE ends other commands: no traceback, and the status 141 (128
plus SIGPIPE's number) of a command whose output was cut short, except for a
``convert`` whose file was written in full, which returns 0 (its result is the
file, not the summary it could not print). A stream closed before the command
starts (``interop doctor >&-``) is none to Python, which writes nothing to it:
the status is the command's own. The error line of a failed ``convert`` that
cannot be written changes nothing but that: the status stays 2.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import re
import signal
import sys
import warnings
from collections.abc import Sequence
from typing import NoReturn

from interop.cli import doctor
from interop.cli.errors import ConvertError, printable
from interop.cli.files import Summary, convert
from interop.cli.files.atomic import Terminated, signals_raise
from interop.cli.files.limits import MAX_ARRAYS

__all__ = ["main"]

_EPILOG = """\
examples:
  interop                               # same as: interop doctor
  interop doctor --json                 # machine-readable report
  interop convert model.pt model.npz    # state dict -> one array per dotted key
  interop convert model.safetensors w.npz --upcast --keys 'encoder.*'
  interop convert model.pt model.parquet  # every tensor dtype kept (also .arrow)
"""
_SIZE = re.compile(r"(\d+)([KMGT]?)(?:I?B)?", re.IGNORECASE)
#: Exit status of a failed command, as argparse uses for a usage error.
FAILED = 2
#: Exit status of a command whose output went to a closed pipe: 128 + SIGPIPE (13),
#: what a shell reports for a command that SIGPIPE ended.
PIPE_CLOSED = 141


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors, like those of ``convert``, are one line."""

    #: The parsers of the commands, by name (the top-level parser's only).
    commands: dict[str, argparse.ArgumentParser]

    def error(self, message: str) -> NoReturn:
        self.exit(FAILED, f"{self.prog}: error: {printable(message)}. hint: {self.prog} --help\n")


def _size(text: str) -> int:
    """A number of bytes, with an optional K, M, G or T (powers of 1024)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"expected a number of bytes such as 500000, 300M or 2G, got {text!r}"
        )
    return int(match[1]) << (10 * "_KMGT".index(match[2].upper() or "_"))


def _count(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def _parser() -> _Parser:
    parser = _Parser(
        prog="interop",
        description="Convert arrays between frameworks and NumPy; check what this machine does.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    doctor_cmd = sub.add_parser(
        "doctor",
        help="versions, devices, and the path, copies and speed of each conversion",
        description="Show versions and devices, and measure to_numpy for every installed "
        "framework, placement and dtype (zero-copy checked with np.shares_memory). "
        "Exits 1 if a conversion returns wrong values.",
    )
    doctor_cmd.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor_cmd.add_argument(
        "--framework",
        action="append",
        choices=doctor.MATRIX_FRAMEWORKS,
        help="examine only this framework (repeatable; default: every installed one)",
    )
    convert_cmd = sub.add_parser(
        "convert",
        help="convert a tensor file (.pt, .pth, .bin, .safetensors, .npy, .npz, .parquet, "
        ".arrow) to .npz/.npy, .safetensors, .parquet or .arrow",
        description="Convert a tensor file. PyTorch files are loaded with "
        "weights_only=True (no arbitrary object is ever unpickled) and their sparse "
        "tensors' indices checked against their shapes; nested state dicts "
        "and optimizer states become dotted keys. The output is written to a temporary "
        "file and renamed into place, so a failure leaves nothing behind. Limits on the "
        "input's size and nesting are checked before anything is written.",
    )
    convert_cmd.add_argument(
        "src",
        help="input: .pt, .pth, .bin (torch.save), .safetensors, .npy, .npz, .parquet, "
        ".arrow/.feather (Arrow IPC)",
    )
    convert_cmd.add_argument(
        "dst",
        help="output: .npz (or .npy for a single array), .safetensors (bfloat16/float8 "
        "kept), .parquet or .arrow (every tensor dtype kept)",
    )
    convert_cmd.add_argument(
        "--upcast",
        action="store_true",
        help="write bfloat16/float8/... as the nearest standard dtype (float32), exactly",
    )
    convert_cmd.add_argument(
        "--keys",
        action="append",
        default=[],
        metavar="GLOB",
        help="keep arrays whose dotted key matches this glob (repeatable)",
    )
    convert_cmd.add_argument(
        "--keys-regex",
        action="append",
        default=[],
        metavar="REGEX",
        help="keep arrays whose dotted key contains a match of this regex (repeatable)",
    )
    convert_cmd.add_argument(
        "--dtype", help="cast floating-point arrays to this NumPy dtype (e.g. float32)"
    )
    convert_cmd.add_argument(
        "--force",
        action="store_true",
        help="replace an existing output file (keeping its permissions); never a directory",
    )
    convert_cmd.add_argument(
        "--max-bytes",
        type=_size,
        metavar="SIZE",
        help="refuse to write more than SIZE bytes (e.g. 500M, 2G; default: the free "
        "space at the destination)",
    )
    convert_cmd.add_argument(
        "--max-arrays",
        type=_count,
        default=MAX_ARRAYS,
        metavar="N",
        help=f"refuse inputs of more than N arrays (default: {MAX_ARRAYS})",
    )
    bar = convert_cmd.add_mutually_exclusive_group()
    bar.add_argument(
        "--progress",
        action="store_true",
        default=None,
        help="always show a progress bar (default: on a terminal, for inputs of 64 MB or more)",
    )
    bar.add_argument(
        "--no-progress", dest="progress", action="store_false", help="never show a progress bar"
    )
    parser.commands = {"doctor": doctor_cmd, "convert": convert_cmd}
    return parser


def _listing(items: Sequence[str], count: int = 5, width: int = 100) -> str:
    """The first ``count`` of ``items``, each cut to ``width`` characters, on one line."""
    cut = [item if len(item) <= width else item[: width - 3] + "..." for item in items[:count]]
    more = f" and {len(items) - count} more" if len(items) > count else ""
    return printable(", ".join(cut)) + more


def _failed(message: str, status: int) -> int:
    """Print the one line of a failed ``convert`` on stderr; ``status``, even if no one reads it.

    A stderr that cannot take the line (a closed pipe, a closed descriptor, none
    at all) changes nothing but that the line goes unread.
    """
    if sys.stderr is None:  # (started with stderr closed: print would write to stdout)
        return status
    try:
        print(f"interop convert: error: {message}", file=sys.stderr)
    except OSError:
        _discard_output()
    return status


def _closed(exc: OSError) -> bool:
    """Whether ``exc``, raised writing to stdout or stderr, says that no one can read it.

    A pipe whose reader has gone, or a descriptor that is closed (``>&-``, which
    leaves the stream in place where Python found the descriptor open as it started).
    """
    return isinstance(exc, BrokenPipeError) or exc.errno == errno.EBADF


def _flush_stdout() -> None:
    # Python sets sys.stdout to None where it starts with descriptor 1 closed, and
    # print() then writes nothing.
    if sys.stdout is not None:
        sys.stdout.flush()


def _convert(args: argparse.Namespace) -> int:
    # The error of a failed run is its one line on stderr: the warnings that the
    # libraries reading the file issue on the way are held, and shown only after
    # a conversion that succeeds.
    with warnings.catch_warnings(record=True) as held:
        try:
            with signals_raise():
                summary = convert(
                    args.src,
                    args.dst,
                    upcast=args.upcast,
                    keys=args.keys,
                    keys_regex=args.keys_regex,
                    dtype=args.dtype,
                    force=args.force,
                    progress=args.progress,
                    max_bytes=args.max_bytes,
                    max_arrays=args.max_arrays,
                )
        except ConvertError as exc:
            return _failed(printable(str(exc)), FAILED)
        except (KeyboardInterrupt, Terminated) as exc:
            signum = exc.signum if isinstance(exc, Terminated) else signal.SIGINT
            name = signal.Signals(signum).name
            return _failed(f"interrupted by {name}; no partial output is left", 128 + signum)
    try:
        _report(args, summary, held)
        _flush_stdout()
    except OSError as exc:
        # The file is complete and in place: only the summary was not read (a closed
        # pipe or descriptor), or could not be written (a full disk): said on stderr.
        if not _closed(exc):
            _failed(f"wrote {printable(args.dst)}, but not its summary: {exc}", 0)
        _discard_output()
    return 0


def _report(
    args: argparse.Namespace, summary: Summary, held: list[warnings.WarningMessage]
) -> None:
    """Show the warnings held during a successful conversion, and what it wrote."""
    for held_warning in held:
        warnings.showwarning(
            held_warning.message,
            held_warning.category,
            held_warning.filename,
            held_warning.lineno,
            held_warning.file,
            held_warning.line,
        )
    dst = printable(args.dst)
    print(f"wrote {summary.arrays} arrays ({summary.nbytes / 2**20:.1f} MB) to {dst}")
    if summary.skipped:
        print(
            f"skipped {len(summary.skipped)} entries that are not arrays: "
            + _listing(summary.skipped)
        )
    if summary.aliases:
        aliases = [f"{key} (= {first})" for key, first in summary.aliases]
        print(
            f"skipped {len(aliases)} references to an array or container already written "
            "under its first key: " + _listing(aliases)
        )
    if summary.renamed:
        renamed = [f"{key!r} as {name!r}" for key, name in summary.renamed]
        print(
            f"renamed {len(renamed)} keys that are unsafe as names in {dst}: " + _listing(renamed)
        )


def _discard_output() -> None:
    """Point a standard stream that cannot be written at the null device, with what it holds.

    Python flushes stdout and stderr as it exits; a flush into a closed pipe or
    descriptor would raise again, print a traceback and make the exit status 120.
    A stream with nothing left to write, or none at all (``None``), is left as it is.
    """
    for stream in (sys.stdout, sys.stderr):
        if stream is None:
            continue
        try:
            stream.flush()
        except OSError:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, stream.fileno())
            os.close(null)
            stream.flush()


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The arguments; words none of them takes are the error of the command they follow.

    (argparse reports them as the top-level parser's, with ``interop --help`` as hint.)
    """
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        command = parser.commands[args.command] if args.command else parser
        command.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        args = _parse(argv)
        if args.command == "convert":
            return _convert(args)
        status = doctor.main(args.framework, as_json=args.json) if args.command else doctor.main()
        _flush_stdout()
    except OSError as exc:
        if _closed(exc):
            # The report, or an error's line, went to a closed pipe (`interop | head -1`)
            # or descriptor.
            _discard_output()
            return PIPE_CLOSED
        # The report could not be written (a full disk, say): one line on stderr.
        if sys.stderr is not None:
            with contextlib.suppress(OSError):  # (stderr full too: the status still says it)
                print(f"interop: error: cannot write the report: {exc}", file=sys.stderr)
        _discard_output()
        return FAILED
    return status
