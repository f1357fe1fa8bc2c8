"""``python -m interop``: the command line (see :mod:`interop.cli`)."""

from __future__ import annotations

import sys

from interop.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
