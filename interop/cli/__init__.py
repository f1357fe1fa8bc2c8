"""The ``interop`` command line: ``doctor`` (also what a bare ``interop`` runs) and ``convert``.

Exit status: 0 on success; ``doctor`` returns 1 if a conversion gave wrong values;
``convert`` returns 1 for an input it cannot read or convert and 2 for a usage
error (unknown format, existing output, bad option). A failed ``convert`` never
leaves an output file behind.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from interop.cli import doctor
from interop.cli.errors import ConvertError
from interop.cli.files import convert

__all__ = ["main"]

_EPILOG = """\
examples:
  interop                               # same as: interop doctor
  interop doctor --json                 # machine-readable report
  interop convert model.pt model.npz    # state dict -> one array per dotted key
  interop convert model.safetensors w.npz --upcast --keys 'encoder.*'
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
        help="convert a tensor file (.pt, .pth, .bin, .safetensors, .npy, .npz) to .npz/.npy",
        description="Convert a tensor file to NumPy. PyTorch files are loaded with "
        "weights_only=True (no arbitrary object is ever unpickled); nested state dicts "
        "and optimizer states become dotted keys. The output is written to a temporary "
        "file and renamed into place, so a failure leaves nothing behind.",
    )
    convert_cmd.add_argument(
        "src", help="input: .pt, .pth, .bin (torch.save), .safetensors, .npy, .npz"
    )
    convert_cmd.add_argument("dst", help="output: .npz, or .npy for a single array")
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
    convert_cmd.add_argument("--force", action="store_true", help="replace an existing output file")
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
    return parser


def _convert(args: argparse.Namespace) -> int:
    try:
        summary = convert(
            args.src,
            args.dst,
            upcast=args.upcast,
            keys=args.keys,
            keys_regex=args.keys_regex,
            dtype=args.dtype,
            force=args.force,
            progress=args.progress,
        )
    except ConvertError as exc:
        print(f"interop convert: error: {exc}", file=sys.stderr)
        return exc.code
    print(f"wrote {summary.arrays} arrays ({summary.nbytes / 2**20:.1f} MB) to {args.dst}")
    if summary.skipped:
        shown = ", ".join(summary.skipped[:5])
        more = f" and {len(summary.skipped) - 5} more" if len(summary.skipped) > 5 else ""
        print(f"skipped {len(summary.skipped)} entries that are not arrays: {shown}{more}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = _parser().parse_args(argv)
    if args.command == "convert":
        return _convert(args)
    if args.command is None:
        return doctor.main()
    return doctor.main(args.framework, as_json=args.json)
