"""The ``interop`` command line. With no arguments it runs ``doctor``."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
from collections.abc import Sequence

import numpy as np

import interop

__all__ = ["main"]

_FRAMEWORKS = {
    "torch": "torch.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))",
    "tensorflow": "tf.constant(np.arange(6, dtype=np.float32).reshape(2, 3))",
    "jax": "jnp.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))",
}


def _doctor() -> int:
    print(f"interop {interop.__version__}, numpy {np.__version__}")
    ok = True
    for name in ("numpy", *_FRAMEWORKS):
        if importlib.util.find_spec(name) is None:
            print(f"{name:<11} not installed")
            continue
        module = importlib.import_module(name)
        source = np.arange(6, dtype=np.float32).reshape(2, 3)
        if name == "numpy":
            x: object = source
        elif name == "torch":
            x = module.tensor(source)
        elif name == "tensorflow":
            x = module.constant(source)
        else:
            x = importlib.import_module("jax.numpy").asarray(source)
        plan = interop.explain(x)
        out = interop.to_numpy(x)
        right = bool(np.array_equal(out, source))
        ok &= right
        print(
            f"{name:<11} {getattr(module, '__version__', '?'):<10} {plan}"
            f"{'' if right else '  WRONG VALUES'}"
        )
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="interop", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("doctor", help="show frameworks, devices and conversion paths")
    args = parser.parse_args(argv)
    if args.command in (None, "doctor"):
        return _doctor()
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover
    return 2
